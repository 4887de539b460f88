"""The SPD optimisation loop, with checkpoints that make a resumed run identical to an
uninterrupted one (same seed, same data, same masks, same results)."""

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from tqdm import tqdm

from spd.atomic_io import atomic_torch_save
from spd.component_model import ComponentModel
from spd.config import Config
from spd.config_loading import ConfigError
from spd.distributed import DataParallel
from spd.divergence import DivergenceGuard
from spd.evaluate import Evaluation, evaluate
from spd.losses import (
    LossNoise,
    annealed_p,
    compute_losses,
    draw_loss_noise,
    faithfulness_loss,
)
from spd.lr_schedule import lr_at
from spd.metric_log import MetricLog
from spd.metric_names import EVAL_PREFIX, TOTAL_LOSS
from spd.metrics.alive_components import AliveComponentsTracker
from spd.progress import ProgressReporter
from spd.run_dir import RunDir
from spd.step_batch import StepBatch, run_target
from spd.tasks import Task

logger = logging.getLogger(__name__)

MASK_SEED_OFFSET = 1
"""Masks come from their own generator (seed + this), data from the seed itself."""
BAR_LOSS_INTERVAL_S = 1.0
"""Seconds between the progress bar's loss readings: each waits for the device once."""


class Trainer:
    """Owns everything that changes during training and that a checkpoint must restore.

    With several ranks (spd.distributed) every rank holds the same state; rank 0 alone writes
    metrics, progress and checkpoints, and evaluates."""

    def __init__(self, config: Config, model: ComponentModel, task: Task, dp: DataParallel):
        self.config, self.model, self.task, self.dp = config, model, task, dp
        self.device = device = dp.device
        self.params = [p for p in model.components.parameters()] + list(model.ci_fns.parameters())
        # fused: one kernel for all parameters instead of ~25 small ops per tensor
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=0.0, fused=True)
        # A rank that reads only its own share of the data (a split stream) has a data
        # generator of its own; otherwise every rank draws the whole batch from the same one.
        rank_sampler = task.rank_sampler if dp.distributed else None
        self.reads_own_share = rank_sampler is not None
        self.sample_batch = (
            task.sample_batch if rank_sampler is None else rank_sampler(dp.rank, dp.world_size)
        )
        self.data_generator = torch.Generator(device=device).manual_seed(config.seed)
        self.mask_generator = torch.Generator(device=device).manual_seed(config.seed + MASK_SEED_OFFSET)
        self.tracker = AliveComponentsTracker(
            model.module_to_c,
            config.ci_alive_threshold,
            config.n_examples_until_dead,
            config.batch_size * task.positions_per_input,
            device,
        )
        self.guard = DivergenceGuard(device, grad_clipped=config.grad_clip_norm is not None)
        self.reduce_buffer: torch.Tensor | None = None
        self.next_step = 0
        self.compiled_step_losses = (
            # dynamic: the number of rows changes from step to step (only non-trivial rows run)
            torch.compile(self.step_losses, dynamic=True) if config.compile_step else self.step_losses
        )

    # --- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The whole training state (called on every rank: ranks that read their own share of the
        data gather their data generators, one row per rank)."""
        data_state = self.data_generator.get_state()
        if self.reads_own_share:
            data_state = torch.stack(self.dp.gather(data_state))
        return {
            "next_step": self.next_step,
            "model": self.model.trainable_state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "data_generator": data_state,
            "mask_generator": self.mask_generator.get_state(),
            "tracker": self.tracker.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.next_step = state["next_step"]
        self.model.load_trainable_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.data_generator.set_state(self.own_data_state(state["data_generator"]))
        self.mask_generator.set_state(state["mask_generator"])
        self.tracker.load_state_dict(state["tracker"])

    def own_data_state(self, data_state: torch.Tensor) -> torch.Tensor:
        """This rank's data generator state in a checkpoint's: one row per rank when each rank
        read its own share of the data, which only as many ranks can resume."""
        taken_by = data_state.shape[0] if data_state.dim() == 2 else None
        resumed_by = self.dp.world_size if self.reads_own_share else None
        if taken_by is None and resumed_by is not None:
            raise ConfigError(
                "the checkpoint was taken by one process reading the whole streamed dataset, "
                f"which {resumed_by} processes would split between them: resume it in one "
                "process (without --nproc), or start over with --no-resume"
            )
        if taken_by != resumed_by:
            raise ConfigError(
                f"the checkpoint was taken by {taken_by} processes, each reading its own part of "
                f"the streamed dataset: resume it with --nproc {taken_by}, or start over with "
                "--no-resume"
            )
        # A copy: Generator.set_state reads a view's storage from its start (a row other than
        # the first crashes torch 2.13).
        return data_state if taken_by is None else data_state[self.dp.rank].clone()

    def save_checkpoint(self, run_dir: RunDir) -> None:
        # The checkpoint on disk must stay the last finite one: a resume starts from it.
        self.check_finite()
        state = self.state_dict()  # on every rank: it may gather from every rank
        if self.dp.is_main:
            atomic_torch_save(run_dir.checkpoint, state)

    def check_finite(self) -> None:
        """Raise TrainingDiverged if a loss so far, or a trainable parameter, is non-finite."""
        named_parameters = [
            *self.model.components.named_parameters(prefix="components"),
            *self.model.ci_fns.named_parameters(prefix="ci_fns"),
        ]
        self.guard.check_state(self.next_step - 1, named_parameters)

    # --- training
    def faithfulness_warmup(self) -> None:
        """Fit Σ_c UV to the target weights before SPD proper (config.faithfulness_warmup)."""
        warmup = self.config.faithfulness_warmup
        if warmup is None:
            return
        params = list(self.model.components.parameters())
        optimizer = torch.optim.AdamW(
            params, lr=warmup.lr, weight_decay=warmup.weight_decay, fused=True
        )
        for _ in range(warmup.steps):
            loss = faithfulness_loss(self.model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        final_loss = loss.item()
        if not math.isfinite(final_loss):
            self.guard.fail(
                0,
                f"the faithfulness warm-up diverged: final loss {final_loss}",
                "lower faithfulness_warmup.lr",
            )
        logger.info("Faithfulness warm-up: %d steps, final loss %.3g", warmup.steps, final_loss)

    def step_losses(
        self, data: StepBatch, noise: LossNoise, p: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The differentiable part of a step: a pure function of its inputs, which
        `compile_step` captures whole (forward and backward). Returns the total loss, the
        logged terms and the CI (for the alive tracker)."""
        ci = self.model.causal_importances(data.inputs, data.nonzero_rows)
        total, terms = compute_losses(self.model, data, ci, self.config, p, noise)
        return total, terms, ci.lower

    def train_step(self, step: int) -> dict[str, torch.Tensor]:
        config = self.config
        lr = lr_at(step, config.steps, config.lr, config.lr_schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        # Every rank draws the whole batch, and computes its part (spd.distributed), or draws
        # only its part from its own share of the data (Task.rank_sampler).
        part_of = self.dp.rows if self.dp.distributed else None
        drawn_part = None
        if self.reads_own_share:
            own_rows = self.dp.rows(config.batch_size)
            drawn_part = (own_rows, config.batch_size)
            batch = self.sample_batch(own_rows.stop - own_rows.start, self.data_generator)
        else:
            batch = self.sample_batch(config.batch_size, self.data_generator)
        # p as a tensor: an annealed float would make the compiled step recompile every step.
        p = torch.tensor(
            annealed_p(config.losses.importance_minimality, step, config.steps), device=self.device
        )
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=config.autocast_bf16):
            data = run_target(
                self.model, batch, self.task.independent_rows, part_of, drawn_part=drawn_part
            )
            noise = draw_loss_noise(self.model, data, config, self.mask_generator)
            total, terms, ci_lower = self.compiled_step_losses(data, noise, p)
        fired = self.tracker.fired(ci_lower)
        if self.dp.distributed:
            self.zero_reduce_buffer(len(terms) + len(fired))
        else:
            self.optimizer.zero_grad(set_to_none=True)
        if self.dp.distributed:  # this rank's share of the whole step's losses
            total = total * data.share
            terms = {name: value * data.share for name, value in terms.items()}
        total.backward()
        if self.dp.distributed:
            terms, fired = self.sum_over_ranks(terms, fired)
        self.tracker.record(fired)
        if config.grad_clip_norm is not None:
            terms["grad_norm"] = torch.nn.utils.clip_grad_norm_(self.params, config.grad_clip_norm)
        self.optimizer.step()
        terms["lr"] = torch.tensor(lr)
        self.guard.observe(step, terms)
        return terms

    def zero_reduce_buffer(self, n_extra: int) -> None:
        """Zero the buffer that one all-reduce per step sums (data parallel): every gradient is a
        view into it, which backward accumulates into in place, followed by `n_extra` slots for
        the logged terms and the firing flags. Gradients then take no second copy at the
        all-reduce."""
        n_grads = sum(p.numel() for p in self.params)
        if self.reduce_buffer is None or len(self.reduce_buffer) != n_grads + n_extra:
            self.reduce_buffer = torch.zeros(n_grads + n_extra, device=self.device)
            views = self.reduce_buffer[:n_grads].split([p.numel() for p in self.params])
            for param, view in zip(self.params, views, strict=True):
                param.grad = view.view_as(param)
        else:
            self.reduce_buffer.zero_()

    def sum_over_ranks(
        self, terms: dict[str, torch.Tensor], fired: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Sum the gradients, the logged terms and the firing flags of every rank's part of the
        step, in one all-reduce of the buffer that holds the gradients (zero_reduce_buffer)."""
        buffer = self.reduce_buffer
        assert buffer is not None, "zero_reduce_buffer comes first"
        names = list(terms)
        n_grads = len(buffer) - len(names) - len(fired)
        term_sums, fired_sums = buffer[n_grads:].split([len(names), len(fired)])
        term_sums.copy_(torch.stack([terms[name].float() for name in names]))
        fired_sums.copy_(fired)
        self.dp.all_reduce_sum(buffer)
        # Copies: the buffer is zeroed next step, and the terms may be read later (guard, bar).
        return dict(zip(names, term_sums.clone(), strict=True)), fired_sums > 0

    def run(
        self,
        run_dir: RunDir,
        metric_log: MetricLog,
        on_eval: Callable[[int, Evaluation], None],
        progress: bool,
    ) -> Evaluation | None:
        """Train from `next_step` to `steps`; evaluate every eval_freq and at the end. Returns
        the final evaluation (None on ranks other than 0, which neither evaluate nor write).

        Raises TrainingDiverged (spd.divergence) once a loss is non-finite, or before a
        checkpoint or an evaluation would see non-finite parameters (on every rank at once:
        they hold the same state).
        """
        config, main = self.config, self.dp.is_main
        if self.next_step == 0:
            self.faithfulness_warmup()
        if main:
            metric_log.truncate_from(self.next_step)
        reporter = ProgressReporter(run_dir.progress, config.steps, config.progress_interval_s)
        # The bar's loss is read every BAR_LOSS_INTERVAL_S, never without a bar.
        bar_loss_interval_s = BAR_LOSS_INTERVAL_S if progress else math.inf
        bar_loss_read_s = time.monotonic()
        loss: torch.Tensor | None = None  # the latest step's total loss, left on the device
        bar = tqdm(
            range(self.next_step, config.steps),
            initial=self.next_step,
            total=config.steps,
            desc="SPD",
            disable=not (progress and main),
            dynamic_ncols=True,
        )
        if config.compile_step and self.next_step < config.steps and main:
            logger.info("compiling the training step (about 30 s on first use)")
        for step in bar:
            if step % config.eval_freq == 0:
                self.log_eval(step, metric_log, on_eval)
                if main:
                    reporter.report(step, read_loss(loss))
            terms = self.train_step(step)
            loss = terms[TOTAL_LOSS]
            if step % config.log_freq == 0:
                self.guard.check()  # logging syncs the device anyway
                if main:
                    metric_log.log(step, {name: float(value) for name, value in terms.items()})
            self.next_step = step + 1
            if config.save_freq is not None and self.next_step % config.save_freq == 0:
                self.save_checkpoint(run_dir)
            if main and reporter.due(self.next_step):
                self.guard.check()  # reading the loss syncs anyway; never report a nan
                reporter.report(self.next_step, read_loss(loss))
            if time.monotonic() - bar_loss_read_s >= bar_loss_interval_s:
                bar.set_postfix(loss=f"{float(loss):.3g}")
                bar_loss_read_s = time.monotonic()
        bar.close()
        evaluation = self.log_eval(config.steps, metric_log, on_eval)
        if main:
            reporter.report(config.steps, read_loss(loss))
        return evaluation

    def log_eval(
        self, step: int, metric_log: MetricLog, on_eval: Callable[[int, Evaluation], None]
    ) -> Evaluation | None:
        """Rank 0 evaluates; every rank checks its (identical) parameters first, so that a
        diverged run stops on all ranks at once."""
        self.check_finite()  # evaluating non-finite weights fails, or logs nonsense
        if not self.dp.is_main:
            return None
        evaluation = evaluate(self.model, self.task, self.config, self.tracker, step, self.device)
        metric_log.log(step, {EVAL_PREFIX + k: v for k, v in evaluation.metrics.items()})
        on_eval(step, evaluation)
        return evaluation


def read_loss(loss: torch.Tensor | None) -> float | None:
    """The loss as a number (waits for the device), or None before the first step."""
    return None if loss is None else float(loss)
