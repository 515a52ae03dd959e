#!/usr/bin/env python3
"""Train the blindfold model zoo on the 9,000 MNIST training digits and export ONNX.

    training/.venv/bin/python training/train_zoo.py            # every model
    training/.venv/bin/python training/train_zoo.py minionn    # some models

Needs `scripts/fetch-mnist.sh` first (data/fetched/mnist/train-*.idx). CPU only,
seeded, one thread by default (--threads). Each model is exported with the
TorchScript exporter (`torch.onnx.export(..., dynamo=False)`, opset 13, input
"input", output "output", batch 1) to models/NAME.onnx, and models/zoo.json is
updated (per model: file, input shape, dataset, trained, parameters, float accuracy
on the bundled 1,000 test digits as computed by PyTorch, largest |activation| per
layer on those digits). The accuracy in models/README.md is the onnxruntime one,
from training/eval_onnx.py.
"""

import argparse
import json
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models as zoo  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_DIR = os.path.join(ROOT, "data", "fetched", "mnist")
TEST_DIR = os.path.join(ROOT, "data", "mnist-test-1k")
MODELS_DIR = os.path.join(ROOT, "models")
SEED = 20240601

# Per-model training recipe: epochs, peak learning rate (Adam, one-cycle schedule),
# whether to augment (small random affine: +-2 px shift, +-10 degrees, 0.9-1.1 scale).
RECIPES = {
    "minionn": dict(epochs=30, lr=3e-3, augment=True),
    "secureml": dict(epochs=40, lr=1e-3, augment=True),
    "cryptonets": dict(epochs=20, lr=1e-3, augment=True),
    "deepsecure": dict(epochs=20, lr=2e-3, augment=True),
    "sok_mnist": dict(epochs=20, lr=1e-3, augment=True),
    "ppml_a": dict(epochs=40, lr=1e-3, augment=True),
    "ppml_b": dict(epochs=20, lr=2e-3, augment=True),
    "ppml_c": dict(epochs=20, lr=3e-3, augment=True),
}


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(directory, prefix=""):
    images = read_idx(os.path.join(directory, f"{prefix}images.idx3-ubyte"))
    labels = read_idx(os.path.join(directory, f"{prefix}labels.idx1-ubyte"))
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def augment(x, gen):
    n = x.shape[0]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * (10 * np.pi / 180)
    scale = 1 + (torch.rand(n, generator=gen) * 2 - 1) * 0.1
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (2 / 14)  # +-2 px in [-1, 1] coords
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def activation_ranges(model, x):
    """Largest |output| of every layer of the Sequential over the inputs x."""
    model.eval()
    out = []
    with torch.no_grad():
        h = x
        for i, layer in enumerate(model):
            h = layer(h)
            out.append({"layer": i, "type": type(layer).__name__, "max_abs": float(h.abs().max())})
    return out


def train(name, model, x, y, x_test, y_test, epochs, lr, augment_data, batch=64):
    gen = torch.Generator().manual_seed(SEED + 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    for epoch in range(epochs):
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            xb, yb = x[idx], y[idx]
            if augment_data:
                xb = augment(xb, gen)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        acc = accuracy(model, x_test, y_test)
        print(f"  {name} epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}, "
              f"test acc {acc:.4f} ({time.time() - t0:.1f}s)", flush=True)
    return model


def export(name, model, input_shape):
    model.eval()
    path = os.path.join(MODELS_DIR, f"{name}.onnx")
    dummy = torch.zeros((1,) + tuple(input_shape))
    # For networks with batch normalization, TrainingMode.PRESERVE (the model being in
    # eval mode, BN uses its running statistics) keeps the BatchNormalization nodes;
    # the default EVAL mode would fuse them into the convolutions, and the importer's
    # BN folding would go untested.
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    mode = torch.onnx.TrainingMode.PRESERVE if has_bn else torch.onnx.TrainingMode.EVAL
    torch.onnx.export(model, (dummy,), path, dynamo=False, opset_version=13,
                      input_names=["input"], output_names=["output"],
                      training=mode, do_constant_folding=True)
    import onnx
    import onnxruntime as ort
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    probe = torch.rand((4, 1) + tuple(input_shape), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for p in probe:
            want = model(p).numpy()
            got = sess.run(None, {"input": p.numpy()})[0]
            scale = max(1.0, float(np.abs(want).max()))
            if np.abs(want - got).max() > 1e-4 * scale:
                raise RuntimeError(f"{name}: onnxruntime disagrees with torch by {np.abs(want - got).max()}")
    ops = sorted({n.op_type for n in m.graph.node})
    print(f"  exported {path} ({os.path.getsize(path)} bytes; ops {', '.join(ops)})")
    return path, ops


def update_zoo_json(entry):
    path = os.path.join(MODELS_DIR, "zoo.json")
    data = {"models": []}
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    data["models"] = [m for m in data["models"] if m["name"] != entry["name"]] + [entry]
    order = list(zoo.ZOO)
    data["models"].sort(key=lambda m: order.index(m["name"]) if m["name"] in order else len(order))
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help=f"models (default all): {', '.join(zoo.ZOO)}")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, help="override every recipe's epoch count")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = args.names or list(zoo.ZOO)
    for n in names:
        if n not in zoo.ZOO:
            sys.exit(f"unknown model {n}")

    os.makedirs(MODELS_DIR, exist_ok=True)
    x_test, y_test = load_mnist(TEST_DIR)
    x = y = None
    for name in names:
        builder, input_shape, dataset, trained = zoo.ZOO[name]
        torch.manual_seed(SEED)
        model = builder()
        t0 = time.time()
        entry = {"name": name, "file": f"{name}.onnx", "input_shape": [1] + list(input_shape),
                 "output_shape": None, "dataset": dataset, "trained": trained,
                 "architecture": zoo.ARCHITECTURES[name], "parameters": zoo.count_params(model),
                 "seed": SEED, "exporter": "torchscript (dynamo=False)", "opset": 13}
        if trained:
            if x is None:
                x, y = load_mnist(TRAIN_DIR, "train-")
                if len(x) != 9000:
                    sys.exit(f"expected the 9,000 training digits, found {len(x)}")
            r = RECIPES[name]
            epochs = args.epochs or r["epochs"]
            print(f"{name}: training {epochs} epochs, lr {r['lr']}, augment {r['augment']}", flush=True)
            train(name, model, x, y, x_test, y_test, epochs, r["lr"], r["augment"])
            entry["training"] = {"digits": len(x), "epochs": epochs, "optimizer": "Adam, one-cycle",
                                 "peak_lr": r["lr"], "batch": 64, "augment": r["augment"]}
            entry["torch_float_accuracy"] = round(accuracy(model, x_test, y_test), 4)
            entry["activation_max_abs"] = activation_ranges(model, x_test)
        else:
            print(f"{name}: random weights (seed {SEED}), not trained")
            probe = torch.rand((1000,) + tuple(input_shape), generator=torch.Generator().manual_seed(SEED))
            entry["activation_max_abs_uniform01_inputs"] = activation_ranges(model, probe)
            # A sample input (uniform [0, 1), seeded) for `blindfold run`.
            sample = os.path.join(MODELS_DIR, f"{name}.sample_input.npy")
            np.save(sample, probe[:1].numpy().astype(np.float32))
            entry["sample_input"] = os.path.basename(sample)
        path, ops = export(name, model, input_shape)
        with torch.no_grad():
            entry["output_shape"] = list(model.eval()(torch.zeros((1,) + tuple(input_shape))).shape)
        entry["onnx_ops"] = ops
        entry["train_seconds"] = round(time.time() - t0, 1)
        update_zoo_json(entry)


if __name__ == "__main__":
    main()
