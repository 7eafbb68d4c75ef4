#!/usr/bin/env bash
# Install everything (tools/install.sh), then run the test suite on CPU.
#   bash tools/run_tests.sh [pytest options]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${MMSBAM_VENV:-$ROOT/.venv}"
bash "$ROOT/tools/install.sh"
cd "$ROOT"
exec "$VENV/bin/python" -m pytest tests -q -p no:cacheprovider "$@"
