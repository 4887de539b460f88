"""Optuna searches: spec.py (the search file), study.py (storage, sampler, pruner; the one user of
Optuna's internals), agent.py (the job that runs trials), launch.py, results.py."""
