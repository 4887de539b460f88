"""Reports of a sweep, built from its directory alone: an offline HTML page and a W&B report.

model.py        what a report says (runs, states, metrics, curves), read from disk
figures.py      the report's own matplotlib figures (overlaid losses, alive vs C)
html.py         <sweep>/report/index.html from the jinja2 template and its PNGs
wandb_report.py the same sections as a W&B report and per-experiment workspace views
wandb_spec.py   <sweep>/report/wandb_report.json: that report kept offline, published later
(`spd-sweep report` is in orchestrator.cli.report)
"""
