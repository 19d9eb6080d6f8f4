#!/usr/bin/env bash
# The GPU checks in one run (CUDA tests, then the HF-OCU and shadow benchmarks on cuda), for a machine
# with a CUDA device and PyTorch but without certunlearn installed: the repository root goes on
# PYTHONPATH. Output goes to stdout and, with the JSON, to $OUT (default /tmp/certunlearn-gpu): 10
# files (the device tool brings back 8: the shadow files are the ones left out).
# PROBLEMS picks the full-loop precompute problems (default: wine,digits).
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
PROBLEMS=${PROBLEMS:-wine,digits}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"

echo "### CUDA tests"
timeout 180 $PY -m pytest -q -p no:cacheprovider -rs tests/unlearn/test_hfocu.py tests/audit/test_shadows.py \
    tests/autodiff -k "cuda or chain" 2>&1 | tail -5

echo "### precompute"
# wine and digits with the loop in full (≈ 2.5 min on an H200); synthetic with the loop extrapolated
# from 20 steps x 256 samples (in full it would take ≈ 2.5 min more)
timeout 400 $PY benchmarks/bench_precompute.py --device cuda --problems "$PROBLEMS" \
    --peak-tflops "$PEAK" --json "$OUT/precompute.json" 2>&1 | tee "$OUT/precompute.txt"
timeout 200 $PY benchmarks/bench_precompute.py --device cuda --problems synthetic --loop-steps 20 \
    --loop-samples 256 --peak-tflops "$PEAK" --json "$OUT/precompute_synthetic.json" 2>&1 \
    | tee "$OUT/precompute_synthetic.txt"

echo "### deletion latency"
for flag in "" "--prefetch"; do
    timeout 120 $PY benchmarks/bench_delete.py --device cuda $flag --json "$OUT/delete${flag:+_prefetch}.json" \
        2>&1 | tee "$OUT/delete${flag:+_prefetch}.txt"
done

echo "### shadows"
timeout 180 $PY benchmarks/bench_shadows.py --device cuda --repeat 3 --json "$OUT/shadows.json" \
    2>&1 | tee "$OUT/shadows.txt"
