#!/usr/bin/env bash
# Runs the test suite in .venv. Tests are hermetic: targets are cached in a fresh temp dir, W&B is
# offline, the Hugging Face hub is off. Extra arguments go to pytest (e.g. -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
export SPD_CACHE_DIR="${SPD_CACHE_DIR:-$(mktemp -d -t spd-cache.XXXXXX)}"
export WANDB_MODE=offline HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
