#!/usr/bin/env bash
# Quantization study of a segmentation model (default: the zoo's unet on the
# bundled canvases), like BUNET's Table 1: for each number of fractional bits,
# Dice of the fixed-point reference (mean over the digit classes, foreground vs
# background), the integer range every intermediate needs, and the time and
# bytes of one image in client-server mode. Prints a markdown table.
# Usage: scripts/quant-study.sh [--model M] [--limit N] [--queries Q] [F...]
set -euo pipefail
cd "$(dirname "$0")/.."
model=unet; limit=100; queries=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --limit) limit="$2"; shift 2 ;;
    --queries) queries="$2"; shift 2 ;;
    *) break ;;
  esac
done
fracs=("$@")
[[ ${#fracs[@]} -gt 0 ]] || fracs=(4 6 8 12)
cargo build --release -q -p blindfold-cli
bin=target/release/blindfold
echo "| fractional bits | plain mean Dice (digits) | plain Dice fg/bg | float mean Dice | integer range (signed bits) | client-server ms / image (offline + online) | MB / image |"
echo "|---:|---:|---:|---:|---:|---|---:|"
for f in "${fracs[@]}"; do
  e=$("$bin" eval "$model" --frac-bits "$f" --limit "$limit" --json)
  b=$("$bin" bench --network "$model" --mode client-server --frac-bits "$f" --queries "$queries" --json)
  python3 -c '
import json, sys
e, b, f = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
s = e["segmentation"]
fmt = lambda v: "-" if v is None else "%.3f" % v
print("| %s | %s | %s | %s | %s | %.0f + %.0f = %.0f | %.1f |" % (
    f, fmt(s["plain"]["mean_foreground"]), fmt(s["plain"]["foreground"]),
    fmt(s["float"]["mean_foreground"]), e["range_bits"],
    b["offline_ms"], b["online_ms"], b["total_ms"], b["bytes"] / 1e6))
' "$e" "$b" "$f"
done
