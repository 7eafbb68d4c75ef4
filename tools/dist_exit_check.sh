#!/usr/bin/env bash
# Run tools/dist_train.sh RUNS times, each a finished 2-process (NPROC) CPU
# training on a tiny config, without any retry, and count the exit statuses.
#   bash tools/dist_exit_check.sh [RUNS] [NPROC]     (defaults: 20, 2)
# Tiny config: the Fashion-MNIST SBAM config on 32 images, 16 per process,
# 2 epochs (a checkpoint each). PYTHON, PORT as for dist_train.sh. Prints one
# line per run and "exit 0 in K of RUNS runs"; exits 1 unless K == RUNS.
set -uo pipefail
RUNS=${1:-20}
NPROC=${2:-2}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PORT=${PORT:-29561}
CONFIG=$ROOT/configs/fmnist/sbam_vit-tiny-p4_1xb256-5e_fmnist.py
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ok=0
aborts=0
for i in $(seq 1 "$RUNS"); do
    start=$(date +%s)
    PORT=$PORT bash "$ROOT/tools/dist_train.sh" "$CONFIG" "$NPROC" \
        --work-dir "$TMP/run$i" --cfg-options \
        train_dataloader.dataset.indices=32 train_dataloader.batch_size=16 \
        train_cfg.max_epochs=2 >"$TMP/log$i" 2>&1
    rc=$?
    abort=$(grep -c 'terminate called' "$TMP/log$i")
    [ "$rc" -eq 0 ] && ok=$((ok + 1))
    [ "$abort" -gt 0 ] && aborts=$((aborts + 1))
    echo "run $i: exit $rc, $(($(date +%s) - start)) s," \
         "'terminate called' lines: $abort"
    if [ "$rc" -ne 0 ]; then tail -n 15 "$TMP/log$i" | sed 's/^/    /'; fi
    rm -rf "$TMP/run$i"
done
echo "exit 0 in $ok of $RUNS runs ($aborts with 'terminate called')," \
     "$NPROC processes"
[ "$ok" -eq "$RUNS" ]
