"""SLURM resources of a sweep's jobs: the `--partition --time --gpus ...` flags and `--sbatch K=V`.

Values are validated here (a clear error before anything is rendered); the template quotes them.
They belong to the sweep's definition (what its jobs ask for), which the sweep directory records
and the SLURM backend renders; nothing here depends on how a script is rendered.
"""

import re

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from spd.strict_model import StrictModel

TIME_FORMAT = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
"""SLURM's time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S."""

NAME_FORMAT = r"^[A-Za-z0-9._,+-]+$"
MEM_FORMAT = r"^\d+[KMGT]?$"
FLAG_FORMAT = re.compile(r"^[a-z][a-z0-9-]*$")
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")

MANAGED_FLAGS = frozenset(
    {
        "array",
        "output",
        "error",
        "chdir",
        "job-name",
        "open-mode",
        "signal",
        "requeue",
        "dependency",
        "partition",
        "time",
        "gres",
        "cpus-per-task",
        "mem",
        "account",
        "qos",
        "nodes",
        "ntasks-per-node",
    }
)
"""Flags spd-sweep sets itself (or through its own options): not accepted through --sbatch."""


class UnsafeValueError(ValueError):
    """A value that cannot be written into an sbatch script safely."""


def check_sbatch_value(value: str, what: str) -> str:
    if CONTROL_CHARACTER.search(value):
        raise UnsafeValueError(
            f"{what}: {value!r} contains a newline or another control character, which an "
            "#SBATCH line cannot hold"
        )
    return value


OPTION_FOR_FLAG = {
    "partition": "--partition",
    "time": "--time",
    "gres": "--gpus",
    "cpus-per-task": "--cpus-per-task",
    "mem": "--mem",
    "account": "--account",
    "qos": "--qos",
    "nodes": "--nodes",
    "ntasks-per-node": "--nproc-per-node",
}


class SlurmResources(StrictModel):
    partition: str | None = None
    time: str | None = Field(
        None, description="SLURM time limit: M, H:M:S, D-H, D-H:M:S, ..., or UNLIMITED (not 0)"
    )
    gpus: NonNegativeInt = 0
    cpus_per_task: PositiveInt | None = None
    mem: str | None = Field(None, description="e.g. 4G, 500M")
    account: str | None = None
    qos: str | None = None
    nodes: PositiveInt = Field(
        1, description="Nodes per job: one decomposition, data parallel over all of them"
    )
    nproc_per_node: PositiveInt = Field(
        1, description="Processes (ranks) per node of a job, each with one GPU (or CPU share)"
    )
    extra: dict[str, str] = Field(
        default_factory=dict, description="Other sbatch flags (without --); '' for a bare flag."
    )

    @field_validator("partition", "account", "qos")
    @classmethod
    def _name_format(cls, value: str | None) -> str | None:
        if value is not None and not re.match(NAME_FORMAT, value):
            raise ValueError(f"{value!r} is not a SLURM name (letters, digits and . _ , + -)")
        return value

    @field_validator("mem")
    @classmethod
    def _mem_format(cls, value: str | None) -> str | None:
        if value is not None and not re.match(MEM_FORMAT, value):
            raise ValueError(
                f"{value!r} is not a SLURM memory size: digits and a unit K, M, G or T (e.g. 8G)"
            )
        return value

    @field_validator("time")
    @classmethod
    def _time_format(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.strip().lower() in UNLIMITED_SPELLINGS:
            return UNLIMITED
        if time_minutes(value) == 0:
            # SLURM reads a zero limit as no limit at all: a typo must not mean "forever".
            raise ValueError(
                f"time {value!r} is zero, which SLURM takes as no limit at all; write "
                "--time unlimited if that is what you mean"
            )
        return value

    @field_validator("extra")
    @classmethod
    def _extra_flags(cls, extra: dict[str, str]) -> dict[str, str]:
        for flag, value in extra.items():
            if not FLAG_FORMAT.match(flag):
                raise ValueError(
                    f"--sbatch {flag!r}: a flag name is lowercase letters, digits, '-'"
                )
            if flag in MANAGED_FLAGS:
                option = OPTION_FOR_FLAG.get(flag)
                raise ValueError(
                    f"--sbatch {flag}: spd-sweep sets --{flag} itself"
                    + (f"; use its {option} option" if option else "")
                )
            check_sbatch_value(value, f"--sbatch {flag}")
        return extra

    @model_validator(mode="after")
    def _one_gpu_per_process(self) -> "SlurmResources":
        if self.gpus and self.gpus < self.nproc_per_node:
            raise ValueError(
                f"--gpus {self.gpus} (per node) is fewer than --nproc-per-node "
                f"{self.nproc_per_node}: each process takes one GPU; give --gpus "
                f"{self.nproc_per_node} or more"
            )
        return self

    def directives(self) -> list[tuple[str, str]]:
        """(flag, value) pairs for #SBATCH lines, in a stable order; '' for a bare flag. The
        template asks for the nodes and tasks itself (`nodes`, `nproc_per_node`)."""
        pairs = [
            ("partition", self.partition),
            ("time", self.time),
            ("gres", f"gpu:{self.gpus}" if self.gpus else None),
            ("cpus-per-task", str(self.cpus_per_task) if self.cpus_per_task else None),
            ("mem", self.mem),
            ("account", self.account),
            ("qos", self.qos),
        ]
        return [(flag, value) for flag, value in pairs if value is not None] + sorted(
            self.extra.items()
        )

    @property
    def world_size(self) -> int:
        """The processes (ranks) of each job: nodes x processes per node."""
        return self.nodes * self.nproc_per_node

    def timeout_minutes(self) -> int | None:
        """None when there is no limit (none given, or UNLIMITED)."""
        return None if self.time in (None, UNLIMITED) else time_minutes(self.time)


UNLIMITED = "UNLIMITED"
UNLIMITED_SPELLINGS = ("unlimited", "infinite")
"""How SLURM spells no time limit (case-insensitive); the only way to ask for one here."""


def time_minutes(text: str) -> int:
    """Minutes of a SLURM time limit (rounded up): '90' -> 90, '1-12' -> 2160, '0:30:30' -> 31."""
    match = TIME_FORMAT.match(text)
    if not match:
        raise ValueError(f"time {text!r} is not a SLURM time (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S)")
    days, first, second, third = match.groups()
    if days is not None:  # D-H[:M[:S]]
        hours, minutes, seconds = int(first), int(second or 0), int(third or 0)
        total_s = ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    elif third is not None:  # H:M:S
        total_s = (int(first) * 60 + int(second)) * 60 + int(third)
    else:  # M or M:S
        total_s = int(first) * 60 + int(second or 0)
    return -(-total_s // 60)


MEGABYTES_PER_UNIT = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


def mem_megabytes(text: str) -> float:
    """A SLURM memory size in MB ('8G' -> 8192; no unit: MB, as SLURM reads it)."""
    unit = text[-1].upper() if text[-1].isalpha() else "M"
    return float(text.rstrip("KMGTkmgt")) * MEGABYTES_PER_UNIT[unit]
