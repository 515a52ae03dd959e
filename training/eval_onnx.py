#!/usr/bin/env python3
"""Float accuracy of the zoo's ONNX files on the bundled 1,000 MNIST test digits,
computed by onnxruntime (an evaluator independent of blindfold).

    training/.venv/bin/python training/eval_onnx.py [NAME...] [--data DIR] [--json]

Reads models/zoo.json; models whose dataset is not MNIST (sok_ecg) are skipped.
Writes the accuracies into models/zoo.json ("onnxruntime_float_accuracy") and prints
a Markdown table.
"""

import argparse
import json
import os
import sys

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_zoo import MODELS_DIR, TEST_DIR, read_idx  # noqa: E402


def evaluate(path, images, labels):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = images.astype(np.float32)[:, None, :, :] / 255.0
    correct = 0
    for i in range(len(x)):  # batch dimension is fixed to 1 in the exported graphs
        out = sess.run(None, {inp.name: x[i:i + 1]})[0]
        correct += int(np.argmax(out) == labels[i])
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*")
    ap.add_argument("--data", default=TEST_DIR, help="directory with images.idx3-ubyte and labels.idx1-ubyte")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--no-write", action="store_true", help="do not update models/zoo.json")
    args = ap.parse_args()

    images = read_idx(os.path.join(args.data, "images.idx3-ubyte"))
    labels = read_idx(os.path.join(args.data, "labels.idx1-ubyte"))
    zoo_path = os.path.join(MODELS_DIR, "zoo.json")
    with open(zoo_path) as f:
        zoo = json.load(f)

    results = {}
    for m in zoo["models"]:
        if args.names and m["name"] not in args.names:
            continue
        if m["dataset"] != "mnist":
            continue
        acc = evaluate(os.path.join(MODELS_DIR, m["file"]), images, labels)
        results[m["name"]] = acc
        if args.data == TEST_DIR:
            m["onnxruntime_float_accuracy"] = round(acc, 4)

    if args.data == TEST_DIR and not args.no_write:
        with open(zoo_path, "w") as f:
            json.dump(zoo, f, indent=2)
            f.write("\n")

    if args.json:
        print(json.dumps({"n": int(len(labels)), "float_accuracy": results}, indent=2))
    else:
        print(f"| model | float accuracy (onnxruntime, {len(labels)} digits) |")
        print("| --- | --- |")
        for name, acc in results.items():
            print(f"| {name} | {100 * acc:.1f}% |")


if __name__ == "__main__":
    main()
