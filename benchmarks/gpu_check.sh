#!/usr/bin/env bash
# One prepared GPU check of the objective: the CUDA correctness tests, then the benchmark.
#
#   bash benchmarks/gpu_check.sh      # from the repository root, on a machine with a GPU
#
# Needs only python3 with torch, triton, numpy and pytest: no network, no Ray, DeepSpeed or
# vLLM (rsrl.objective imports torch and, on the Triton path, triton). Liger-Kernel, the
# comparison, is used when importable or when its wheel was carried in .whl/ (fetch it with
# `pip download liger-kernel==0.8.5 --no-deps -d .whl`); it is unpacked, not pip-installed.
# Logs go to $OUT (or /tmp): objective_tests.txt and loss_benchmark.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1
unset TRITON_INTERPRET  # the real compiler on the GPU

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__,
      torch.cuda.get_device_name())" || exit 1

if ! python3 -c "import liger_kernel" 2>/dev/null; then
    wheel=$(ls .whl/liger_kernel-*.whl 2>/dev/null | head -n 1)
    if [ -n "$wheel" ]; then
        site=$(mktemp -d)
        python3 -m zipfile -e "$wheel" "$site" && export PYTHONPATH="$PYTHONPATH:$site"
    fi
fi
python3 -c "import liger_kernel; print('liger-kernel from', liger_kernel.__path__[0])" \
    || echo "liger-kernel not available: Liger columns stay empty"

status=0
timeout 420 python3 -m pytest -q -p no:cacheprovider tests/objective 2>&1 \
    | tee "$OUT/objective_tests.txt" || status=1
timeout 420 python3 benchmarks/loss.py --device cuda --repeats 10 2>&1 \
    | tee "$OUT/loss_benchmark.txt" || status=1
exit $status
