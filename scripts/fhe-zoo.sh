#!/usr/bin/env bash
# FHE mode on every square-activation network of the zoo, both layouts (docs/fhe.md):
# the slow exactness tests (CryptoNets, SecureML: minutes each) in release, then
# `bench --mode fhe` per network (medians of --queries runs).
#   scripts/fhe-zoo.sh [--queries N] [--skip-tests]
set -euo pipefail
cd "$(dirname "$0")/.."
queries=3
tests=1
while [ $# -gt 0 ]; do
    case "$1" in
        --queries) queries="$2"; shift 2 ;;
        --skip-tests) tests=0; shift ;;
        *) echo "usage: $0 [--queries N] [--skip-tests]" >&2; exit 2 ;;
    esac
done
if [ "$tests" = 1 ]; then
    echo "== every zoo network, both layouts, exact against the integer reference (release)"
    cargo test --release -p blindfold-fhe --test zoo_fhe -- --include-ignored --test-threads=1 --nocapture
fi
cargo build --release -q --bin blindfold
for m in sok_ecg ppml_a sok_mnist cryptonets secureml; do
    echo "== bench $m"
    ./target/release/blindfold bench --network "$m" --mode fhe --queries "$queries" --json
done
