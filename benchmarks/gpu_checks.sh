#!/usr/bin/env bash
# The GPU checks in one run (CUDA tests, then the HF-OCU and shadow benchmarks on cuda), for a machine
# with a CUDA device and PyTorch but without certunlearn installed: the repository root goes on
# PYTHONPATH. Output goes to stdout and, with the JSON, to $OUT (default /tmp/certunlearn-gpu): 8 files.
# PROBLEMS=wine,digits picks the precompute problems (default: wine,digits,synthetic).
#
#   OUT=/tmp/gpu bash benchmarks/gpu_checks.sh
#
# --peak-tflops 67: dense FP32 (no tensor cores, PyTorch's default matmul precision) of an H100 SXM or
# H200; pass PEAK=... for another card.
set -u
OUT=${OUT:-/tmp/certunlearn-gpu}
PEAK=${PEAK:-67}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
PROBLEMS=${PROBLEMS:-wine,digits,synthetic}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"

echo "### CUDA tests"
timeout 180 $PY -m pytest -q -p no:cacheprovider -rs tests/unlearn/test_hfocu.py tests/audit/test_shadows.py \
    tests/autodiff -k "cuda or chain" 2>&1 | tail -5

echo "### precompute"
timeout 300 $PY benchmarks/bench_precompute.py --device cuda --problems "$PROBLEMS" \
    --peak-tflops "$PEAK" --json "$OUT/precompute.json" 2>&1 | tee "$OUT/precompute.txt"

echo "### deletion latency"
for flag in "" "--prefetch"; do
    timeout 120 $PY benchmarks/bench_delete.py --device cuda $flag --json "$OUT/delete${flag:+_prefetch}.json" \
        2>&1 | tee "$OUT/delete${flag:+_prefetch}.txt"
done

echo "### shadows"
timeout 180 $PY benchmarks/bench_shadows.py --device cuda --repeat 3 --json "$OUT/shadows.json" \
    2>&1 | tee "$OUT/shadows.txt"
