#!/usr/bin/env bash
# One GPU, one table (issue 17): BLIP-base, Qwen2-VL-2B (transformers and vLLM) and BLIP-2
# OPT-6.7B (bf16 and 8-bit) at real size with random weights: images/s, peak GPU memory, ratio to
# the seed loop, against the targets. Exit 1 with a FAILED row when a path does not run (vLLM or
# bitsandbytes missing included), 3 when one misses its target, 124 when the timed check overruns
# its 8 minutes. The random-weight models are built and cached first (~/.cache/medcap-bench, about
# 22 GB; minutes on the first run only), outside that budget.
#
#   bash benchmarks/gpu_check.sh                 # needs: requirements.txt, vllm, bitsandbytes
#   PYTHON=/path/to/venv/bin/python bash benchmarks/gpu_check.sh --only blip,qwen2-vl
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: FAILED: no CUDA GPU visible to $PYTHON (torch.cuda.is_available() is False)" >&2
    exit 1
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
# Building the random-weight models (first run only, cached) is not part of the timed check.
"$PYTHON" -m benchmarks.gpu_check --device cuda --size real --build-only "$@"
# The check itself: killed (non-zero exit) if it overruns the 8-minute budget.
exec timeout --signal=INT 480 "$PYTHON" -m benchmarks.gpu_check --device cuda --size real "$@"
