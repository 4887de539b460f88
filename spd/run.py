"""One decomposition from a validated config: `run_decomposition(config, run_dir)`.

It writes the run directory (see spd.run_dir), resumes from its checkpoint when one exists, and
returns the summary that it also writes to summary.json. A completed run is not run again.
"""

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.contrib.logging import logging_redirect_tqdm

from spd.atomic_io import atomic_torch_save, atomic_write_json, atomic_write_text
from spd.batch_split import check_batch_split
from spd.component_model import ComponentModel
from spd.config import Config
from spd.config_fingerprint import RunFingerprint, differences, fingerprint_of
from spd.config_loading import ConfigError, config_to_yaml
from spd.dir_lock import DirBusyError, DirLock
from spd.distributed import DataParallel, data_parallel
from spd.evaluate import Evaluation, load_callable
from spd.experiment_tasks import build_task
from spd.figures import (
    ci_per_feature_figure,
    component_norms_figure,
    loss_curves_figure,
    save_figure,
)
from spd.identity_insertion import insert_identity_operations
from spd.metric_log import MetricLog
from spd.metric_names import FIGURE_PREFIX
from spd.module_patterns import format_resolution_table, resolve_module_patterns
from spd.run_dir import RunDir
from spd.run_summary import ModuleSummary, RunSummary
from spd.tensor_files import UnreadableTensorFile, load_tensor_file
from spd.train import Trainer
from spd.validate import raise_problems, validate

logger = logging.getLogger(__name__)


def build_component_model(
    config: Config, device: torch.device, *, progress: bool
) -> tuple[ComponentModel, Any, dict[str, tuple[str, int]]]:
    """The task, its target with identities inserted, and the ComponentModel wrapping it.
    `progress` shows a bar while the target is trained (when it is not cached)."""
    task = build_task(config, device, progress=progress)
    if config.identity_module_patterns:
        insert_identity_operations(task.target, [p for p, _ in config.identity_module_patterns])
    resolved = resolve_module_patterns(task.target, config.all_module_patterns)
    torch.manual_seed(config.seed)
    model = ComponentModel(
        task.target,
        {path: c for path, (_, c) in resolved.items()},
        config.ci_fn_type,
        config.ci_fn_hidden_dims,
        config.sigmoid_type,
        config.use_delta_component,
        task.output_attr,
        tied_modules=config.tied_components,
        compile_ci_fns=config.compile,
    )
    return model, task, resolved


def wandb_mode() -> str:
    """WANDB_MODE when set, else online exactly when credentials are (WANDB_API_KEY)."""
    return os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")


def start_wandb(config: Config, run_dir: RunDir) -> Any | None:
    if config.wandb_project is None:
        return None
    import wandb

    mode = wandb_mode()
    run = wandb.init(
        project=config.wandb_project,
        name=config.wandb_run_name or run_dir.path.name,
        tags=config.wandb_tags,
        config=config.model_dump(mode="json"),
        dir=str(run_dir.path),
        mode=mode,
        reinit="finish_previous",
    )
    if mode == "offline":
        logger.info("W&B is offline; upload later with: wandb sync %s", Path(run.dir).parent)
    return run


class _RunLogHandler(logging.FileHandler):
    """run.log of one run; removed again when the run ends."""


def attach_run_log(run_dir: RunDir) -> logging.Handler:
    handler = _RunLogHandler(run_dir.log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("spd").addHandler(handler)
    logging.getLogger("spd").setLevel(logging.INFO)
    return handler


def save_figures(
    run_dir: RunDir, model: ComponentModel, evaluation: Evaluation, config: Config, task: Any
) -> list[str]:
    figures = {"component_norms": component_norms_figure(model)}
    if evaluation.probe_ci:
        figures["ci_per_feature"] = ci_per_feature_figure(evaluation.probe_ci)
    if run_dir.metrics.exists():
        figures["loss_curves"] = loss_curves_figure(run_dir.metrics)
    for spec in config.user_figures:
        figures |= load_callable(spec)(model=model, task=task, config=config)
    for name, fig in figures.items():
        save_figure(fig, run_dir.figures / f"{name}.png")
    return sorted(str((run_dir.figures / f"{n}.png").relative_to(run_dir.path)) for n in figures)


def log_figures(wandb_run: Any, run_dir: RunDir, figures: list[str], step: int) -> None:
    """The figures' PNGs (paths relative to the run directory) as W&B images at `step`, under
    `figures/<name>` (spd.metric_names.FIGURE_PREFIX)."""
    import wandb

    wandb_run.log(
        {FIGURE_PREFIX + Path(f).stem: wandb.Image(str(run_dir.path / f)) for f in figures},
        step=step,
    )


def build_summary(
    config: Config,
    resolved: dict[str, tuple[str, int]],
    evaluation: Evaluation,
    figures: list[str],
    wall_time_s: float,
    trained_steps: int,
) -> RunSummary:
    metrics = evaluation.metrics
    return RunSummary(
        task=config.task_config.task_name,
        steps=config.steps,
        wall_time_s=round(wall_time_s, 3),
        steps_per_s=round(trained_steps / wall_time_s, 3) if wall_time_s > 0 else None,
        metrics=metrics,
        modules={
            path: ModuleSummary.of(pattern, c, path, metrics)
            for path, (pattern, c) in resolved.items()
        },
        figures=figures,
    )


EvalHook = Callable[[int, Evaluation], None]
"""Called with (step, evaluation) after every periodic evaluation, e.g. to prune a search trial."""


@dataclass(frozen=True)
class RankStart:
    """What rank 0 tells the other ranks once it has checked the run directory."""

    error: str | None = None
    """Rank 0 stopped with this error before training."""
    summary_json: str | None = None
    """The run had completed already: its summary."""


def run_decomposition(
    config: Config,
    out_dir: Path,
    resume: bool = True,
    progress: bool = True,
    on_eval: EvalHook | None = None,
) -> RunSummary:
    """Run (or resume, or return the finished result of) one decomposition in `out_dir`.

    Everything that can be checked before training is checked before anything is written:
    the config (spd.validate), and that `out_dir` holds nothing but a run of this same config
    (spd.config_fingerprint) with a readable checkpoint. Raises ConfigError otherwise, and
    DirBusyError while another live process runs in `out_dir` (spd.dir_lock).
    `resume=False` starts over: a previous run's files in `out_dir` are removed first.

    Started by torchrun as one of several ranks (spd.distributed), it trains its part of every
    step; rank 0 checks and writes the run directory, and every rank returns the summary."""
    raise_problems(validate(config))
    run_dir = RunDir(Path(out_dir))
    with data_parallel(config.device) as dp:
        check_batch_split(config.batch_size, dp.world_size)
        if not dp.is_main:
            return follow_main_rank(config, run_dir, resume, dp)
        return run_as_main_rank(config, run_dir, resume, progress, on_eval, dp)


def run_as_main_rank(
    config: Config,
    run_dir: RunDir,
    resume: bool,
    progress: bool,
    on_eval: EvalHook | None,
    dp: DataParallel,
) -> RunSummary:
    fingerprint = fingerprint_of(config)
    checkpoint = None
    ranks_told = False  # once the other ranks know how this run starts, errors are their own
    try:
        if resume:
            check_same_config(run_dir, fingerprint)
            if run_dir.is_complete():
                return tell_ranks_completed(run_dir, dp)
            checkpoint = read_checkpoint(run_dir)
        with DirLock(run_dir.path, "run directory"):
            # Another process may have finished the run between the checks above and the lock.
            if resume and run_dir.is_complete():
                return tell_ranks_completed(run_dir, dp)
            if not resume:
                run_dir.clear()
            atomic_write_text(run_dir.fingerprint, fingerprint.model_dump_json(indent=2) + "\n")
            dp.broadcast_from_main(RankStart())
            ranks_told = True
            handler = attach_run_log(run_dir)
            try:
                return _run(config, run_dir, checkpoint, progress, on_eval, dp)
            finally:
                logging.getLogger("spd").removeHandler(handler)
                handler.close()
    except (ConfigError, DirBusyError) as e:
        if not ranks_told:
            dp.broadcast_from_main(RankStart(error=str(e)))
        raise


def tell_ranks_completed(run_dir: RunDir, dp: DataParallel) -> RunSummary:
    summary = completed_summary(run_dir)
    dp.broadcast_from_main(RankStart(summary_json=summary.model_dump_json()))
    return summary


def follow_main_rank(config: Config, run_dir: RunDir, resume: bool, dp: DataParallel) -> RunSummary:
    """A rank other than 0: train once rank 0 has checked the run directory; write nothing."""
    start: RankStart = dp.broadcast_from_main(None)
    if start.error is not None:
        raise ConfigError(start.error)
    if start.summary_json is not None:
        return RunSummary.model_validate_json(start.summary_json)
    checkpoint = read_checkpoint(run_dir) if resume else None
    return _run(config, run_dir, checkpoint, False, None, dp)


def completed_summary(run_dir: RunDir) -> RunSummary:
    logger.info("Run %s already completed; not running it again", run_dir.path)
    return RunSummary.read(run_dir.summary)


def check_same_config(run_dir: RunDir, fingerprint: RunFingerprint) -> None:
    """Raise unless `run_dir` is new, or holds a run of a config with this fingerprint."""
    if not run_dir.holds_a_run():
        return
    start_over = "start over there with --no-resume, or choose another --out"
    if not run_dir.fingerprint.exists():
        raise ConfigError(
            f"{run_dir.path} holds a run without a fingerprint.json (an older spd, or files "
            f"copied in), so it cannot tell which config it belongs to: {start_over}"
        )
    try:
        recorded = RunFingerprint.model_validate_json(run_dir.fingerprint.read_text())
    except (ValueError, OSError) as e:
        raise ConfigError(f"{run_dir.fingerprint} cannot be read ({type(e).__name__}): {start_over}") from None
    changed = differences(recorded, fingerprint)
    if changed:
        raise ConfigError(
            f"{run_dir.path} holds a run of another config ({'; '.join(changed)}): {start_over}"
        )


def read_checkpoint(run_dir: RunDir) -> dict[str, Any] | None:
    """The checkpoint's training state, or None when there is none (spd.tensor_files)."""
    if not run_dir.checkpoint.exists():
        return None
    try:
        return load_tensor_file(run_dir.checkpoint)
    except UnreadableTensorFile as e:
        raise ConfigError(f"checkpoint {e}: start over with --no-resume") from None


def _run(
    config: Config,
    run_dir: RunDir,
    checkpoint: dict[str, Any] | None,
    progress: bool,
    user_on_eval: EvalHook | None,
    dp: DataParallel,
) -> RunSummary:
    main = dp.is_main
    if main:
        atomic_write_text(run_dir.config, config_to_yaml(config))
    model, task, resolved = build_component_model(config, dp.device, progress=progress)
    if main:
        logger.info("Per-module C:\n%s", format_resolution_table(resolved))
        atomic_write_json(
            run_dir.modules, {path: {"pattern": p, "C": c} for path, (p, c) in resolved.items()}
        )
    if dp.distributed:
        logger.info("Data parallel: rank %d of %d on %s", dp.rank, dp.world_size, dp.device)
    trainer = Trainer(config, model, task, dp)
    if checkpoint is not None:
        try:
            trainer.load_state_dict(checkpoint)
        except ConfigError:
            raise
        except (RuntimeError, KeyError, ValueError) as e:
            raise ConfigError(
                f"checkpoint {run_dir.checkpoint} does not fit this config's model "
                f"({' '.join(str(e).split())[:200]}): start over with --no-resume"
            ) from None
        if main:
            logger.info("Resuming %s from step %d", run_dir.path, trainer.next_step)
    elif main and run_dir.metrics.exists():
        run_dir.metrics.unlink()
    start_step = trainer.next_step
    wandb_run = start_wandb(config, run_dir) if main else None
    metric_log = MetricLog(run_dir.metrics, wandb_run)

    def on_eval(step: int, evaluation: Evaluation) -> None:
        drawn_at_this_step = (
            config.image_freq is not None
            and step % config.image_freq == 0
            and (step > 0 or config.image_on_first_step)
            and step < config.steps  # the end draws them anyway, below
        )
        if drawn_at_this_step:
            figures = save_figures(run_dir, model, evaluation, config, task)
            if wandb_run is not None:
                log_figures(wandb_run, run_dir, figures, step)
        if user_on_eval is not None:
            user_on_eval(step, evaluation)

    started = time.perf_counter()
    # With a progress bar, log lines (progress lines among them) print above it, not through it.
    with logging_redirect_tqdm() if progress else contextlib.nullcontext():
        evaluation = trainer.run(run_dir, metric_log, on_eval, progress)
    wall_time = time.perf_counter() - started
    if evaluation is None:  # a rank other than 0: rank 0 wrote the results
        return RunSummary.model_validate_json(dp.broadcast_from_main(None))
    atomic_torch_save(
        run_dir.model, {"module_to_c": model.module_to_c, **model.trainable_state_dict()}
    )
    figures = save_figures(run_dir, model, evaluation, config, task)
    summary = build_summary(
        config, resolved, evaluation, figures, wall_time, config.steps - start_step
    )
    summary.write(run_dir.summary)
    dp.broadcast_from_main(summary.model_dump_json())
    if wandb_run is not None:
        log_figures(wandb_run, run_dir, figures, config.steps)
        wandb_run.summary.update(summary.flat())
        wandb_run.finish()
    logger.info("Finished: %s", run_dir.path)
    return summary
