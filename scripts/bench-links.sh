#!/usr/bin/env bash
# Every zoo network in two-server mode, per non-linear protocol (gc, ot, and
# what auto picks for the link), over loopback TCP and over the link model at
# a LAN (1gbit,0.5ms) and a WAN (100mbit,20ms) setting: the figures of the
# "Loopback, LAN and WAN" table of docs/BENCHMARKS.md. JSON lines go to $OUT
# (default target/bench-links.jsonl), then a table is printed.
#
#   scripts/bench-links.sh [NETWORK ...]      (default: every two-server zoo network)
#   QUERIES=5 SHAPED_QUERIES=3 scripts/bench-links.sh minionn
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/bench-links.jsonl}
QUERIES=${QUERIES:-5}
SHAPED_QUERIES=${SHAPED_QUERIES:-3}
nets=("$@")
[ ${#nets[@]} -gt 0 ] || nets=(minionn ppml_c secureml cryptonets deepsecure ppml_a ppml_b sok_mnist sok_ecg)
cargo build --release -q --bin blindfold
B=target/release/blindfold
: > "$OUT"
for n in "${nets[@]}"; do
  for nl in gc ot auto; do
    echo "== $n --nonlinear $nl" >&2
    $B bench --network "$n" --nonlinear "$nl" --queries "$QUERIES" --json \
      | python3 -c "import json,sys; d=json.load(sys.stdin); d['nonlinear']='$nl'; d['link']='loopback'; print(json.dumps(d))" >> "$OUT"
    for link in 1gbit,0.5ms 100mbit,20ms; do
      $B bench --network "$n" --nonlinear "$nl" --link "$link" --queries "$SHAPED_QUERIES" --json \
        | python3 -c "import json,sys; d=json.load(sys.stdin); d['nonlinear']='$nl'; d['link']='$link'; print(json.dumps(d))" >> "$OUT"
    done
  done
done
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
links = ["loopback", "1gbit,0.5ms", "100mbit,20ms"]
print("| network | non-linear | MB per query (offline + online) | flights | " + " | ".join(f"{l} ms" for l in links) + " |")
print("|---|---|---:|---:|" + "---:|" * len(links))
by = {}
for r in rows:
    by.setdefault((r["network"], r["nonlinear"]), {})[r["link"]] = r
for (net, nl), d in by.items():
    r = d["loopback"]
    mb = f'{r["bytes"]/1e6:.2f} ({r["offline_bytes"]/1e6:.2f} + {r["online_bytes"]/1e6:.2f})'
    cells = " | ".join(f'{d[l]["total_ms"]:.0f}' if l in d else "" for l in links)
    print(f"| {net} | {nl} | {mb} | {r['rounds']} | {cells} |")
PY
