#!/usr/bin/env bash
# One prepared run on a lent GPU machine (issue 16): what it is, the Triton kernels' tests on the GPU, then
# benchmarks/gpu.py; every log under $OUT (the device tool brings $OUT back). Sized for one call of about
# 9 minutes of the 15 a task gets: each step has its own time limit, so a slow one cannot eat the rest.
#
#     bash benchmarks/gpu_session.sh              # on the device machine, from the repository root
#
# That machine has PyTorch, Triton, JAX, optax and pytest but not array-api-compat (sigmax's one
# dependency) nor the peers Liger-Kernel and CCE: carry their wheels as the folder .whl (ignored by git):
#
#     echo /.whl/ >> .git/info/exclude
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#         --platform any -d .whl array-api-compat==1.16.0 liger-kernel==0.8.5 cut-cross-entropy==25.1.1
#
# and name .whl in the run's carry. Off a GPU the script says so and exits 0 (gpu.py does too).
set -u -o pipefail
OUT=${OUT:-/tmp/sigmax-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY=python3
if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv 2>&1
    "$PY" -c "import torch, triton, sigmax; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
'triton', triton.__version__, 'sigmax', sigmax.__version__)" 2>&1
} | tee "$OUT/machine.txt"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA device here: nothing to measure" | tee -a "$OUT/machine.txt"
    exit 0
fi
# the kernels' tests on the GPU (values, gradients, options, half precision), then the dispatch's
timeout 200 "$PY" -m pytest tests/test_triton.py -q -p no:cacheprovider -p no:xdist -W ignore::RuntimeWarning \
    2>&1 | tee "$OUT/tests.log"
# the benchmark: the fused loss at both shapes and the row kernels, as a table for the README
timeout 330 "$PY" benchmarks/gpu.py --reps 10 2>&1 | tee "$OUT/gpu.md"
echo "done: $(date -u)" | tee -a "$OUT/machine.txt"
