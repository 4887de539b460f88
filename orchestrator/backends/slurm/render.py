"""sbatch scripts rendered from jinja2 templates (the packaged `templates/`, or a user's file): one
script per job array.

Templates see the fields of `ArrayScript` and two filters, which every value from the user or
the environment must pass through:
- `sbatch_value` for `#SBATCH` lines. sbatch reads those itself, not through a shell: it honours
  double quotes and backslash escapes only, and a newline would end the directive and start a
  shell command. The filter double-quotes the value and rejects control characters.
- `shquote` for shell lines (shlex.quote).
Undefined names are errors (StrictUndefined), and a broken template is reported with its line.
"""

import importlib.resources
import re
import shlex
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2 import TemplateError as JinjaError

from orchestrator.sweep.resources import UnsafeValueError, check_sbatch_value

DEFAULT_TEMPLATE = "job_array.sbatch.j2"
TEMPLATE_SUFFIX = ".sbatch.j2"
DEFAULT_MAX_ARRAY_SIZE = 1001
"""SLURM's default MaxArraySize; used when `scontrol show config` cannot be asked."""

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TemplateError(ValueError):
    """A template that cannot be found or rendered, with a message meant for the user."""


def sbatch_quote(value: object) -> str:
    """A double-quoted #SBATCH value that sbatch reads back as exactly `value`."""
    text = check_sbatch_value(str(value), "#SBATCH value")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def shell_quote(value: object) -> str:
    return shlex.quote(str(value))


def slurm_filename(path: Path) -> str:
    """A path as a literal in SLURM's filename patterns (--output), where % is special."""
    return str(path).replace("%", "%%")


@dataclass(frozen=True)
class ArrayScript:
    """Everything a template may use."""

    job_name: str
    array_size: int
    max_running: int
    output: str
    """--output filename pattern (SLURM's %A, %a), literal parts escaped by slurm_filename."""
    chdir: str
    directives: list[tuple[str, str]]
    """Resource flags (without --) and values; '' for a bare flag."""
    signal_delay_s: int
    """Seconds before the time limit at which the job gets USR2 to checkpoint and requeue."""
    python: str
    runner_module: str
    """The module (`python -m`) that runs a task, given submitit_folder and staging_folder."""
    submitit_folder: str
    staging_folder: str
    """The tasks' calls, pickled before sbatch as `<task index>.pkl`."""
    code_dir: str
    """The snapshot of the code as of submission; first on the jobs' PYTHONPATH."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment variables the jobs need to see, whatever sbatch's --export policy."""
    nodes: int = 1
    nproc_per_node: int = 1
    """Each task is one decomposition in nodes x nproc_per_node processes (ranks) when that is
    more than 1: one torchrun per node under srun (the directives ask for the nodes)."""

    def __post_init__(self) -> None:
        bad = [name for name in self.env if not ENV_NAME.match(name)]
        if bad:
            raise UnsafeValueError(f"not environment variable names: {', '.join(bad)}")
        if not 1 <= self.max_running or not 1 <= self.array_size:
            raise ValueError("an array has at least one task and runs at least one at a time")
        if not 1 <= self.nodes or not 1 <= self.nproc_per_node:
            raise ValueError("a task runs on at least one node, in at least one process per node")

    @property
    def array(self) -> str:
        return f"0-{self.array_size - 1}%{min(self.max_running, self.array_size)}"


def packaged_templates() -> Path:
    """The templates shipped as package data. Installs unpack packages into directories (no zip
    imports), so the resource is a real directory that jinja2 can load from."""
    return Path(str(importlib.resources.files(__package__).joinpath("templates")))


def available_templates() -> list[str]:
    return sorted(p.name for p in packaged_templates().glob(f"*{TEMPLATE_SUFFIX}"))


def resolve_template(name: str) -> Path:
    """A template file: a path, or the name of a packaged one (with or without .sbatch.j2)."""
    packaged = packaged_templates()
    candidates = [Path(name), packaged / name, packaged / f"{name}{TEMPLATE_SUFFIX}"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise TemplateError(
        f"no template {name!r}: give a file or one of {', '.join(available_templates()) or 'none'} "
        f"(packaged in {packaged})"
    )


def render_array_script(template: Path, script: ArrayScript) -> str:
    env = Environment(
        loader=FileSystemLoader(template.parent),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["sbatch_value"] = sbatch_quote
    env.filters["shquote"] = shell_quote
    context = asdict(script) | {"array": script.array}
    try:
        text = env.get_template(template.name).render(**context)
    except TemplateSyntaxError as e:
        raise TemplateError(f"template {template}, line {e.lineno}: {e.message}") from None
    except UndefinedError as e:
        raise TemplateError(
            f"template {template} uses an undefined value ({e.message}); templates can use: "
            f"{', '.join(sorted(context))}"
        ) from None
    except JinjaError as e:
        raise TemplateError(f"template {template}: {e}") from None
    if not text.startswith("#!"):
        raise TemplateError(f"template {template} must render a script starting with '#!'")
    return text


def max_array_size() -> int:
    """The cluster's MaxArraySize (from `scontrol show config`), else SLURM's default."""
    try:
        out = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return DEFAULT_MAX_ARRAY_SIZE
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.MULTILINE)
    return int(match.group(1)) if match else DEFAULT_MAX_ARRAY_SIZE


def array_chunks(n_jobs: int, max_size: int) -> list[range]:
    """Index ranges of the arrays that hold n_jobs tasks when one array holds at most max_size
    (array indices run from 0 to MaxArraySize - 1)."""
    return [range(start, min(start + max_size, n_jobs)) for start in range(0, n_jobs, max_size)]
