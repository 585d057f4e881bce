#!/usr/bin/env bash
# Install poserepro into a virtual environment (default: .venv) from the pinned constraints.
#
# xtcocotools' only published cp311 wheel is compiled against numpy 1 and fails to import under numpy 2
# ("numpy.dtype size changed"), so it is built from source against the pinned numpy: numpy, cython and
# setuptools go in first, then the package with --no-binary xtcocotools --no-build-isolation.
# The `export` extra (onnx, onnxruntime) is installed too, so that the ONNX parity tests run rather than skip.
# Usage: bash scripts/install.sh [VENV_DIR]   (re-running is cheap: pip skips what is installed)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$here/.venv}"
python="${PYTHON:-python3}"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install -c "$here/constraints.txt" pip setuptools wheel cython numpy
"${pip[@]}" install -c "$here/constraints.txt" torch
"${pip[@]}" install -c "$here/constraints.txt" --no-build-isolation --no-binary xtcocotools -e "$here[dev,export]"
"$venv/bin/python" -c "import xtcocotools.cocoeval, pycocotools.cocoeval, torch, poserepro; print('poserepro', poserepro.__version__, 'torch', torch.__version__, 'installed in', '$venv')"
