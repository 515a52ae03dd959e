#!/usr/bin/env bash
# The PyTorch path (Model.from_torch and examples/python/quickstart.py), kept out
# of CI: PyPI's torch wheels pull gigabytes of CUDA libraries. Reuses the venv
# and wheel of python/ci.sh (run that first), adds torch and onnx, runs the
# quickstart.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${CARGO_TARGET_DIR:-$here/../target}/python-venv"
[ -x "$venv/bin/python" ] || { echo "run python/ci.sh first (it builds the venv and the wheel)"; exit 1; }
"$venv/bin/pip" install -q torch onnx
"$venv/bin/python" "$here/../examples/python/quickstart.py"
