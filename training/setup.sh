#!/usr/bin/env bash
# Create training/.venv (git-ignored) with CPU-usable torch, onnx, onnxruntime,
# onnxscript and numpy, all pinned, all from PyPI. Idempotent: rerunning only checks.
# Needs python3 (3.10-3.13; tested with 3.11) with venv. Takes ~1 minute on a fast
# link, ~4.5 GB on disk (mostly CUDA runtime libraries torch links against; see README).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
py="${PYTHON:-python3}"
torch_version=2.15.0

if [[ ! -x "$venv/bin/python" ]]; then
  "$py" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
if ! "$venv/bin/python" -c "import torch, onnx, onnxruntime, onnxscript, numpy; assert torch.__version__.split('+')[0] == '$torch_version'" 2>/dev/null; then
  "${pip[@]}" install --quiet --no-deps "torch==$torch_version"
  "${pip[@]}" install --quiet -r "$here/requirements.txt"
fi

# Smoke test: import, one CPU training step.
"$venv/bin/python" - <<'PY'
import torch, onnx, onnxruntime, onnxscript, numpy
torch.set_num_threads(1)
m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
opt = torch.optim.SGD(m.parameters(), lr=0.1)
x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
before = torch.nn.functional.cross_entropy(m(x), y)
before.backward(); opt.step()
print(f"training/.venv ready: torch {torch.__version__} (CUDA available: {torch.cuda.is_available()}), "
      f"onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}, onnxscript {onnxscript.__version__}, "
      f"numpy {numpy.__version__}")
PY
