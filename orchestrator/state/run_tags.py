"""How a sweep's runs are known on W&B: the report's runsets and workspaces select them by these
tags, so every run of a sweep (a grid's jobs, a search's trials) carries them."""


def run_tags(sweep_id: str, experiment: str) -> list[str]:
    """The W&B tags of the runs of one experiment of a sweep."""
    return [sweep_id, experiment]
