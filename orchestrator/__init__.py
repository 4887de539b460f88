"""spd-sweep: expand, validate, render, submit and track SPD decompositions on SLURM or locally."""
