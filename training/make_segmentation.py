#!/usr/bin/env python3
"""Build the "mnist-seg" segmentation task: 64x64 canvases of 1-3 real MNIST digits
with a per-pixel class mask. Python standard library + numpy only; deterministic.

    training/.venv/bin/python training/make_segmentation.py [--train N] [--test N]
                                                             [--write-bundled]

Needs `scripts/fetch-mnist.sh` first (the 9,000 training digits in data/fetched/mnist/);
the test canvases use only the 1,000 bundled test digits (data/mnist-test-1k/).

Rule (see data/README.md):
  * A canvas is 64x64, all zero, and gets k digits, k = 1, 2 or 3 with equal
    probability. Digits are drawn without replacement from a seeded permutation of
    the source digits (a fresh permutation whenever one is used up), so every digit
    is used equally often.
  * Each digit is its whole 28x28 MNIST crop, placed at a random offset (row and
    column uniform in 0..36, the crop stays inside the canvas). A digit's
    *foreground* is the set of its pixels with value >= 96. A placement is accepted
    when, for every digit already on the canvas, the two foregrounds share at most
    10% of the smaller one's pixel count (so digits may touch and cross slightly,
    never pile up); otherwise another offset is drawn, up to 100 times, after which
    the digit is left out (the canvas has fewer digits; counted and printed).
  * Image: pixelwise maximum of the placed crops.
  * Mask: 0 = background, d + 1 for digit d. A pixel belongs to a digit when that
    digit's pixel value is >= 96 there; where several digits qualify, the brighter
    one wins (equal values: the digit placed first). Hence mask != 0 exactly where
    image >= 96.
  * Randomness: only `random.Random(seed).random()` (whose sequence Python
    guarantees across versions), integers as int(random() * n). Training canvases:
    seed 20240601 over the 9,000 training digits; test canvases: seed 20240602 over
    the 1,000 test digits. The two streams are independent, so the test canvases
    do not depend on --train.

Outputs (IDX, big-endian header: magic 0x00000803, then N, 64, 64; uint8 row-major):
  data/fetched/mnist-seg/train-images.idx3-ubyte, train-masks.idx3-ubyte  (12,000)
  data/fetched/mnist-seg/test-images.idx3-ubyte,  test-masks.idx3-ubyte   (1,000)
  data/fetched/mnist-seg/train-digits.txt, test-digits.txt  (per canvas: the source
      digit indices, labels and offsets; for inspection)
  data/mnist-seg-test-100/images.idx3-ubyte, masks.idx3-ubyte: the first 100 test
      canvases (committed). If present they are compared byte for byte with the
      fresh ones (an error if they differ) unless --write-bundled rewrites them.
"""

import argparse
import os
import random
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_SRC = os.path.join(ROOT, "data", "fetched", "mnist")
TEST_SRC = os.path.join(ROOT, "data", "mnist-test-1k")
OUT = os.path.join(ROOT, "data", "fetched", "mnist-seg")
BUNDLED = os.path.join(ROOT, "data", "mnist-seg-test-100")

SIZE = 64
CROP = 28
THRESHOLD = 96
MAX_OVERLAP = 0.10
TRIES = 100
TRAIN_SEED = 20240601
TEST_SEED = 20240602
N_BUNDLED = 100
NUM_CLASSES = 11


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:
        sys.exit(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def idx_bytes(arr):
    assert arr.dtype == np.uint8 and arr.ndim == 3
    return struct.pack(">IIII", 0x00000803, *arr.shape) + arr.tobytes()


class Draws:
    """Seeded draws from random.Random.random() only (stable across Python versions)."""

    def __init__(self, seed, n_digits):
        self.r = random.Random(seed)
        self.n = n_digits
        self.pool = []

    def below(self, n):
        return min(int(self.r.random() * n), n - 1)

    def next_digit(self):
        if not self.pool:
            perm = list(range(self.n))
            for i in range(self.n - 1, 0, -1):  # Fisher-Yates
                j = self.below(i + 1)
                perm[i], perm[j] = perm[j], perm[i]
            self.pool = perm[::-1]
        return self.pool.pop()


def make_canvases(images, labels, n, seed):
    draws = Draws(seed, len(images))
    fg_all = images >= THRESHOLD
    area = fg_all.reshape(len(images), -1).sum(1)
    canvas_img = np.zeros((n, SIZE, SIZE), np.uint8)
    canvas_mask = np.zeros((n, SIZE, SIZE), np.uint8)
    records = []
    dropped = 0
    per_count = [0, 0, 0, 0]
    for c in range(n):
        k = 1 + draws.below(3)
        img = canvas_img[c]
        mask = canvas_mask[c]
        owner = np.zeros((SIZE, SIZE), np.uint8)  # value of the digit owning each pixel
        placed = []  # (digit index, row, col, foreground on the canvas)
        for _ in range(k):
            d = draws.next_digit()
            fg_d = fg_all[d]
            ok = None
            for _ in range(TRIES):
                r = draws.below(SIZE - CROP + 1)
                q = draws.below(SIZE - CROP + 1)
                fg = np.zeros((SIZE, SIZE), bool)
                fg[r:r + CROP, q:q + CROP] = fg_d
                if all((fg & other).sum() <= MAX_OVERLAP * min(area[d], area[e])
                       for e, _, _, other in placed):
                    ok = (r, q, fg)
                    break
            if ok is None:
                dropped += 1
                continue
            r, q, fg = ok
            crop = images[d]
            view = img[r:r + CROP, q:q + CROP]
            np.maximum(view, crop, out=view)
            # This digit takes the pixels where it is foreground and strictly brighter
            # than the current owner (0 where there is none).
            owner_view = owner[r:r + CROP, q:q + CROP]
            win = fg_d & (crop > owner_view)
            mask[r:r + CROP, q:q + CROP][win] = labels[d] + 1
            owner_view[win] = crop[win]
            placed.append((d, r, q, fg))
        per_count[len(placed)] += 1
        records.append(" ".join(f"{d}:{labels[d]}@{r},{q}" for d, r, q, _ in placed))
    assert np.array_equal(canvas_mask != 0, canvas_img >= THRESHOLD)
    return canvas_img, canvas_mask, records, dropped, per_count


def class_counts(masks):
    return np.bincount(masks.reshape(-1), minlength=NUM_CLASSES)


def report(name, masks, dropped, per_count):
    counts = class_counts(masks)
    total = counts.sum()
    print(f"{name}: {len(masks)} canvases; digits per canvas 1/2/3: "
          f"{per_count[1]}/{per_count[2]}/{per_count[3]} (0: {per_count[0]}); "
          f"digits left out (no placement in {TRIES} tries): {dropped}")
    print(f"  class pixel counts (of {total}):")
    for c in range(NUM_CLASSES):
        label = "background" if c == 0 else f"digit {c - 1}"
        print(f"    class {c:2d} ({label:10s}): {counts[c]:9d}  ({100 * counts[c] / total:.2f}%)")


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=12000, help="training canvases (default 12000)")
    ap.add_argument("--test", type=int, default=1000, help="test canvases (default 1000; >= 100)")
    ap.add_argument("--write-bundled", action="store_true",
                    help=f"(re)write {os.path.relpath(BUNDLED, ROOT)} instead of checking it")
    args = ap.parse_args()
    if args.test < N_BUNDLED:
        sys.exit(f"--test must be at least {N_BUNDLED}")

    os.makedirs(OUT, exist_ok=True)
    sets = []
    test_images = read_idx(os.path.join(TEST_SRC, "images.idx3-ubyte"))
    test_labels = read_idx(os.path.join(TEST_SRC, "labels.idx1-ubyte"))
    sets.append(("test", test_images, test_labels, args.test, TEST_SEED))
    train_img_path = os.path.join(TRAIN_SRC, "train-images.idx3-ubyte")
    if args.train > 0:
        if not os.path.exists(train_img_path):
            sys.exit(f"{train_img_path} missing: run scripts/fetch-mnist.sh first (or --train 0)")
        train_images = read_idx(train_img_path)
        train_labels = read_idx(os.path.join(TRAIN_SRC, "train-labels.idx1-ubyte"))
        if len(train_images) != 9000:
            sys.exit(f"expected the 9,000 training digits, found {len(train_images)}")
        sets.insert(0, ("train", train_images, train_labels, args.train, TRAIN_SEED))

    for name, images, labels, n, seed in sets:
        assert images.shape[1:] == (CROP, CROP) and len(images) == len(labels)
        img, mask, records, dropped, per_count = make_canvases(images, labels, n, seed)
        write(os.path.join(OUT, f"{name}-images.idx3-ubyte"), idx_bytes(img))
        write(os.path.join(OUT, f"{name}-masks.idx3-ubyte"), idx_bytes(mask))
        with open(os.path.join(OUT, f"{name}-digits.txt"), "w") as f:
            f.write(f"# {name} canvases: per line the digits placed, as source-index:label@row,col\n")
            f.write("\n".join(records) + "\n")
        report(name, mask, dropped, per_count)
        if name == "test":
            b_img, b_mask = idx_bytes(img[:N_BUNDLED]), idx_bytes(mask[:N_BUNDLED])
            _, _, _, b_dropped, b_count = make_canvases(images, labels, N_BUNDLED, seed)
            report(f"bundled test subset (first {N_BUNDLED})", mask[:N_BUNDLED], b_dropped, b_count)
            files = (("images.idx3-ubyte", b_img), ("masks.idx3-ubyte", b_mask))
            present = all(os.path.exists(os.path.join(BUNDLED, f)) for f, _ in files)
            if present and not args.write_bundled:
                for f, want in files:
                    with open(os.path.join(BUNDLED, f), "rb") as fh:
                        if fh.read() != want:
                            sys.exit(f"{BUNDLED}/{f} differs from the regenerated canvases "
                                     "(--write-bundled to replace it)")
                print(f"{os.path.relpath(BUNDLED, ROOT)}: identical to the first {N_BUNDLED} test canvases")
            else:
                os.makedirs(BUNDLED, exist_ok=True)
                for f, data in files:
                    write(os.path.join(BUNDLED, f), data)
                print(f"wrote {os.path.relpath(BUNDLED, ROOT)}")
    print(f"wrote {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
