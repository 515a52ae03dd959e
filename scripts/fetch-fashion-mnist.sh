#!/usr/bin/env bash
# Fashion-MNIST (60,000 training + 10,000 test images, IDX) from the Debian package
# `dataset-fashion-mnist` (Zalando SE, MIT/Expat), which installs gzipped IDX files in
# /usr/share/datasets/fashion-mnist/. They are decompressed into
# data/fetched/fashion-mnist/ (git-ignored) under the usual names:
#   train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte
# Needs root (apt-get) unless the package is already installed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src=/usr/share/datasets/fashion-mnist
out="$root/data/fetched/fashion-mnist"

if [[ ! -f "$src/train-images-idx3-ubyte.gz" ]]; then
  sudo_cmd=""
  if [[ "$(id -u)" != 0 ]]; then sudo_cmd=sudo; fi
  $sudo_cmd apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y dataset-fashion-mnist
fi

mkdir -p "$out"
for name in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  gzip -dc "$src/$name.gz" > "$out/$name.tmp"
  mv "$out/$name.tmp" "$out/$name"
done
cp /usr/share/doc/dataset-fashion-mnist/copyright "$out/COPYRIGHT.debian"

# Sanity check of the IDX headers (magic, count).
python3 - "$out" <<'PY'
import struct, sys, os
d = sys.argv[1]
for name, magic, n in (("train-images-idx3-ubyte", 0x803, 60000), ("train-labels-idx1-ubyte", 0x801, 60000),
                       ("t10k-images-idx3-ubyte", 0x803, 10000), ("t10k-labels-idx1-ubyte", 0x801, 10000)):
    with open(os.path.join(d, name), "rb") as f:
        m, count = struct.unpack(">II", f.read(8))
    assert (m, count) == (magic, n), (name, hex(m), count)
print("Fashion-MNIST IDX files in", d)
PY
