#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Is this GPU ready for the paper's training run? On one GPU, at real sizes with random weights and no download,
# in under 8 minutes: training clips/s (MaxiTrainer, CLIP ViT-B/16, the YAML's frames, per-device batch, bf16 and
# loader workers), the training loader's clips/s alone, and the match and caption stages' videos/s, each next to the
# device's own compute-only rate. See benchmarks/gpu_check.py for what each figure measures.
#
#   benchmarks/gpu_check.sh                      # one GPU (CUDA_VISIBLE_DEVICES picks it)
#   benchmarks/gpu_check.sh --json gpu.json      # also write the rates as JSON
#   benchmarks/gpu_check.sh --tiny               # toy sizes on any device, the CPU included: CI's smoke check
#
# PYTHON selects the interpreter (default: python); other arguments go to gpu_check.py (--seconds, --config).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "${PYTHON:-python}" benchmarks/gpu_check.py "$@"
