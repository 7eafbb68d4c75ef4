#!/usr/bin/env bash
# Launch N training processes on this node with torchrun, as MMPretrain's
# dist_train.sh does with torch.distributed.launch.
#   bash tools/dist_train.sh CONFIG N [train.py options...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT. Without CUDA the
# processes use gloo (tools/train.py switches nccl -> gloo and says so).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NUM_PROCESSES [tools/train.py options]" >&2
    exit 2
fi
CONFIG=$1
NPROC=$2
HERE="$(cd "$(dirname "$0")" && pwd)"
PYTHON=${PYTHON:-python}
PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" \
    "$HERE/train.py" "$CONFIG" --launcher pytorch "${@:3}"
