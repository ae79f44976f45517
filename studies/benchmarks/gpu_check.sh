#!/usr/bin/env bash
# The GPU check of the instance trainer (gpu_check.py) on one GPU, in at most 8 minutes.
#
#   bash studies/benchmarks/gpu_check.sh            # writes $OUT/gpu_check.json (or ./)
#   bash studies/benchmarks/gpu_check.sh --quick    # seconds, on any machine
#
# The GPU machine's python3 has torch, numpy and pandas but not optuna: wheels carried in
# .whl/ (see docs/performance.md, "GPU") are installed into /tmp/site first.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import optuna" 2>/dev/null && [ -d .whl ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
"$PYTHON" -c "import torch, optuna, pandas, tqdm" || {
    echo "gpu_check: missing Python packages (see docs/performance.md, GPU)" >&2
    exit 2
}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
# 470 s: the check stops starting timings after 420 s; this is the hard stop under 8 minutes.
exec timeout 470 "$PYTHON" studies/benchmarks/gpu_check.py "$@"
