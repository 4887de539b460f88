"""spd-sweep: many SPD decompositions, on SLURM or on this machine, tracked in a sweep directory.

The subpackages are the stages a sweep goes through, each importing only the ones before it:

    sweep/     what to run: the sweep file, its parameters, expansion into jobs, the core's
               validation of every job, and the resources jobs ask for
    state/     the sweep directory: its layout, meta and manifest, the code snapshot, the lock
    backends/  where jobs run: the Backend protocol, local and SLURM backends, the job a
               backend runs, tracking job states, and launching a sweep's jobs
    search/    Optuna searches over a sweep's parameters, run by agents that are backend jobs
    report/    what a sweep found: an HTML page and a W&B report, from the sweep directory
    cli/       the `spd-sweep` command, which wires the stages together
"""
