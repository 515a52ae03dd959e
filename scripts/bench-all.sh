#!/usr/bin/env bash
# Re-measure every figure of docs/BENCHMARKS.md; JSON lines go to $OUT (default
# target/bench-all.jsonl). Run on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/bench-all.jsonl}
cargo build --release -q --bin blindfold
B=target/release/blindfold
: > "$OUT"
$B bench primitives --json >> "$OUT"
for n in minionn secureml; do
  $B bench preprocessing --network "$n" --queries 11 --json >> "$OUT"
done
for n in minionn secureml cryptonets deepsecure ppml_a ppml_b ppml_c sok_mnist sok_ecg; do
  $B bench --network "$n" --mode two-server --queries 11 --json >> "$OUT"
done
echo "wrote $OUT"
