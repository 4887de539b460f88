"""The named experiments: each is a YAML config shipped with the package."""

from dataclasses import dataclass
from pathlib import Path

EXPERIMENTS_DIR = Path(__file__).parent / "experiments"


@dataclass(frozen=True)
class Experiment:
    name: str
    config_path: Path
    expected_runtime_min: float
    """Rough wall time of the default config on one CPU core, for SLURM time limits."""
    cpus: int = 1
    """CPUs a job of the default config uses well (its torch threads), for SLURM requests."""
    mem: str = "2G"
    """Memory a job of the default config needs with room to spare, for SLURM requests (peaks
    measured on CPU: tms and resid_mlp1 < 0.6 GiB, resid_mlp3 ~1 GiB, torch included)."""


def shipped_config(task: str, name: str) -> Path:
    return EXPERIMENTS_DIR / task / "configs" / f"{name}.yaml"


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in [
        Experiment("tms_5-2", shipped_config("tms", "tms_5-2"), 10),
        Experiment("tms_5-2-id", shipped_config("tms", "tms_5-2-id"), 15),
        Experiment("tms_40-10", shipped_config("tms", "tms_40-10"), 60),
        Experiment("tms_40-10-id", shipped_config("tms", "tms_40-10-id"), 90),
        Experiment("resid_mlp1", shipped_config("resid_mlp", "resid_mlp1"), 60, cpus=2),
        Experiment("resid_mlp2", shipped_config("resid_mlp", "resid_mlp2"), 180, cpus=2),
        Experiment("resid_mlp3", shipped_config("resid_mlp", "resid_mlp3"), 1440, 4, "4G"),
        Experiment("tiny_lm_local", shipped_config("lm", "tiny_lm_local"), 5),
        # The hub LMs are meant for GPUs; on one CPU core they would take months.
        Experiment("ss_llama", shipped_config("lm", "ss_llama"), 100_000, cpus=8, mem="32G"),
        Experiment("gpt2", shipped_config("lm", "gpt2"), 1_000_000, cpus=8, mem="32G"),
    ]
}


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise KeyError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]
