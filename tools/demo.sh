#!/usr/bin/env bash
# The main job on the built-in default data, on CPU, in under 10 minutes:
# install everything, pre-train a tiny ViT with SBAM on Fashion-MNIST
# (5 epochs), then print the frozen encoder's k-NN top-1 on the test split.
#   [WORK_DIR=work_dirs/my_demo] bash tools/demo.sh [tools/train.py options]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${MMSBAM_VENV:-$ROOT/.venv}"
CONFIG=configs/fmnist/sbam_vit-tiny-p4_1xb256-5e_fmnist.py
WORK_DIR="${WORK_DIR:-work_dirs/demo_sbam_fmnist}"
bash "$ROOT/tools/install.sh"
cd "$ROOT"
start=$(date +%s)
"$VENV/bin/python" tools/train.py "$CONFIG" --work-dir "$WORK_DIR" "$@"
CKPT="$(cat "$WORK_DIR/last_checkpoint")"
"$VENV/bin/python" tools/analysis_tools/knn_eval.py "$CONFIG" "$CKPT" \
    --out "$WORK_DIR/knn.json"
echo "[demo] checkpoint: $CKPT; k-NN result: $WORK_DIR/knn.json;" \
    "train + eval took $(( $(date +%s) - start ))s"
