#!/usr/bin/env bash
# The link model checked on real sockets: both parties of `blindfold bench` in
# one network namespace whose loopback is limited by a kernel token bucket
# (tc tbf; this kernel has no netem, so no added delay). Compare with
# `blindfold bench ... --link RATE,0ms`, the in-process model of the same link.
#
#   scripts/wan-netns.sh [RATE] [NETWORK] [NONLINEAR] [QUERIES]
#   scripts/wan-netns.sh 100mbit minionn ot 5
#
# Needs root (ip netns, tc). Builds the release binary first.
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${1:-100mbit}"
network="${2:-minionn}"
nonlinear="${3:-auto}"
queries="${4:-5}"
ns="blindfold-wan-$$"
cargo build --release -q --bin blindfold
bin="$(pwd)/target/release/blindfold"
cleanup() { ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" tc qdisc add dev lo root tbf rate "$rate" burst 256kb latency 100ms
echo "== token bucket $rate on the namespace's loopback, $network, --nonlinear $nonlinear"
ip netns exec "$ns" "$bin" bench --network "$network" --mode two-server \
    --nonlinear "$nonlinear" --queries "$queries" | tail -2
echo "== the same link in the in-process model (--link ${rate},0ms)"
"$bin" bench --network "$network" --mode two-server --nonlinear "$nonlinear" \
    --link "${rate},0ms" --queries "$queries" | tail -2
