#!/usr/bin/env bash
# Both secure modes on every zoo network (or the networks given), one
# `blindfold bench` per network and mode, printed as a markdown table for
# docs/BENCHMARKS.md: offline + online = total ms, MB, online flights.
# Usage: scripts/bench-modes.sh [--queries N] [NETWORK...]
set -euo pipefail
cd "$(dirname "$0")/.."
queries=11
if [[ "${1:-}" == "--queries" ]]; then queries="$2"; shift 2; fi
nets=("$@")
if [[ ${#nets[@]} -eq 0 ]]; then
  nets=(minionn deepsecure ppml_a ppml_b ppml_c secureml cryptonets sok_mnist sok_ecg)
fi
cargo build --release -q -p blindfold-cli
bin=target/release/blindfold
echo "| network | two-server: offline + online = total ms | MB | flights | client-server: offline + online = total ms | MB | flights |"
echo "|---|---|---:|---:|---|---:|---:|"
for n in "${nets[@]}"; do
  row="| $n"
  for mode in two-server client-server; do
    j=$("$bin" bench --network "$n" --mode "$mode" --queries "$queries" --json)
    row+=$(python3 -c '
import json, sys
r = json.loads(sys.argv[1])
print(" | %.1f + %.1f = %.1f | %.2f | %d" % (r["offline_ms"], r["online_ms"], r["total_ms"], r["bytes"] / 1e6, r["rounds"]), end="")
' "$j")
  done
  echo "$row |"
done
