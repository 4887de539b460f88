"""Everything about a config that can be checked before training: `validate(config)`.

A run checks its config with this before it writes anything, and the orchestrator calls it for
every job of a sweep before it submits one. It costs no weights, no target training and no data:
the target's module tree is built on the meta device, and the patterns, identity insertions,
tied pairs and CI functions are resolved against it exactly as the run will resolve them
(spd.target_checks).

This module itself does not import torch (seconds): the checks that need it import it when a
config needs them, and a Validator with a StructureCache finds the structures resolved by
earlier processes on disk, so validating a sweep's jobs needs no torch once their structures
were resolved.
"""

import dataclasses
import importlib
import re
from dataclasses import dataclass

from spd.config import Config
from spd.config_loading import ConfigError
from spd.structure_cache import StructureCache, covers

DEVICE_TYPES = ("auto", "cpu", "cuda", "mps")
DEVICE_SPELLING = re.compile(r"(cpu|cuda|mps)(?::(0|[1-9][0-9]*))?")
"""A device as torch.device parses it (no torch needed to check a spelling): a type, and
optionally an index."""
MAX_DEVICE_INDEX = 127
"""torch keeps a device's index in 8 bits: torch.device("cuda:256") is cuda:0."""


@dataclass(frozen=True)
class Problem:
    """One thing a config gets wrong: the key it concerns and what to do about it."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def validate(config: Config, check_device_here: bool = True) -> list[Problem]:
    """The config's problems, empty when it can run. `check_device_here=False` checks only the
    device's spelling (a sweep validated on a login node runs on GPU nodes)."""
    return Validator(check_device_here)(config)


STRUCTURE_FIELDS = frozenset(
    {
        "task_config",
        "target_module_patterns",
        "identity_module_patterns",
        "tied_components",
        "ci_fn_type",
        "ci_fn_hidden_dims",
        "sigmoid_type",
        "use_delta_component",
    }
)
"""The fields spd.target_checks.resolve_modules reads: configs equal in these have the same
modules and problems."""


class Validator:
    """`validate` for many configs (a sweep's jobs): the module tree of each distinct structure
    is built once, so a 10,000-job grid over C and coefficients costs a handful of builds; with
    a `structure_cache`, a structure resolved by an earlier process is not built at all."""

    def __init__(
        self, check_device_here: bool = True, structure_cache: StructureCache | None = None
    ) -> None:
        self.check_device_here = check_device_here
        self.structure_cache = structure_cache
        self._modules_of: dict[str, tuple[list[Problem], list[str]]] = {}

    def __call__(self, config: Config) -> list[Problem]:
        problems = device_problems(config.device, self.check_device_here)
        if config.pretrained_model_path is not None:
            from spd.target_checks import pretrained_problems  # torch: for configs with weights

            problems += pretrained_problems(config)
        for field in ("user_metrics", "user_figures"):
            for i, spec in enumerate(getattr(config, field)):
                message = callable_problem(spec)
                if message is not None:
                    problems.append(Problem(f"{field}[{i}]", message))
        return problems + self._modules(config)[0]

    def module_paths(self, config: Config) -> list[str]:
        """The modules a run of `config` decomposes; empty when they cannot be resolved (the
        validation's problems say why)."""
        return self._modules(config)[1]

    def _modules(self, config: Config) -> tuple[list[Problem], list[str]]:
        structure = config.model_dump_json(include=set(STRUCTURE_FIELDS))
        if structure not in self._modules_of:
            self._modules_of[structure] = self._resolve(config, structure)
        return self._modules_of[structure]

    def _resolve(self, config: Config, structure: str) -> tuple[list[Problem], list[str]]:
        """`resolve_modules(config)`, or what it returned in an earlier process."""
        cache = self.structure_cache if covers(config) else None
        entry = cache.load(structure) if cache is not None else None
        if entry is not None:
            return [Problem(**problem) for problem in entry["problems"]], entry["module_paths"]
        from spd.target_checks import resolve_modules  # torch and the models: seconds to import

        problems, module_paths = resolve_modules(config)
        if cache is not None:
            problems_data = [dataclasses.asdict(problem) for problem in problems]
            cache.store(structure, {"problems": problems_data, "module_paths": module_paths})
        return problems, module_paths


def raise_problems(problems: list[Problem]) -> None:
    """ConfigError with one line per problem, when there are any."""
    if problems:
        raise ConfigError("\n".join(str(problem) for problem in problems))


def device_problems(device: str, check_here: bool) -> list[Problem]:
    """A misspelled device; with `check_here`, a CUDA or MPS device that this machine lacks
    (which imports torch to ask)."""
    if device == "auto":
        return []
    spelled = DEVICE_SPELLING.fullmatch(device)
    if spelled is None or int(spelled[2] or 0) > MAX_DEVICE_INDEX:
        return [
            Problem(
                "device",
                f"{device!r} is not a device; use one of {', '.join(DEVICE_TYPES)} "
                "(optionally with an index, e.g. cuda:1)",
            )
        ]
    device_type, index = spelled[1], int(spelled[2] or 0)
    if not check_here or device_type == "cpu":
        return []
    import torch  # only to ask for a GPU that must exist here

    if device_type == "cuda":
        available = torch.cuda.device_count()
        if index >= available:
            return [
                Problem(
                    "device",
                    f"{device!r} is not available here ({available} CUDA "
                    "device(s)); use device=cpu or device=auto",
                )
            ]
    if device_type == "mps" and not torch.backends.mps.is_available():
        return [Problem("device", "mps is not available here; use device=cpu or device=auto")]
    return []


def callable_problem(spec: str) -> str | None:
    """Why 'module:function' cannot be called, or None. Importing runs the module's code, as
    the run itself would."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        return f"{spec!r} is not of the form 'module:function'"
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 -- user code may raise anything; the run would too
        return f"cannot import {module_name!r} ({type(e).__name__}: {e})"
    if not callable(getattr(module, attr, None)):
        return f"module {module_name!r} has no function {attr!r}"
    return None
