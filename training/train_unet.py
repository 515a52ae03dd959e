#!/usr/bin/env python3
"""Train the zoo's small UNet on the mnist-seg canvases and export models/unet.onnx.

    training/.venv/bin/python training/make_segmentation.py   # the canvases first
    training/.venv/bin/python training/train_unet.py [--threads 2] [--epochs N]

Training data: the 12,000 training canvases of data/fetched/mnist-seg/ (built only from
the 9,000 MNIST training digits). The per-epoch figures printed are on the 100 bundled
test canvases (data/mnist-seg-test-100) and are for watching only: nothing (no
epoch, no hyper-parameter) is selected on them. Seeded, CPU. Loss: cross-entropy plus
soft Dice (mean over the 11 classes of 1 - soft Dice on the batch), Adam with a
one-cycle schedule. Exported like the rest of the zoo (train_zoo.export: TorchScript
exporter, dynamo=False, opset 13, input "input" [1, 1, 64, 64], output "output"
[1, 11, 64, 64] logits, BatchNormalization nodes kept for the importer to fold), and
models/zoo.json gets a "unet" entry. The Dice figures of models/README.md come from
training/eval_segmentation.py (onnxruntime on the exported file).
"""

import argparse
import hashlib
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models as zoo  # noqa: E402
from train_zoo import ROOT, SEED, export, read_idx, update_zoo_json  # noqa: E402
from eval_segmentation import dice_table  # noqa: E402

SEG_DIR = os.path.join(ROOT, "data", "fetched", "mnist-seg")
SEG_TEST = os.path.join(ROOT, "data", "mnist-seg-test-100")
CLASSES = 11
RECIPE = dict(epochs=16, lr=3e-3, batch=32, dice_weight=1.0)


def load(directory, prefix=""):
    img = read_idx(os.path.join(directory, f"{prefix}images.idx3-ubyte"))
    mask = read_idx(os.path.join(directory, f"{prefix}masks.idx3-ubyte"))
    x = torch.from_numpy(img.astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(mask.astype(np.int64))
    return x, y


def soft_dice_loss(logits, y):
    p = logits.softmax(1)
    t = F.one_hot(y, CLASSES).permute(0, 3, 1, 2).to(p.dtype)
    inter = (p * t).sum((0, 2, 3))
    denom = p.sum((0, 2, 3)) + t.sum((0, 2, 3))
    return 1 - ((2 * inter + 1) / (denom + 1)).mean()


def predict(model, x, batch=100):
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])


def activation_ranges(model, x):
    """Largest |output| of every conv / BN / ReLU / pool / upsample module over x."""
    out, hooks = {}, []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU, nn.AvgPool2d, nn.Upsample)):
            def hook(mod, inp, o, name=name):
                out[name] = max(out.get(name, 0.0), float(o.abs().max()))
            hooks.append(m.register_forward_hook(hook))
    model.eval()
    with torch.no_grad():
        for i in range(0, len(x), 50):
            model(x[i:i + 50])
    for h in hooks:
        h.remove()
    return [{"layer": n, "type": type(dict(model.named_modules())[n]).__name__, "max_abs": v} for n, v in out.items()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    ap.add_argument("--lr", type=float, default=RECIPE["lr"])
    ap.add_argument("--limit", type=int, help="use only the first N training canvases (quick trials)")
    ap.add_argument("--config", help="override UNET_CONFIG, e.g. c0=8,c1=16,c2=32,mid=1 (trials)")
    ap.add_argument("--no-export", action="store_true", help="train and report only")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    config = dict(zoo.UNET_CONFIG)
    if args.config:
        for kv in args.config.split(","):
            k, v = kv.split("=")
            config[k] = int(v)
    path = os.path.join(SEG_DIR, "train-images.idx3-ubyte")
    if not os.path.exists(path):
        sys.exit(f"{path} missing: run training/make_segmentation.py first")
    x, y = load(SEG_DIR, "train-")
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    x_test, y_test = load(SEG_TEST)

    torch.manual_seed(SEED)
    model = zoo.UNet(**config)
    n_params = zoo.count_params(model)
    print(f"unet {config}: {n_params} parameters, {model.relu_outputs} ReLU outputs, {model.standalone_truncations} stand-alone truncations; "
          f"{len(x)} training canvases, {args.epochs} epochs, lr {args.lr}, {args.threads} threads", flush=True)

    batch = RECIPE["batch"]
    gen = torch.Generator().manual_seed(SEED + 1)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps = args.epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.2)
    t_start = time.time()
    for epoch in range(args.epochs):
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(x), generator=gen)
        total_ce = total_dice = 0.0
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            xb, yb = x[idx], y[idx]
            logits = model(xb)
            ce = F.cross_entropy(logits, yb)
            dl = soft_dice_loss(logits, yb)
            loss = ce + RECIPE["dice_weight"] * dl
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            total_ce += ce.item() * len(idx)
            total_dice += dl.item() * len(idx)
        t = dice_table(predict(model, x_test).numpy(), y_test.numpy())
        print(f"  epoch {epoch + 1}/{args.epochs}: ce {total_ce / len(x):.4f}, dice loss {total_dice / len(x):.4f}; "
              f"bundled-100 mean Dice {t['mean_dice']:.4f}, digits {t['mean_digit_dice']:.4f}, "
              f"fg/bg {t['foreground_dice']:.4f} ({time.time() - t0:.1f}s)", flush=True)
    train_seconds = round(time.time() - t_start, 1)
    digest = hashlib.sha256(b"".join(v.detach().numpy().tobytes() for v in model.state_dict().values()))
    print(f"trained in {train_seconds} s; sha256 of the weights {digest.hexdigest()[:16]}")
    if args.no_export:
        return

    t = dice_table(predict(model, x_test).numpy(), y_test.numpy())
    path, ops = export("unet", model, (1, 64, 64))
    entry = {"name": "unet", "file": "unet.onnx", "input_shape": [1, 1, 64, 64],
             "output_shape": [1, CLASSES, 64, 64], "dataset": "mnist-seg", "trained": True,
             "architecture": zoo.unet_architecture(**config), "parameters": n_params,
             "relu_outputs": model.relu_outputs,
             "standalone_truncations_secure": model.standalone_truncations, "seed": SEED,
             "exporter": "torchscript (dynamo=False)", "opset": 13,
             "training": {"canvases": len(x), "epochs": args.epochs, "optimizer": "Adam, one-cycle",
                          "peak_lr": args.lr, "batch": batch,
                          "loss": "cross-entropy + soft Dice (mean over 11 classes)",
                          "augment": False, "threads": args.threads},
             "torch_float_mean_dice": round(t["mean_dice"], 4),
             "activation_max_abs": activation_ranges(model, x_test),
             "onnx_ops": ops, "train_seconds": train_seconds}
    update_zoo_json(entry)
    print(f"updated models/zoo.json; now run training/eval_segmentation.py")


if __name__ == "__main__":
    main()
