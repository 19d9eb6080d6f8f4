#!/usr/bin/env bash
# The GPU checks in one run (CUDA tests, then the HF-OCU and shadow benchmarks on cuda), for a machine
# with a CUDA device and PyTorch but without certunlearn installed: the repository root goes on
# PYTHONPATH. Logs and JSON land in $OUT (default /tmp/certunlearn-gpu); summary lines go to stdout.
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
summary='^(==|library|  [0-9.e+]+ matmul|loop|  full-problem|speed-up|statistics|d = |  p50|forget|noise|shadows|vectorised|sequential|ratio|max )'

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"

echo "### CUDA tests"
timeout 180 $PY -m pytest -q -p no:cacheprovider -rs tests/unlearn/test_hfocu.py tests/audit/test_shadows.py \
    tests/autodiff -k "cuda or chain" 2>&1 | tee "$OUT/pytest_cuda.txt" | tail -5

echo "### precompute"
timeout 300 $PY benchmarks/bench_precompute.py --device cuda --problems wine,digits,synthetic \
    --peak-tflops "$PEAK" --json "$OUT/precompute.json" > "$OUT/precompute.txt" 2>&1
grep -E "$summary" "$OUT/precompute.txt" || tail -20 "$OUT/precompute.txt"

echo "### deletion latency"
for flag in "" "--prefetch"; do
    timeout 120 $PY benchmarks/bench_delete.py --device cuda $flag --json "$OUT/delete${flag:+_prefetch}.json" \
        > "$OUT/delete${flag:+_prefetch}.txt" 2>&1
    grep -v '^[ {}"]' "$OUT/delete${flag:+_prefetch}.txt" | head -40
done

echo "### shadows"
timeout 180 $PY benchmarks/bench_shadows.py --device cuda --repeat 3 --json "$OUT/shadows.json" \
    > "$OUT/shadows.txt" 2>&1
grep -v '^[ {}"]' "$OUT/shadows.txt" | head -30
