#!/usr/bin/env bash
# The GPU checks of the harvest, as one run on a lent H200 (the `device` tool):
#   1. the CUDA tests (engine against the reference, synthetic source statistics on CUDA);
#   2. bench/gpu.py at both shapes: update tok/s and stages, peak memory, finalize, checkpoint,
#      the whole daemon's tok/s on the synthetic source;
#   3. bench/checkpoint.py on CUDA: the snapshot stall and the background write.
# The machine has torch but not msgspec: carry its wheel (cp312) in .whl/ first, from this
# repository's root on the CPU machine:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_17_x86_64 -d .whl msgspec==0.23.0
# then run, with carry [".whl"]:  bash bench/device_check.sh
# Outputs land in $OUT (the device tool brings them back): tests.log, gpu.log, gpu.json,
# profile/<shape>.txt (the kernels of one update),
# checkpoint.log. Each step has its own timeout; the whole stays under 9 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH=.
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:.
fi
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.log"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" \
    | tee -a "$OUT/gpu.log"
timeout 120 python3 -m pytest -q -p no:cacheprovider -k cuda \
    tests/harvest tests/sources/test_synthetic_source.py 2>&1 | tee "$OUT/tests.log"
timeout 300 python3 -m bench.gpu --batches 8 --daemon-batches 30 --checkpoint-every 20 \
    --tmp /tmp --json "$OUT/gpu.json" --profile "$OUT/profile" 2>&1 | tee -a "$OUT/gpu.log"
timeout 100 python3 -m bench.checkpoint --device cuda 2>&1 | tee "$OUT/checkpoint.log"
