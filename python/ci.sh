#!/usr/bin/env bash
# CI of the Python package: formatting and lints of its Rust crate, then a
# fresh virtual environment (target/python-venv) with maturin, pytest and numpy
# from PyPI, the abi3 wheel built and installed in it with pip, and the tests.
#
# Builds into the main workspace's target directory after `.ci/run` has built
# the workspace in release, so the engine is not compiled twice.
# PYTHON=python3.x chooses the interpreter (default python3).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/../target}"
PYTHON="${PYTHON:-python3}"
echo "== python: cargo fmt --check"
cargo fmt -- --check
echo "== python: cargo clippy"
cargo clippy --all-targets -- -D warnings
venv="$CARGO_TARGET_DIR/python-venv"
rm -rf "$venv"
"$PYTHON" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q "maturin>=1.5,<2" pytest numpy
echo "== python: build the wheel (maturin, abi3) and pip install it"
rm -rf "$CARGO_TARGET_DIR/wheels"
"$venv/bin/maturin" build --release --quiet --out "$CARGO_TARGET_DIR/wheels"
"$venv/bin/pip" install -q "$CARGO_TARGET_DIR"/wheels/blindfold-*.whl
echo "== python: pytest"
cd "$here/.."
"$venv/bin/python" -m pytest -q python/tests
