"""The checks of spd.validate that need the target's module tree (built on the meta device) or
its weights, and so torch: spd.validate imports this module only for a config that needs them,
which keeps a sweep's validation free of torch once its structures are cached
(spd.structure_cache)."""

import torch

from spd.component_model import ComponentModel
from spd.config import Config
from spd.experiment_tasks import build_target_skeleton
from spd.identity_insertion import insert_identity_operations
from spd.module_patterns import resolve_module_patterns
from spd.tensor_files import UnreadableTensorFile, load_tensor_file
from spd.validate import Problem


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
    spd.validate.STRUCTURE_FIELDS."""
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
