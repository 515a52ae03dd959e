#!/usr/bin/env bash
# TenSEAL beside blindfold's FHE mode (docs/BENCHMARKS.md): a venv with tenseal,
# numpy and onnx from PyPI (kept out of CI), then one image per MLP network.
#   scripts/tenseal-bench.sh [NETWORK...]     (default: sok_ecg ppml_a secureml)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${TENSEAL_VENV:-target/tenseal-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q tenseal numpy onnx
fi
"$venv/bin/python" scripts/tenseal-bench.py "$@"
