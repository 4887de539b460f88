"""SLURM job arrays: render.py (scripts from templates/), backend.py (sbatch, array chunks)."""
