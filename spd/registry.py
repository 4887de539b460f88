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


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in [
        Experiment("tms_5-2", EXPERIMENTS_DIR / "tms" / "configs" / "tms_5-2.yaml", 10),
        Experiment("tms_5-2-id", EXPERIMENTS_DIR / "tms" / "configs" / "tms_5-2-id.yaml", 15),
        Experiment("tms_40-10", EXPERIMENTS_DIR / "tms" / "configs" / "tms_40-10.yaml", 60),
        Experiment("tms_40-10-id", EXPERIMENTS_DIR / "tms" / "configs" / "tms_40-10-id.yaml", 90),
        Experiment("resid_mlp1", EXPERIMENTS_DIR / "resid_mlp" / "configs" / "resid_mlp1.yaml", 60),
        Experiment("resid_mlp2", EXPERIMENTS_DIR / "resid_mlp" / "configs" / "resid_mlp2.yaml", 180),
        Experiment("resid_mlp3", EXPERIMENTS_DIR / "resid_mlp" / "configs" / "resid_mlp3.yaml", 1440),
        Experiment("tiny_lm_local", EXPERIMENTS_DIR / "lm" / "configs" / "tiny_lm_local.yaml", 5),
        # The hub LMs are meant for GPUs; on one CPU core they would take months.
        Experiment("ss_llama", EXPERIMENTS_DIR / "lm" / "configs" / "ss_llama.yaml", 100_000),
        Experiment("gpt2", EXPERIMENTS_DIR / "lm" / "configs" / "gpt2.yaml", 1_000_000),
    ]
}


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise KeyError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]
