#!/usr/bin/env bash
# Everything to measure on a machine with a CUDA GPU, in one call of a few minutes (the issues on
# speed, data parallel and science ask for these figures; most sessions get no GPU):
#   1. the tests that take a CUDA device when there is one (the divergence guard's sync-free
#      check, the compiled step);
#   2. bench/: tms_5-2, tms_40-10, resid_mlp1, resid_mlp3 in fp32 and bf16 autocast, with peak
#      GPU memory; data parallel with NCCL (one rank per GPU);
#   3. the first 2,000 steps of resid_mlp3 (registry config, steps=2000), with their losses.
# Without a CUDA device it says so and exits with code 3, having measured nothing.
#
#   bash bench/gpu_check.sh                 # uses .venv/bin/python
#   PY=python bash bench/gpu_check.sh       # another interpreter (a CUDA build of torch)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export WANDB_MODE=offline HF_HUB_OFFLINE=1 SPD_CACHE_DIR=${SPD_CACHE_DIR:-$(mktemp -d)}
OUT=${OUT:-$(mktemp -d)}

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing measured"
  exit 3
fi
"$PY" -c 'import torch; print("gpu_check:", torch.__version__, [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])'
status=0
step() { echo; echo "=== $*"; "$@" || { status=1; echo "=== FAILED: $*"; }; }

step "$PY" -m pytest -q -p no:cacheprovider tests/spd/test_divergence.py tests/spd/test_compile_step.py
step "$PY" bench/bench_tms.py --steps 300 --modes eager,compiled --precisions fp32,bf16
step "$PY" bench/bench_resid_mlp.py --experiments resid_mlp1,resid_mlp3 --paths fast,compiled --precisions fp32,bf16
step "$PY" bench/bench_data_parallel.py --experiments resid_mlp1,resid_mlp3
step "$PY" -m spd.cli resid_mlp3 --set steps=2000 --set log_freq=100 --set eval_freq=500 --quiet --out "$OUT/resid_mlp3"
if [ -f "$OUT/resid_mlp3/metrics.jsonl" ]; then
  "$PY" - "$OUT/resid_mlp3/metrics.jsonl" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    record = json.loads(line)
    losses = {k: round(v, 6) for k, v in record.items() if k in ("loss/total", "eval/loss/total") or k.startswith("eval/alive/")}
    print(record["step"], losses)
EOF
fi
exit $status
