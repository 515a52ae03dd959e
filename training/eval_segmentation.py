#!/usr/bin/env python3
"""Float Dice of the zoo's segmentation model (unet) on the 100 bundled mnist-seg test
canvases, computed by onnxruntime on the exported ONNX (independent of blindfold).

    training/.venv/bin/python training/eval_segmentation.py [NAME] [--data DIR --prefix P]
                                                            [--json] [--no-write]

Dice of class c over the whole set: 2|P_c & T_c| / (|P_c| + |T_c|), P_c the pixels
predicted c (argmax of the 11 logits), T_c the pixels labelled c; a class absent from
both prediction and truth is left out of the means. Reported: the 11 per-class
figures, their mean ("mean Dice"), the mean over the 10 digit classes, and the
foreground-vs-background Dice (P = predicted non-background, T = labelled
non-background). On the bundled set (default) the figures are written into
models/zoo.json ("onnxruntime_float_dice") unless --no-write.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS_DIR = os.path.join(ROOT, "models")
SEG_TEST = os.path.join(ROOT, "data", "mnist-seg-test-100")
CLASSES = 11


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def dice(p, t):
    s = int(p.sum()) + int(t.sum())
    return None if s == 0 else 2 * int((p & t).sum()) / s


def dice_table(pred, true):
    """pred, true: integer arrays of the same shape (class per pixel)."""
    per_class = [dice(pred == c, true == c) for c in range(CLASSES)]
    present = [d for d in per_class if d is not None]
    digits = [d for d in per_class[1:] if d is not None]
    return {"per_class": per_class,
            "mean_dice": float(np.mean(present)),
            "mean_digit_dice": float(np.mean(digits)),
            "foreground_dice": dice(pred != 0, true != 0),
            "pixel_accuracy": float((pred == true).mean())}


def predict_onnx(path, images):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = images.astype(np.float32)[:, None, :, :] / 255.0
    # The exported graph has a fixed batch of 1.
    return np.stack([sess.run(None, {name: x[i:i + 1]})[0][0].argmax(0) for i in range(len(x))])


def compare_blindfold(binary, path, images, masks, n):
    """max |logit difference| of `blindfold run` (float and plain modes) against
    onnxruntime on the first n canvases, the per-pixel argmax agreement, and the
    Dice figures of blindfold's own predictions on those canvases."""
    import subprocess
    import tempfile
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out, preds = {}, {"float": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            x = images[i:i + 1].astype(np.float32)[:, None, :, :] / 255.0
            want = sess.run(None, {name: x})[0][0]
            npy = os.path.join(tmp, f"canvas{i}.npy")
            np.save(npy, x)
            for mode in ("float", "plain"):
                r = subprocess.run([binary, "run", path, npy, "--mode", mode, "--json"],
                                   check=True, capture_output=True, text=True)
                got = np.array(json.loads(r.stdout)["scores"], dtype=np.float64).reshape(want.shape)
                o = out.setdefault(mode, {"max_abs_diff": 0.0, "pixels": 0, "argmax_agree": 0})
                o["max_abs_diff"] = max(o["max_abs_diff"], float(np.abs(got - want).max()))
                o["pixels"] += want[0].size
                o["argmax_agree"] += int((got.argmax(0) == want.argmax(0)).sum())
                preds[mode].append(got.argmax(0))
    for mode, p in preds.items():
        d = dice_table(np.stack(p), masks[:n])
        out[mode].update(mean_dice=d["mean_dice"], mean_digit_dice=d["mean_digit_dice"],
                         foreground_dice=d["foreground_dice"])
    out["canvases"] = n
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", nargs="?", default="unet")
    ap.add_argument("--data", default=SEG_TEST, help="directory with PREFIXimages.idx3-ubyte, PREFIXmasks.idx3-ubyte")
    ap.add_argument("--prefix", default="", help="file name prefix, e.g. test- for data/fetched/mnist-seg")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="do not update models/zoo.json")
    ap.add_argument("--blindfold", metavar="BIN",
                    help="also compare `BIN run MODEL --mode float|plain` logits with onnxruntime")
    ap.add_argument("--compare", type=int, default=10, metavar="N", help="canvases for --blindfold (default 10)")
    args = ap.parse_args()

    images = read_idx(os.path.join(args.data, f"{args.prefix}images.idx3-ubyte"))
    masks = read_idx(os.path.join(args.data, f"{args.prefix}masks.idx3-ubyte"))
    zoo_path = os.path.join(MODELS_DIR, "zoo.json")
    with open(zoo_path) as f:
        zoo = json.load(f)
    entry = next((m for m in zoo["models"] if m["name"] == args.name), None)
    if entry is None:
        sys.exit(f"{args.name} is not in models/zoo.json")
    pred = predict_onnx(os.path.join(MODELS_DIR, entry["file"]), images)
    t = dice_table(pred, masks)
    t["canvases"] = int(len(images))

    bundled = os.path.abspath(args.data) == os.path.abspath(SEG_TEST) and not args.prefix
    if bundled and not args.no_write:
        entry["onnxruntime_float_dice"] = {
            "canvases": t["canvases"],
            "per_class": [None if d is None else round(d, 4) for d in t["per_class"]],
            "mean": round(t["mean_dice"], 4), "mean_digits": round(t["mean_digit_dice"], 4),
            "foreground": round(t["foreground_dice"], 4), "pixel_accuracy": round(t["pixel_accuracy"], 4)}
        with open(zoo_path, "w") as f:
            json.dump(zoo, f, indent=2)
            f.write("\n")

    if args.blindfold:
        t["blindfold"] = compare_blindfold(args.blindfold, os.path.join(MODELS_DIR, entry["file"]),
                                           images, masks, args.compare)
    if args.json:
        print(json.dumps(t, indent=2))
        return
    print(f"{args.name}: onnxruntime float Dice on {len(images)} canvases of {args.data}")
    print("| class | " + " | ".join(["bg"] + [str(d) for d in range(10)]) + " | mean | mean (digits) | fg/bg |")
    print("| --- |" + " ---: |" * 14)
    cells = ["n/a" if d is None else f"{d:.3f}" for d in t["per_class"]]
    print(f"| Dice | {' | '.join(cells)} | {t['mean_dice']:.3f} | {t['mean_digit_dice']:.3f} | "
          f"{t['foreground_dice']:.3f} |")
    print(f"pixel accuracy {t['pixel_accuracy']:.4f}")
    if args.blindfold:
        b = t["blindfold"]
        for mode in ("float", "plain"):
            print(f"blindfold run --mode {mode} vs onnxruntime, {b['canvases']} canvases: max |logit diff| "
                  f"{b[mode]['max_abs_diff']:.3g}, per-pixel argmax agreement "
                  f"{b[mode]['argmax_agree']}/{b[mode]['pixels']}; its Dice: mean {b[mode]['mean_dice']:.4f}, "
                  f"digits {b[mode]['mean_digit_dice']:.4f}, fg/bg {b[mode]['foreground_dice']:.4f}")


if __name__ == "__main__":
    main()
