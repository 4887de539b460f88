"""Where jobs run: base.py (the Backend protocol), local.py, slurm/ (render, templates, backend),
job.py (what a job process runs), track.py (job states), launch.py (submit and follow), and
submitit_adapter.py (the one user of submitit's internals)."""
