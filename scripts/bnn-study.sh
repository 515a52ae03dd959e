#!/usr/bin/env bash
# The binarized networks' study (models/README.md, "Binarized networks"): for each
# BNN 784-d-d-10 (MNIST and Fashion-MNIST, d in 128 256 512 1000), accuracy in
# float, in the integer reference and in the secure two-server run for each
# batch-normalization scale q in 100 1000 10000; then time, bytes and rounds per
# query for each d (two-server and client-server, `blindfold bench`).
#
#   scripts/bnn-study.sh [--secure-limit N] [--queries N] [--out FILE] [MODEL.onnx...]
#
# Needs the models of training/train_bnn.py (models/bnn/*.onnx), the fetched
# Fashion-MNIST (scripts/fetch-fashion-mnist.sh) and a release build (built if
# missing). --secure-limit: images per secure run (default 1000; the integer and
# float runs use the whole test set); --queries: benchmark queries (default 7).
# Writes one JSON object per run to FILE (default target/bnn-study.jsonl) and
# prints the two tables.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
limit=1000
queries=7
out=target/bnn-study.jsonl
models=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --secure-limit) limit="$2"; shift 2 ;;
    --queries) queries="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n 2,16p "$0"; exit 0 ;;
    *) models+=("$1"); shift ;;
  esac
done
if [[ ${#models[@]} -eq 0 ]]; then
  for ds in mnist fashion; do
    for d in 128 256 512 1000; do models+=("models/bnn/$ds-d$d.onnx"); done
  done
fi
for m in "${models[@]}"; do
  [[ -f "$m" ]] || { echo "missing $m: run training/train_bnn.py first" >&2; exit 1; }
done
bin=target/release/blindfold
[[ -x "$bin" ]] || cargo build --release -p blindfold-cli
mkdir -p "$(dirname "$out")"
: > "$out"

data_for() {
  case "$(basename "$1")" in
    fashion-*)
      [[ -f data/fetched/fashion-mnist/t10k-images-idx3-ubyte ]] || scripts/fetch-fashion-mnist.sh >&2
      echo data/fetched/fashion-mnist ;;
    *) echo data/mnist-test-1k ;;
  esac
}

for m in "${models[@]}"; do
  data=$(data_for "$m")
  echo "== $m ($data)" >&2
  "$bin" eval "$m" --data "$data" --mode float --json >> "$out"
  for q in 100 1000 10000; do
    "$bin" eval "$m" --data "$data" --mode plain --bn-scale "$q" --json >> "$out"
    "$bin" eval "$m" --data "$data" --mode two-server --bn-scale "$q" --limit "$limit" --json >> "$out"
  done
  for variant in "two-server auto" "two-server ot" "two-server he" "client-server auto"; do
    set -- $variant
    "$bin" bench --network "$m" --mode "$1" --binary-products "$2" --queries "$queries" --json \
      | python3 -c 'import json,sys; v=json.load(sys.stdin); v["kind"]="bench"; v["model_file"]=sys.argv[1]; v["products"]=sys.argv[2]; print(json.dumps(v))' "$m" "$2" >> "$out"
  done
done

python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
acc = {}
bench = {}
for r in rows:
    if r.get("kind") == "bench":
        bench[(r["model_file"], r.get("mode"), r["products"])] = r
        continue
    a = acc.setdefault(r["model"], {})
    if r["mode"] == "float":
        a["float"], a["n"] = r["float_accuracy"], r["n"]
    elif r["mode"] == "plain":
        a[("plain", r["bn_scale"])] = r["plain_accuracy"]
    else:
        a[("secure", r["bn_scale"])] = (r["bit_exact"], r["n"])
qs = (100, 1000, 10000)
print("| model | test images | float | integer, q = 100 | q = 1,000 | q = 10,000 | secure = integer (each q) |")
print("|---|---:|---:|---:|---:|---:|---|")
for k, a in acc.items():
    exact = all(a[("secure", q)][0] == 1.0 for q in qs)
    n = sum(a[("secure", q)][1] for q in qs)
    cells = " | ".join(f"{100*a[('plain', q)]:.2f}%" for q in qs)
    print(f"| {k} | {a['n']:,} | {100*a['float']:.2f}% | {cells} | {'bit-exact' if exact else 'NOT bit-exact'} on {n} runs |")
print()
print("| model | mode | binary products | offline ms | online ms | total ms | MB | rounds |")
print("|---|---|---|---:|---:|---:|---:|---:|")
for (f, mode, products), r in bench.items():
    def g(*names):
        for n in names:
            if n in r:
                return r[n]
        return float("nan")
    print(f"| {f.split('/')[-1][:-5]} | {mode} | {products} | {g('offline_ms'):.1f} | {g('online_ms'):.2f} | {g('total_ms'):.1f} | "
          f"{g('bytes')/1e6:.2f} | {g('rounds')} |")
PY
