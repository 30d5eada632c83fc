#!/usr/bin/env bash
# The GPU path, timed: run it whenever a CUDA machine is at hand (CI never does) and put its
# figures, with the card's name, in the README's Benchmarks section.
#
#   bash benchmarks/gpu_check.sh [--quick]
#
# 1. CUDA against the CPU (graph replays included): tests/test_cuda.py.
# 2. Step and epoch rates at the papers' shapes (002 MNIST 784-1000 and NORB 2048-4000).
# 3. One epoch of every family at the default scale, seeds batched as the stages train them.
# 4. The paper-scale projection of every paper from timed steps on this device.
# 5. Unless --quick: the whole default `dvc repro` from scratch on this device, in a fresh copy.
set -euo pipefail
cd "$(dirname "$0")/.."
python - <<'PY'
import torch
if not torch.cuda.is_available():
    raise SystemExit("error: no CUDA device: this script times the GPU path")
print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
PY
python -m pytest -q -p no:xdist -o addopts="" tests/test_cuda.py
python benchmarks/train_step.py --device cuda --size mnist norb --batch 100 256 --epoch
python benchmarks/epoch_rates.py --device cuda --rows 50000
python benchmarks/paper_scale.py --device cuda
if [[ "${1:-}" != "--quick" ]]; then
    python benchmarks/pipeline.py --full
fi
