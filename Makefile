# Two commands matter: `make demo` and `make test`. Both create .venv when it is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
# Packages install with uv (itself from pip): 46 s instead of pip's 100, which `make test`'s
# 10 minutes in a fresh clone need. --compile-bytecode, as pip does: where PYTHONDONTWRITEBYTECODE
# is set (as here), nothing writes .pyc files later, and every process of the suite would compile
# torch's and sympy's sources on import (seconds each). The venv keeps pip (the packaging test
# uses it).
UV := $(PY) -m uv pip install -q --compile-bytecode --python $(PY)
# torch first, pinned: this version's CPU wheel, where it lies on disk (uv does not look there by
# itself); elsewhere the same version from the index. An unpinned torch pulls a CUDA build.
TORCH := $(or $(firstword $(wildcard /opt/wheels/torch-2.13.0+cpu-*.whl)),torch==2.13.0)
STAMP := $(VENV)/.installed

.PHONY: install demo test test-all bench slurm-up slurm-down clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q uv

$(STAMP): pyproject.toml | $(PY)
	$(UV) '$(TORCH)'
	$(UV) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The embedded default: evaluation runs of tms_5-2 and tms_5-2-id on this machine, through the same
# orchestrator code path as a SLURM sweep. It prints where each run's summary and figures are.
demo: install
	$(VENV)/bin/spd-sweep --experiments tms_5-2,tms_5-2-id --local --n_agents 2

test: install
	bash scripts/run_tests.sh -m "not slow"

test-all: install
	bash scripts/run_tests.sh -m ""

bench: install
	$(PY) bench/bench_tms.py
	$(PY) bench/bench_resid_mlp.py
	$(PY) bench/bench_orchestrator.py
	$(PY) bench/bench_data_parallel.py

slurm-up:
	bash scripts/slurm_cluster.sh start

slurm-down:
	bash scripts/slurm_cluster.sh stop

clean:
	rm -rf $(VENV) runs .pytest_cache
