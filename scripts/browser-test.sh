#!/usr/bin/env bash
# The browser client end to end: two real `blindfold serve` processes on
# loopback with --ws-listen, web/index.html in headless Chromium (Debian's
# chromium package, installed here if missing; playwright-core from npm drives
# it), a bundled digit uploaded and classified privately. Passes when the page's
# reconstructed output equals `blindfold run` (the plaintext reference) bit for
# bit; the screenshot (digit, label, scores) goes to $OUT (default
# target/browser-test.png) and its path is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
OUT="${OUT:-$root/target/browser-test.png}"
MODEL="${MODEL:-ppml_b}"
if [ -z "${CHROMIUM:-}" ]; then
  if ! command -v chromium >/dev/null; then
    echo "== installing Debian's chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  export CHROMIUM="$(command -v chromium)"
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm install --silent --no-audit --no-fund)
fi
cargo build --release -q --bin blindfold
B="$root/target/release/blindfold"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
"$B" split "$MODEL" --out "$work" >/dev/null 2>&1
"$B" digits --out "$work/d" --count 3 >/dev/null
digit="$(ls "$work"/d/digit2_label*.png)"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
p0=$(port); p1=$(port); w0=$(port); w1=$(port)
"$B" serve --party 0 --share "$work/party0.share" --listen 127.0.0.1:$p0 --insecure-plaintext \
  --ws-listen 127.0.0.1:$w0 --quiet 2>"$work/p0.log" &
pids+=($!)
"$B" serve --party 1 --share "$work/party1.share" --listen 127.0.0.1:$p1 --peer 127.0.0.1:$p0 \
  --insecure-plaintext --ws-listen 127.0.0.1:$w1 --quiet 2>"$work/p1.log" &
pids+=($!)
for _ in $(seq 100); do
  "$B" query --servers 127.0.0.1:$p0,127.0.0.1:$p1 --insecure-plaintext --json "$digit" \
    >"$work/cli.json" 2>/dev/null && break
  sleep 0.2
done
url="http://127.0.0.1:$w0/?p1=ws://127.0.0.1:$w1/"
echo "== headless chromium: $url, uploading $(basename "$digit")"
node tests/browser/run.mjs "$url" "$digit" "$OUT" >"$work/page.json"
"$B" run "$MODEL" "$digit" --json >"$work/plain.json"
python3 - "$work/page.json" "$work/plain.json" <<'PY'
import json, sys
page = json.load(open(sys.argv[1]))
plain = json.load(open(sys.argv[2]))
print("page:", {k: page[k] for k in ("done", "status", "label", "costs")})
assert page["done"] == "ok", (page["status"], page["logs"])
ring = [int(v) for v in page["ring"].split(",")]
assert ring == plain["ring"], f"page output {ring} differs from the reference {plain['ring']}"
assert int(page["label"]) == plain["label"]
assert len(page["scores"]) == len(plain["scores"])
print(f"browser answer equals the plaintext reference bit for bit (label {plain['label']})")
PY
echo "screenshot: $OUT"
