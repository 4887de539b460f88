"""Everything about a config that can be checked before training: `validate(config)`.

A run checks its config with this before it writes anything, and the orchestrator calls it for
every job of a sweep before it submits one. It costs no weights, no target training and no data:
the target's module tree is built on the meta device, and the patterns, identity insertions,
tied pairs and CI functions are resolved against it exactly as the run will resolve them.
"""

import importlib
from dataclasses import dataclass

import torch

from spd.component_model import ComponentModel
from spd.config import Config
from spd.config_loading import ConfigError
from spd.experiment_tasks import build_target_skeleton
from spd.identity_insertion import insert_identity_operations
from spd.module_patterns import resolve_module_patterns
from spd.tensor_files import UnreadableTensorFile, load_tensor_file

DEVICE_TYPES = ("auto", "cpu", "cuda", "mps")


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
"""The fields `resolve_modules` reads: configs equal in these have the same modules and problems."""


class Validator:
    """`validate` for many configs (a sweep's jobs): the module tree of each distinct structure
    is built once, so a 10,000-job grid over C and coefficients costs a handful of builds."""

    def __init__(self, check_device_here: bool = True) -> None:
        self.check_device_here = check_device_here
        self._modules_of: dict[str, tuple[list[Problem], list[str]]] = {}

    def __call__(self, config: Config) -> list[Problem]:
        problems = device_problems(config.device, self.check_device_here)
        if config.pretrained_model_path is not None:
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
            self._modules_of[structure] = resolve_modules(config)
        return self._modules_of[structure]


def raise_problems(problems: list[Problem]) -> None:
    """ConfigError with one line per problem, when there are any."""
    if problems:
        raise ConfigError("\n".join(str(problem) for problem in problems))


def device_problems(device: str, check_here: bool) -> list[Problem]:
    if device == "auto":
        return []
    try:
        parsed = torch.device(device)
    except RuntimeError:
        parsed = None
    if parsed is None or parsed.type not in DEVICE_TYPES:
        return [
            Problem(
                "device",
                f"{device!r} is not a device; use one of {', '.join(DEVICE_TYPES)} "
                "(optionally with an index, e.g. cuda:1)",
            )
        ]
    if check_here and parsed.type == "cuda":
        available = torch.cuda.device_count()
        if (parsed.index or 0) >= available:
            return [
                Problem(
                    "device",
                    f"{device!r} is not available here ({available} CUDA "
                    "device(s)); use device=cpu or device=auto",
                )
            ]
    if check_here and parsed.type == "mps" and not torch.backends.mps.is_available():
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


def pretrained_problems(config: Config) -> list[Problem]:
    """`pretrained_model_path` holds a state dict of the config's target: readable as tensors
    only (weights_only), with the target's keys and (but for the tiny LM, whose skeleton has a
    placeholder vocabulary) its shapes."""
    path = config.pretrained_model_path
    assert path is not None
    if not path.is_file():
        return [Problem("pretrained_model_path", f"{path} is not a file")]
    try:
        state = load_tensor_file(path)
    except UnreadableTensorFile as e:
        return [Problem("pretrained_model_path", str(e))]
    if config.task_config.task_name == "lm" or not isinstance(state, dict):
        return []  # lm targets load through their own checks (spd.experiments.lm.target)
    expected = {k: tuple(v.shape) for k, v in build_target_skeleton(config).state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    if found != expected:
        wrong = sorted(set(found) ^ set(expected)) or sorted(
            k for k in expected if found[k] != expected[k]
        )
        return [
            Problem(
                "pretrained_model_path",
                f"{path} is not a target of this task_config "
                f"(it differs in {', '.join(wrong[:5])}): train one with spd-train-target",
            )
        ]
    return []


def resolve_modules(config: Config) -> tuple[list[Problem], list[str]]:
    """Build the target's module tree (meta device) and the ComponentModel on it: the problems,
    and the paths of the decomposed modules (empty when there are problems). Reads only
    STRUCTURE_FIELDS."""
    try:
        skeleton = build_target_skeleton(config)
    except (OSError, ValueError) as e:  # ValueError includes lm's ModelUnavailableError
        return [Problem("task_config", one_line(e))], []
    try:
        insert_identity_operations(skeleton, [p for p, _ in config.identity_module_patterns])
    except ValueError as e:
        return [Problem("identity_module_patterns", one_line(e))], []
    try:
        resolved = resolve_module_patterns(skeleton, config.all_module_patterns)
    except ValueError as e:
        return [Problem("target_module_patterns", one_line(e))], []
    try:
        with torch.device("meta"):
            ComponentModel(
                skeleton,
                {path: c for path, (_, c) in resolved.items()},
                config.ci_fn_type,
                config.ci_fn_hidden_dims,
                config.sigmoid_type,
                config.use_delta_component,
                tied_modules=config.tied_components,
            )
    except ValueError as e:
        field = "tied_components" if "tied_components" in str(e) else "ci_fn_type"
        return [Problem(field, one_line(e).removeprefix("tied_components: "))], []
    return [], list(resolved)


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
