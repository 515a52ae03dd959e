#!/usr/bin/env python3
"""Train binarized MLPs 784-d-d-10 (MOBIUS style) and export ONNX.

    training/.venv/bin/python training/train_bnn.py                    # all 8 models
    training/.venv/bin/python training/train_bnn.py --dataset mnist --width 128

Weights are exactly +-1 at export (sign of the latent weights, straight-through
estimator with the latent weights clipped to [-1, 1]); every linear layer is
followed by batch normalization; hidden activations are sign (+1 where x >= 0,
straight-through gradient where |x| <= 1); the first layer takes real pixels in
[0, 1]. No biases (batch normalization has the shift).

Data: MNIST = the 9,000 training digits of scripts/fetch-mnist.sh, tested on the
bundled 1,000 (data/mnist-test-1k); Fashion-MNIST = the Debian package's 60k/10k
(scripts/fetch-fashion-mnist.sh). Exported with the TorchScript exporter, opset 13,
BatchNormalization nodes kept (TrainingMode.PRESERVE), to models/bnn.onnx (MNIST,
d = 128, the zoo model) and models/bnn/{mnist,fashion}-d{d}.onnx (git-ignored except
as listed in models/README.md). A summary line per model goes to
models/bnn/train.json. Seeded, one thread by default (--threads).
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_zoo import augment, load_mnist, read_idx, update_zoo_json, ROOT, SEED  # noqa: E402

MODELS_DIR = os.path.join(ROOT, "models")
BNN_DIR = os.path.join(MODELS_DIR, "bnn")
WIDTHS = [128, 256, 512, 1000]

# Recipes per dataset: epochs, peak learning rate (Adam on the latent weights,
# one-cycle), augmentation (small random affine, as train_zoo.py), batch size.
RECIPES = {
    "mnist": dict(epochs=200, lr=5e-3, augment=True, batch=100),
    "fashion": dict(epochs=25, lr=5e-3, augment=False, batch=100),
}


class SignSTE(torch.autograd.Function):
    """+1 where x >= 0 else -1; gradient passed where |x| <= 1 (hardtanh)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


class WeightSignSTE(torch.autograd.Function):
    """sign of the latent weights, identity gradient (the latent weights are clipped)."""

    @staticmethod
    def forward(ctx, w):
        return torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))

    @staticmethod
    def backward(ctx, g):
        return g


class BinaryLinear(nn.Linear):
    def __init__(self, n_in, n_out):
        super().__init__(n_in, n_out, bias=False)
        nn.init.uniform_(self.weight, -1.0, 1.0)

    def forward(self, x):
        return F.linear(x, WeightSignSTE.apply(self.weight))


class Sign(nn.Module):
    def forward(self, x):
        return SignSTE.apply(x)


class BNN(nn.Module):
    def __init__(self, d, dropout=0.0):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),
            BinaryLinear(784, d), nn.BatchNorm1d(d), Sign(), nn.Dropout(dropout),
            BinaryLinear(d, d), nn.BatchNorm1d(d), Sign(), nn.Dropout(dropout),
            BinaryLinear(d, 10), nn.BatchNorm1d(10),
        )

    def forward(self, x):
        return self.layers(x)

    def clip(self):
        for m in self.modules():
            if isinstance(m, BinaryLinear):
                m.weight.data.clamp_(-1.0, 1.0)


class ExportSign(nn.Module):
    """torch.sign, so the export has ONNX Sign nodes (0 at 0, see models/README.md)."""

    def forward(self, x):
        return torch.sign(x)


def exportable(model):
    """The same network with +-1 weights in plain Linear layers and Sign nodes."""
    layers = []
    for m in model.layers:
        if isinstance(m, BinaryLinear):
            lin = nn.Linear(m.in_features, m.out_features, bias=False)
            lin.weight.data = torch.where(m.weight.data >= 0, 1.0, -1.0)
            layers.append(lin)
        elif isinstance(m, Sign):
            layers.append(ExportSign())
        elif isinstance(m, nn.Dropout):
            continue
        else:
            layers.append(m)
    return nn.Sequential(*layers).eval()


def load_fashion():
    d = os.path.join(ROOT, "data", "fetched", "fashion-mnist")

    def load(prefix):
        images = read_idx(os.path.join(d, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(os.path.join(d, f"{prefix}-labels-idx1-ubyte"))
        x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
        return x, torch.from_numpy(labels.astype(np.int64))

    return load("train"), load("t10k")


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def train(name, model, x, y, x_test, y_test, r):
    gen = torch.Generator().manual_seed(SEED + 1)
    opt = torch.optim.Adam(model.parameters(), lr=r["lr"])
    batch = r["batch"]
    steps = r["epochs"] * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r["lr"], total_steps=steps, pct_start=0.15)
    best = 0.0
    for epoch in range(r["epochs"]):
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            xb, yb = x[idx], y[idx]
            if r["augment"]:
                xb = augment(xb, gen)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            model.clip()
            total += loss.item() * len(idx)
        acc = accuracy(model, x_test, y_test)
        best = max(best, acc)
        print(f"  {name} epoch {epoch + 1}/{r['epochs']}: loss {total / len(x):.4f}, "
              f"test acc {acc:.4f} ({time.time() - t0:.1f}s)", flush=True)
    return model


def export(model, path):
    import onnx
    import onnxruntime as ort
    net = exportable(model)
    dummy = torch.zeros((1, 1, 28, 28))
    torch.onnx.export(net, (dummy,), path, dynamo=False, opset_version=13,
                      input_names=["input"], output_names=["output"],
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True)
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    probe = torch.rand((8, 1, 1, 28, 28), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for p in probe:
            want = model.eval()(p).numpy()
            got = sess.run(None, {"input": p.numpy()})[0]
            if np.abs(want - got).max() > 1e-3 * max(1.0, float(np.abs(want).max())):
                raise RuntimeError(f"{path}: onnxruntime disagrees with torch by {np.abs(want - got).max()}")
    ops = sorted({n.op_type for n in m.graph.node})
    print(f"  exported {path} ({os.path.getsize(path)} bytes; ops {', '.join(ops)})", flush=True)
    return ops


def zoo_entry(model, r, acc, ops, seconds):
    return {"name": "bnn", "file": "bnn.onnx", "input_shape": [1, 1, 28, 28], "output_shape": [1, 10],
            "dataset": "mnist", "trained": True,
            "architecture": "Flatten, binary FC 784-128, BN, sign, binary FC 128-128, BN, sign, binary FC 128-10, BN",
            "parameters": sum(p.numel() for p in model.parameters()), "seed": SEED,
            "exporter": "torchscript (dynamo=False)", "opset": 13,
            "training": {"digits": 9000, "epochs": r["epochs"], "optimizer": "Adam, one-cycle",
                         "peak_lr": r["lr"], "batch": r["batch"], "augment": r["augment"]},
            "torch_float_accuracy": round(acc, 4), "onnx_ops": ops, "train_seconds": round(seconds, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["mnist", "fashion"], action="append")
    ap.add_argument("--width", type=int, action="append")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    ap.add_argument("--dropout", type=float, default=0.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(BNN_DIR, exist_ok=True)
    summary_path = os.path.join(BNN_DIR, "train.json")
    summary = {}
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
    for dataset in args.dataset or ["mnist", "fashion"]:
        if dataset == "mnist":
            x, y = load_mnist(os.path.join(ROOT, "data", "fetched", "mnist"), "train-")
            x_test, y_test = load_mnist(os.path.join(ROOT, "data", "mnist-test-1k"))
            if len(x) != 9000:
                sys.exit(f"expected the 9,000 training digits, found {len(x)}")
        else:
            (x, y), (x_test, y_test) = load_fashion()
        r = dict(RECIPES[dataset])
        if args.epochs:
            r["epochs"] = args.epochs
        for d in args.width or WIDTHS:
            name = f"{dataset}-d{d}"
            torch.manual_seed(SEED)
            model = BNN(d, args.dropout)
            t0 = time.time()
            print(f"{name}: {r}", flush=True)
            train(name, model, x, y, x_test, y_test, r)
            acc = accuracy(model, x_test, y_test)
            path = os.path.join(BNN_DIR, f"{name}.onnx")
            ops = export(model, path)
            if dataset == "mnist" and d == 128:
                export(model, os.path.join(MODELS_DIR, "bnn.onnx"))
                update_zoo_json(zoo_entry(model, r, acc, ops, time.time() - t0))
            summary[name] = {"dataset": dataset, "width": d, "train_images": len(x), "test_images": len(x_test),
                             "torch_float_accuracy": round(acc, 4), "recipe": r, "dropout": args.dropout,
                             "onnx_ops": ops, "train_seconds": round(time.time() - t0, 1), "seed": SEED}
            with open(summary_path, "w") as f:
                json.dump(summary, f, indent=2, sort_keys=True)
                f.write("\n")


if __name__ == "__main__":
    main()
