# Two commands matter: `make demo` and `make test`. Both create .venv when it is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch first, pinned: the CPU wheel of this version is on disk; an unpinned torch pulls CUDA.
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo test test-all bench slurm-up slurm-down clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q $(TORCH_PIN)
	$(PIP) install -q -e '.[dev]'
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
