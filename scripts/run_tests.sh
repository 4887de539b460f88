#!/usr/bin/env bash
# Runs the test suite in .venv. Tests are hermetic: targets are cached in a fresh temp dir, W&B is
# offline, the Hugging Face hub is off. Extra arguments go to pytest (e.g. -m "not slow").
#
# The SLURM tests need the single-node cluster of scripts/slurm_cluster.sh. This script starts it
# when it can (root, apt available) and stops it afterwards. Where it cannot, the SLURM tests skip
# with a loud reason -- except under CI=true, where a cluster that does not start fails the run.
# Set SPD_TEST_SLURM=0 to leave the cluster alone (the SLURM tests then skip).
# Tests run in two worker processes (pytest-xdist); SPD_TEST_WORKERS=0 runs them serially.
set -euo pipefail
cd "$(dirname "$0")/.."
export SPD_CACHE_DIR="${SPD_CACHE_DIR:-$(mktemp -d -t spd-cache.XXXXXX)}"
export WANDB_MODE=offline HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

started_cluster=0
stop_cluster() {
  if [ "$started_cluster" = 1 ]; then
    bash scripts/slurm_cluster.sh stop >/dev/null 2>&1 || true
  fi
}
trap stop_cluster EXIT

if [ "${SPD_TEST_SLURM:-1}" = 1 ] && [ -z "${SLURM_CONF:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    if ! bash scripts/slurm_cluster.sh status >/dev/null 2>&1; then
      started_cluster=1
    fi
    if exports=$(bash scripts/slurm_cluster.sh start); then
      eval "$exports"
    elif [ "${CI:-}" = true ]; then
      echo "run_tests: the SLURM test cluster did not start (CI=true: this is a failure)" >&2
      exit 1
    else
      echo "run_tests: WARNING: the SLURM test cluster did not start; SLURM tests will skip" >&2
    fi
  else
    echo "run_tests: WARNING: not root or no apt-get: cannot start the SLURM test cluster;" \
      "SLURM tests will skip" >&2
  fi
fi

# Two pytest-xdist workers, one thread each (two cores, no oversubscription): the SLURM tests
# mostly wait on their jobs, and the other worker computes meanwhile (tests/conftest.py keeps the
# SLURM tests in one worker). SPD_TEST_WORKERS=0 runs everything in this process, serially.
workers="${SPD_TEST_WORKERS:-2}"
parallel=()
if [ "$workers" != 0 ]; then
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
  parallel=(-n "$workers" --dist loadgroup)
fi

# The slowest tests, so that a suite growing past its 10 minutes shows where.
.venv/bin/python -m pytest --durations=15 "${parallel[@]}" "$@"
