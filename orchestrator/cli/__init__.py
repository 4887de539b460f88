"""The `spd-sweep` command: main.py (the command line: options, help, dispatch), options.py (what
was asked, as typed objects), sweep.py (grid sweeps, evaluation runs, resume, status), search.py
(Optuna searches), report.py (`spd-sweep report`)."""
