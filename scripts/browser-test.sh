#!/usr/bin/env bash
# The browser client end to end: two real `blindfold serve` processes on
# loopback with --ws-listen, web/index.html in headless Chromium (Debian's
# chromium package, installed here if missing; playwright-core from npm drives
# it), a bundled digit uploaded and classified privately. Twice: plain
# http:// + ws:// (--insecure-plaintext), then https:// + wss:// with
# certificates from `blindfold certs --web-host 127.0.0.1` (servers linked by
# mutual TLS; the browser pins the two web certificates). Passes when the
# page's reconstructed output equals `blindfold run` (the plaintext reference)
# bit for bit each time; the screenshots (digit, label, scores) go to $OUT
# (default target/browser-test.png) and $OUT without .png plus -tls.png.
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
"$B" run "$MODEL" "$digit" --json >"$work/plain.json"
# The deployment's certificates, with browser-facing ones for 127.0.0.1.
"$B" certs --out "$work/pki" --web-host 127.0.0.1,localhost >/dev/null 2>&1
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run_case plain|tls SCREENSHOT: two servers with --ws-listen, then the page.
run_case() {
  local kind=$1 shot=$2 p0 p1 w0 w1 link=() client=() http=http ws=ws
  p0=$(port); p1=$(port); w0=$(port); w1=$(port)
  if [ "$kind" = tls ]; then
    link=(--tls-dir "$work/pki"); client=(--tls-dir "$work/pki"); http=https; ws=wss
    export PIN_CERTS="$work/pki/p0-web.pem,$work/pki/p1-web.pem"
  else
    link=(--insecure-plaintext); client=(--insecure-plaintext); unset PIN_CERTS
  fi
  "$B" serve --party 0 --share "$work/party0.share" --listen 127.0.0.1:$p0 "${link[@]}" \
    --ws-listen 127.0.0.1:$w0 --quiet 2>"$work/p0-$kind.log" &
  pids+=($!)
  "$B" serve --party 1 --share "$work/party1.share" --listen 127.0.0.1:$p1 --peer 127.0.0.1:$p0 \
    "${link[@]}" --ws-listen 127.0.0.1:$w1 --quiet 2>"$work/p1-$kind.log" &
  pids+=($!)
  for _ in $(seq 100); do
    "$B" query --servers 127.0.0.1:$p0,127.0.0.1:$p1 "${client[@]}" --json "$digit" \
      >"$work/cli.json" 2>/dev/null && break
    sleep 0.2
  done
  local url="$http://127.0.0.1:$w0/?p1=$ws://127.0.0.1:$w1/"
  if [ "$kind" = tls ]; then
    # Without the pins the browser must refuse the servers' certificates.
    if PIN_CERTS= node tests/browser/run.mjs "$url" "$digit" "$work/unpinned.png" \
        >"$work/unpinned.json" 2>"$work/unpinned.err"; then
      echo "the browser accepted an untrusted certificate" >&2; exit 1
    fi
    grep -q "ERR_CERT" "$work/unpinned.err" || { cat "$work/unpinned.err" >&2; exit 1; }
    echo "== unpinned browser refused the certificate ($(grep -o 'ERR_CERT[A-Z_]*' "$work/unpinned.err" | head -1))"
  fi
  echo "== headless chromium ($kind): $url, uploading $(basename "$digit")"
  node tests/browser/run.mjs "$url" "$digit" "$shot" >"$work/page-$kind.json" || {
    cat "$work/p0-$kind.log" "$work/p1-$kind.log" >&2; exit 1; }
  python3 - "$work/page-$kind.json" "$work/plain.json" <<'PY'
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
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pids=()
  echo "screenshot: $shot"
}

run_case plain "$OUT"
run_case tls "${OUT%.png}-tls.png"
