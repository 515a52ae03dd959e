#!/usr/bin/env bash
# CI check of the fuzz targets (docs/FUZZING.md): formatting and lints of the
# fuzz package, then every corpus file through its target without a fuzzer
# (fuzz/tests/replay.rs: the seeds, kept crash inputs, each target's seeds
# through every other target, and truncations and bit flips of every seed).
#
# It builds into the main workspace's target directory, after `.ci/run` has
# built and tested the workspace, so the dependencies are not compiled again
# (fuzz/Cargo.toml repeats the workspace's profiles for that reason).
#
# FUZZ_CI_SECONDS=N additionally fuzzes every target for N seconds with
# fuzz/run.sh, if cargo-afl is installed (not in CI by default: building the
# instrumented binaries alone takes minutes).
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/../target}"
echo "== fuzz: cargo fmt --check"
cargo fmt -- --check
echo "== fuzz: cargo clippy"
cargo clippy --all-targets -- -D warnings
echo "== fuzz: replay the corpus through every target"
cargo test --test replay
if [ -n "${FUZZ_CI_SECONDS:-}" ] && cargo afl --version >/dev/null 2>&1; then
    ./run.sh --seconds "$FUZZ_CI_SECONDS"
fi
