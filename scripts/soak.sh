#!/usr/bin/env bash
# Soak test: concurrent clients, faults and a follower restart against two TLS
# servers on loopback; every answer bit-exact; memory and descriptors sampled.
#   scripts/soak.sh                  # 10,000 queries, 4 clients (a few minutes)
#   scripts/soak.sh --queries 300    # the short version CI runs
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --bin blindfold --example soak
exec ./target/release/examples/soak "$@"
