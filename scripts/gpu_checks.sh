#!/usr/bin/env bash
# The GPU checks of the pack engine as one script, for a machine with a CUDA GPU (CI has none):
# the GPU-only tests (the captured step against the eager one), then the GPU cases of the pack
# benchmark (64 and 256 members of the default MLP and of nanda2023, docs/packing_speed.md).
#   bash scripts/gpu_checks.sh          (REPEAT=3 for three rounds) writes docs/bench/pack_gpu.json
set -euo pipefail
cd "$(dirname "$0")/.."
python="${GROKKING_PYTHON:-python}"
"$python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
"$python" -m pytest -q tests/test_pack_engine.py -k gpu
"$python" scripts/bench.py --pack --device cuda --repeat "${REPEAT:-1}" --json docs/bench/pack_gpu.json
