#!/usr/bin/env bash
# Install everything mmsbam needs on a fresh Debian machine, idempotently:
#   1. Debian's dataset-fashion-mnist (the built-in default data),
#   2. a virtual environment (.venv, or $MMSBAM_VENV) with the pinned stack of
#      requirements.txt, mmcv-lite only when no mmcv is importable (never a
#      compile), and mmsbam itself in editable mode,
#   3. Fashion-MNIST unpacked into data/fashion_mnist for MMPretrain.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${MMSBAM_VENV:-$ROOT/.venv}"
cd "$ROOT"

if [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
    echo "[install] apt-get install dataset-fashion-mnist"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q \
        dataset-fashion-mnist >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
    echo "[install] creating $VENV with $PY"
    "$PY" -m venv "$VENV"
fi
echo "[install] pip install -r requirements.txt (torch 2.14.1 etc.)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    -r requirements.txt
if ! "$VENV/bin/python" -c "import mmcv" 2>/dev/null; then
    echo "[install] no mmcv found: pip install mmcv-lite==2.2.0"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        mmcv-lite==2.2.0
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    --no-deps --no-build-isolation -e .

"$VENV/bin/python" tools/dataset_converters/prepare_fashion_mnist.py \
    --out data/fashion_mnist
echo "[install] done: $VENV"
