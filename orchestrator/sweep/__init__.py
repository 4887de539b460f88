"""What a sweep runs: file.py (the sweep file), params.py (swept keys and values), expand.py (the
jobs), validate.py (the core's validation of every job), resources.py (what each job asks for)."""
