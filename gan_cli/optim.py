"""Optimizers, learning-rate schedules and the one update every game's networks go through.

An update is: backward, an all-reduce of the gradients under torchrun, unscaling (fp16), the global
gradient norm, and one optimizer step, or none under `trainer.on_nonfinite=skip` when the loss or
the gradients are not finite. Games call `Updater` for each network they train; they own their
optimizers and schedulers, built here from `optim.*`.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from gan_cli import distributed
from gan_cli.distributed import DistInfo
from gan_cli.errors import UserError
from gan_cli.schema import Config, OnNonFinite, OptimName, Schedule


class NonFiniteError(UserError, RuntimeError):
    """A loss, gradient, weight or sample became NaN or inf and `trainer.on_nonfinite` says to stop."""


# torch.optim.Optimizer imports torch._dynamo (1.6 s on a 2-core CPU: more than a short job's
# training) the first time add_param_group, zero_grad, state_dict, load_state_dict or step runs, only
# to mark those methods "never compile" (torch._disable_dynamo) and to put graph breaks around the
# step. gan-cli compiles networks (trainer.compile), never an optimizer, so its optimizers call the
# undecorated methods: the same code, the same numbers, the same state_dict, without that import.
EAGER_METHODS = ("add_param_group", "zero_grad", "state_dict", "load_state_dict", "step")


def eager(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """A subclass of the optimizer class `cls` (same name) whose EAGER_METHODS are the undecorated
    originals (inspect.unwrap), the step under torch.set_grad_enabled(differentiable) as torch's own
    wrapper sets it. When a torch version decorates them differently, `cls` itself is returned: only
    the import time comes back."""
    raw = {name: inspect.unwrap(getattr(cls, name)) for name in EAGER_METHODS}
    if any(raw[name] is getattr(cls, name) for name in EAGER_METHODS):
        return cls
    step = raw.pop("step")

    def eager_step(self: torch.optim.Optimizer, closure: Callable[[], float] | None = None) -> Any:
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            return step(self, closure)

    return type(cls.__name__, (cls,), {**raw, "step": eager_step, "__module__": __name__})


Adam = eager(torch.optim.Adam)
RMSprop = eager(torch.optim.RMSprop)


def build_optimizer(cfg: Config, params: Sequence[Tensor], lr: float) -> torch.optim.Optimizer:
    """Adam (fused: one kernel per step for all parameters on CPU, CUDA and MPS) or RMSprop,
    by optim.name, at base learning rate `lr` (the `eager` versions of torch.optim's)."""
    o = cfg.optim
    if o.name == OptimName.rmsprop:
        return RMSprop(params, lr=lr, weight_decay=o.weight_decay)
    return Adam(params, lr=lr, betas=tuple(o.betas), weight_decay=o.weight_decay, fused=True)


def lr_factor(cfg: Config, step: int) -> float:
    """The schedule's multiplier of the base learning rates after `step` G steps: linear warm-up
    over optim.warmup_steps, held for the fraction optim.decay_start of the horizon, then linear
    or cosine decay to 0 at optim.schedule_steps (0: trainer.steps)."""
    o = cfg.optim
    if o.warmup_steps and step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    horizon = o.schedule_steps or cfg.trainer.steps
    if o.decay_start:
        start = o.decay_start * horizon
        progress = min(1.0, max(0.0, step - start) / max(1.0, horizon - start))
    else:  # the same arithmetic as before decay_start existed: resumed runs stay bit-exact
        progress = min(1.0, step / max(1, horizon))
    if o.schedule == Schedule.linear:
        return 1.0 - progress
    if o.schedule == Schedule.cosine:
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def build_schedulers(cfg: Config, optimizers: Sequence[torch.optim.Optimizer]) -> list[Any]:
    """One LambdaLR per optimizer, following `lr_factor`. The schedule counts G steps, also those
    whose update was skipped, so PyTorch's warning about a step before any update is silenced."""
    warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
    return [torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(cfg, step)) for opt in optimizers]


def apply_optim_config(
    cfg: Config, pairs: Sequence[tuple[torch.optim.Optimizer, Any, float]], rollbacks: int
) -> None:
    """Make (optimizer, scheduler, base lr) pairs do what the config says after a checkpoint
    restored their saved hyperparameters: base rate times trainer.rollback_lr_factor per rollback,
    the schedule's current factor, Adam's betas and the weight decay. With an unchanged config every
    value is the one saved, bit for bit."""
    o = cfg.optim
    factor = cfg.trainer.rollback_lr_factor**rollbacks
    for opt, scheduler, lr in pairs:
        base = lr * factor if rollbacks else lr
        scheduler.base_lrs = [base] * len(opt.param_groups)
        for group in opt.param_groups:
            group["initial_lr"] = base
            group["lr"] = base * lr_factor(cfg, scheduler.last_epoch)
            group["weight_decay"] = o.weight_decay
            if "betas" in group:
                group["betas"] = tuple(o.betas)


class Updater:
    """Applies one update to one network; counts updates skipped under trainer.on_nonfinite=skip
    and gives up (NonFiniteError) after trainer.skip_limit in a row."""

    def __init__(self, cfg: Config, dist: DistInfo, device: torch.device) -> None:
        self.skip = cfg.trainer.on_nonfinite == OnNonFinite.skip
        self.limit = cfg.trainer.skip_limit
        self.dist, self.device = dist, device
        self.in_a_row = 0
        self.total = 0  # skipped updates so far (the loop restores the step's buffers when it moves)
        self.last_good: Callable[[], str] = lambda: ""  # what the checkpoints folder holds (the loop's)

    def __call__(self, params: list[Tensor], opt: torch.optim.Optimizer, scaler: Any, loss: Tensor) -> Tensor:
        """Backward, all-reduce, one optimizer step; returns the global gradient norm (after
        unscaling). Under skip, an update whose loss or gradients are not finite is dropped
        (fp16: the GradScaler drops inf gradients itself and lowers its scale)."""
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.dist.enabled:
            distributed.average_gradients(params, self.dist.world)
        scaler.unscale_(opt)
        grads = [p.grad for p in params if p.grad is not None]
        grad_norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros((), device=self.device)
        if self.skip and self._must_skip(loss, grad_norm, scaler):
            opt.zero_grad(set_to_none=True)
            scaler.update()
            return grad_norm
        scaler.step(opt)
        scaler.update()
        return grad_norm

    def _must_skip(self, loss: Tensor, grad_norm: Tensor, scaler: Any) -> bool:
        """Whether this update is dropped (one host sync; the same answer on every rank)."""
        bad = ~torch.isfinite(loss.detach().float())
        if not scaler.is_enabled():
            bad = bad | ~torch.isfinite(grad_norm)
        if self.dist.enabled:
            bad = distributed.all_reduce_mean(bad.float(), self.dist.world) > 0
        if not bool(bad):
            self.in_a_row = 0
            return False
        self.in_a_row += 1
        self.total += 1
        if self.in_a_row >= self.limit:
            raise NonFiniteError(
                f"{self.in_a_row} updates in a row had a NaN or inf loss or gradient and were skipped "
                f"(trainer.on_nonfinite=skip, trainer.skip_limit={self.limit}): the game has diverged "
                f"and does not recover. {self.last_good()} Lower the learning rates or try "
                "trainer.precision=fp32."
            )
        return True
