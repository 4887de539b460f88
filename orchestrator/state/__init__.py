"""The sweep directory, the one record of a sweep: sweep_dir.py (layout, meta, manifest, lock),
definition.py (a sweep's id and its written configs and records), code_snapshot.py."""
