"""Quickstart: train a small network in PyTorch, split it between two servers,
query it privately, compare with the plaintext answer.

    pip install target/wheels/blindfold-*.whl torch     # see README.md, "Python"
    python examples/python/quickstart.py

A toy: it trains a 784-64-10 MLP for a few seconds on 800 of the bundled MNIST
test digits (data/mnist-test-1k) and tests on the other 200 (the zoo's models
were trained on other data and never saw these digits).
"""

from pathlib import Path
import tempfile

import numpy as np
import torch
from torch import nn

import blindfold

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "mnist-test-1k"


def load_digits():
    raw = (DATA / "images.idx3-ubyte").read_bytes()
    n = int.from_bytes(raw[4:8], "big")
    images = np.frombuffer(raw[16:], dtype=np.uint8).reshape(n, 1, 28, 28)
    labels = np.frombuffer((DATA / "labels.idx1-ubyte").read_bytes()[8:], dtype=np.uint8)
    return images.astype(np.float32) / 255.0, labels.astype(np.int64)


def main():
    torch.manual_seed(0)
    x, y = load_digits()
    xt, yt = torch.from_numpy(x[:800]), torch.from_numpy(y[:800])

    # 1. Train (the model owner, in the clear).
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for epoch in range(30):
        for i in range(0, 800, 50):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(xt[i:i + 50]), yt[i:i + 50])
            loss.backward()
            opt.step()
    with torch.no_grad():
        acc = (net(torch.from_numpy(x[800:])).argmax(1).numpy() == y[800:]).mean()
    print(f"trained: float accuracy on the 200 held-out digits {acc:.1%}")

    # 2. Export and quantize (fixed point, 12 fractional bits).
    model = blindfold.Model.from_torch(net, torch.zeros(1, 1, 28, 28))
    info = model.inspect()
    print(f"{model}: {info['parameters']} parameters;",
          ", ".join(f"{l['op']}: {l['protocol']}" for l in info["layers"] if l["op"] != "input"))

    # 3. Split: each server gets one share file; neither file reveals a weight.
    with tempfile.TemporaryDirectory() as d:
        p0, p1 = model.split(d)
        print(f"shares: {p0}, {p1}")

    # 4. Query privately: both servers in this process (for a real deployment,
    #    `blindfold serve` on two machines and blindfold.Client(servers, tls=...)).
    same = 0
    with blindfold.LocalCluster(model) as cluster:
        for i in range(800, 810):
            answer = cluster.query(x[i])
            plain = model.run(x[i])
            same += answer.ring.tolist() == plain.ring.tolist()
            print(f"digit {i}: true {y[i]}, private {answer.label}, plaintext {plain.label}, "
                  f"{answer.latency_ms:.0f} ms, {answer.client_bytes} client bytes")
    print(f"{same}/10 private answers equal the plaintext reference bit for bit")
    r = model.evaluate((np.round(x[800:, 0] * 255).astype(np.uint8), y[800:]), mode="plain")
    print(f"fixed-point accuracy on the 200 held-out digits: {r['plain_accuracy']:.1%} "
          f"(float {r['float_accuracy']:.1%})")


if __name__ == "__main__":
    main()
