"""The training loop: D step(s), G step, AMP, EMA, health, and the whole state for exact resume.

The trainer does no I/O of its own beyond calling `RunLogger` and `CheckpointWriter`.
"""

from __future__ import annotations

import copy
import math
import random
import signal
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from gan_cli import __version__, distributed
from gan_cli.augment import diff_augment
from gan_cli.checkpoint import (
    GENERATOR_FORMAT,
    CheckpointError,
    CheckpointWriter,
    load_checkpoint,
    nonfinite_tensors,
    save_atomic,
)
from gan_cli.data import make_batches, mixture_modes
from gan_cli.distributed import DistInfo
from gan_cli.errors import UserError
from gan_cli.health import HealthMonitor, frozen_buffers, mean_pairwise_distance
from gan_cli.latent import sample_latents
from gan_cli.logs import RunLogger, image_grid, scatter_image
from gan_cli.losses import LOSSES, clip_weights, gradient_penalty, r1_penalty, smoothed_gan_d
from gan_cli.models import build_models, check_buildable, is_conditional
from gan_cli.models.norm import recompute_batchnorm_stats
from gan_cli.schema import (
    Config,
    ConfigError,
    Device,
    Labels,
    LossName,
    OnNonFinite,
    OptimName,
    Precision,
    Schedule,
)
from gan_cli.unroll import call_with, unrolled_params

POINT_SAMPLES = 2500  # fixed-noise points drawn for a 2-D scatter (the PacGAN evaluation count)


class NonFiniteError(UserError, RuntimeError):
    """A loss became NaN or inf and `trainer.on_nonfinite` says to stop."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; a checkpoint was written (`checkpoint`), or none could be (None:
    the state was not finite), and `last_good` says what the checkpoints folder holds."""

    def __init__(self, signum: int, checkpoint: Path | None, last_good: str) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.checkpoint = checkpoint
        self.last_good = last_good


class RolledBack(Exception):  # noqa: N818 - control flow, not an error
    """The run went back to its last checkpoint (trainer.on_nonfinite=rollback); the loop goes on."""


def resolve_device(name: Device) -> torch.device:
    if name == Device.auto:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == Device.cuda and not torch.cuda.is_available():
        raise ConfigError("trainer.device=cuda, but no CUDA GPU is available; use trainer.device=cpu or auto")
    if name == Device.mps and not torch.backends.mps.is_available():
        raise ConfigError("trainer.device=mps, but MPS is not available; use trainer.device=cpu or auto")
    return torch.device(name.value)


def resolve_precision(p: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32."""
    if p == Precision.auto:
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else None
    return {Precision.fp32: None, Precision.bf16: torch.bfloat16, Precision.fp16: torch.float16}[p]


def _optimizer(cfg: Config, params: Any, lr: float) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.name == OptimName.rmsprop:
        return torch.optim.RMSprop(params, lr=lr, weight_decay=o.weight_decay)
    # fused: one kernel per step for all parameters (CPU, CUDA and MPS have it); on the CPU the
    # default would be the per-tensor loop
    return torch.optim.Adam(params, lr=lr, betas=tuple(o.betas), weight_decay=o.weight_decay, fused=True)


def lr_factor(cfg: Config, step: int) -> float:
    """The schedule's multiplier of the base learning rates after `step` G steps."""
    o = cfg.optim
    if o.warmup_steps and step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    horizon = o.schedule_steps or cfg.trainer.steps
    progress = min(1.0, step / max(1, horizon))
    if o.schedule == Schedule.linear:
        return 1.0 - progress
    if o.schedule == Schedule.cosine:
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def config_dict(cfg: Config) -> dict[str, Any]:
    """The config as plain Python data (enums as strings), for checkpoints and logs."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True, enum_to_str=True)  # type: ignore[return-value]


class Trainer:
    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        choices: dict[str, str] | None = None,
        dist_info: DistInfo | None = None,
    ) -> None:
        self.cfg = cfg
        t = cfg.trainer
        self.run_dir = run_dir
        self.choices = choices or {}
        self.dist = dist_info or DistInfo()
        self.device = resolve_device(t.device)
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
        # rank 0 draws the streams of a single process; other ranks draw their own data and noise
        stream_seed = t.seed + 104_729 * self.dist.rank
        self.amp_dtype = resolve_precision(t.precision, self.device)
        random.seed(t.seed)
        np.random.seed(t.seed)
        torch.manual_seed(t.seed)

        # what can fail without the data fails before it is read
        check_buildable(cfg.model, cfg.data, cfg.loss.name)
        if cfg.eval.every:
            from gan_cli.metrics import preflight

            labelled = cfg.data.num_classes > 0 or cfg.data.labels == Labels.subfolders
            preflight([m.value for m in cfg.eval.metrics], cfg.data.name.value, labelled, cfg.eval)

        # data
        self.batches, self.num_classes = make_batches(cfg.data, t.batch_size, stream_seed, self.device)
        if cfg.data.num_classes == 0 and self.num_classes:  # discovered from image subfolders
            cfg.data.num_classes = self.num_classes
        self.is_image = not cfg.data.dim
        self.conditional = is_conditional(cfg.model)

        # models, EMA, optimizers
        self.G, self.D = build_models(cfg.model, cfg.data, cfg.loss.name)
        if self.is_image and self.device.type != "mps":
            # NHWC is the fast layout of oneDNN and cuDNN convolutions
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        self.G.to(self.device)
        self.D.to(self.device)
        if self.dist.enabled and t.sync_bn and self.device.type != "cuda":
            raise ConfigError(
                "trainer.sync_bn=true needs CUDA (SyncBatchNorm has no CPU kernel); on the CPU, "
                "BatchNorm statistics stay per rank (trainer.sync_bn=false)."
            )
        if self.dist.enabled:
            distributed.broadcast_module(self.G)
            distributed.broadcast_module(self.D)
        self.G_ema = None
        if t.ema_decay > 0:
            # before SyncBatchNorm: re-estimating the EMA's statistics is local to each rank
            self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self._ema_stats_step = -1  # the step whose BatchNorm statistics G_ema holds (-1: G's)
        if self.dist.enabled and t.sync_bn:
            self.G = nn.SyncBatchNorm.convert_sync_batchnorm(self.G)
            self.D = nn.SyncBatchNorm.convert_sync_batchnorm(self.D)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
        if t.compile:
            # in place, so state_dict keys (and checkpoints) stay those of the plain modules
            self.G.compile()
            self.D.compile()
        # the tensor lists a step walks, made once: walking the module tree of ring8_best's 10-layer
        # G and D six times a step cost about 0.4 ms of its 8-9 ms
        self.g_params, self.d_params = list(self.G.parameters()), list(self.D.parameters())
        if self.G_ema is not None:
            self._ema_pairs = (
                list(self.G_ema.parameters()),
                self.g_params,
                list(self.G_ema.buffers()),
                list(self.G.buffers()),
            )
        self.opt_g = _optimizer(cfg, self.g_params, cfg.optim.lr_g)
        self.opt_d = _optimizer(cfg, self.d_params, cfg.optim.lr_d)
        self.schedulers = [
            torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(self.cfg, step))
            for opt in (self.opt_g, self.opt_d)
        ]
        # the schedule counts G steps, also those whose update was skipped (on_nonfinite=skip)
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
        fp16 = self.amp_dtype == torch.float16
        self.scaler_g = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.scaler_d = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.loss = LOSSES[cfg.loss.name.value]

        # noise: one generator for training, fixed samples drawn once for every grid
        self.noise_gen = torch.Generator(device=self.device).manual_seed(stream_seed + 1)
        self.fixed_z, self.fixed_y, self.grid_nrow = self._fixed_noise()
        self.real_diversity = self._real_diversity()

        self.health = HealthMonitor(t.health, self.loss.probabilistic, self.device, watch_grads=not fp16)
        self.step = 0
        self.rollbacks = 0
        self._skipped = 0  # updates skipped in a row (trainer.on_nonfinite=skip)
        self._skipped_total = 0
        # skip mode: the step's starting buffers (BatchNorm statistics), restored when it skips
        self._buffers = [*self.G.buffers(), *self.D.buffers()]
        self._buffer_backup = [b.clone() for b in self._buffers] if t.on_nonfinite == OnNonFinite.skip else []
        self._writer: CheckpointWriter | None = None  # where fit() saves: the stop messages name it
        self._signal: int | None = None
        self.last_summary: dict[str, float] = {}
        self.elapsed = 0.0  # wall-clock seconds of training, summed over resumes
        self.best: float | None = None  # best value of eval.best so far
        self._pending_eval: dict[str, Any] = {}
        self._active_warnings: set[str] = set()  # warnings of the previous window, printed once

    # ---- set-up helpers -------------------------------------------------------------------
    def _fixed_noise(self) -> tuple[Tensor, Tensor | None, int]:
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.trainer.seed + 2)
        n = self.cfg.trainer.n_samples
        labels = None
        if not self.is_image:
            n, nrow = max(n, POINT_SAMPLES), 0
        elif self.conditional:
            nrow = max(1, n // self.num_classes)  # one row per class
            n = nrow * self.num_classes
            labels = torch.arange(self.num_classes, device=self.device).repeat_interleave(nrow)
        else:
            nrow = max(1, round(n**0.5))
        return sample_latents(self.cfg.model, n, gen), labels, nrow

    def _real_diversity(self) -> float:
        real = self.batches.reference(self.cfg.trainer.health.diversity_samples, self.cfg.trainer.seed + 3)
        return float(mean_pairwise_distance(real))

    def _sample_z(self, n: int) -> Tensor:
        return sample_latents(self.cfg.model, n, self.noise_gen)

    def _d_input(self, x: Tensor) -> Tensor:
        """What D sees of a batch: DiffAugment'ed (trainer.diffaugment), then instance noise."""
        if self.cfg.trainer.diffaugment:
            x = diff_augment(x, list(self.cfg.trainer.diffaugment), self.noise_gen)
        return self._noisy(x)

    def _noisy(self, x: Tensor) -> Tensor:
        """Instance noise: Gaussian noise on D's inputs, its std annealed linearly to 0 over
        trainer.instance_noise_steps (a horizon of its own, so extending a run changes nothing)."""
        t = self.cfg.trainer
        sigma = t.instance_noise * (
            max(0.0, 1.0 - self.step / t.instance_noise_steps) if t.instance_noise_steps else 1.0
        )
        if sigma <= 0:
            return x
        return x + sigma * torch.randn(x.shape, device=x.device, generator=self.noise_gen, dtype=x.dtype)

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    # ---- one training step ----------------------------------------------------------------
    def _d_step(self, last: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
        """One D update. Returns (loss_d, real logits, grad norm, fake, fake labels); the last
        D step keeps G's graph of `fake` so the G step can reuse it instead of regenerating."""
        real, y = self.batches.next()
        # conditional fakes take the real batch's labels: same label distribution, and the
        # gradient penalty interpolates within one class
        lc = self.cfg.loss
        with self._autocast():
            with torch.set_grad_enabled(last):
                fake = self.G(self._sample_z(len(real)), y)
            real_logits = self.D(self._d_input(real), y)
            fake_logits = self.D(self._d_input(fake.detach()), y)
            if lc.label_smoothing:
                loss_d = smoothed_gan_d(real_logits.float(), fake_logits.float(), lc.label_smoothing)
            else:
                loss_d = self.loss.d_loss(real_logits.float(), fake_logits.float())
        if lc.name == LossName.wgan_gp:
            gp = gradient_penalty(self.D, real, fake.detach(), y, self.noise_gen)
            loss_d = loss_d + lc.gp_weight * gp
        if lc.r1_gamma:
            loss_d = loss_d + 0.5 * lc.r1_gamma * r1_penalty(self.D, real, y)
        grad_norm = self._update(self.d_params, self.opt_d, self.scaler_d, loss_d)
        if self.cfg.loss.name == LossName.wgan:
            clip_weights(self.D, self.cfg.loss.clip)
        self._last_real = real
        return loss_d.detach(), real_logits.detach(), grad_norm, fake, y

    def _update(self, params: list[Tensor], opt: torch.optim.Optimizer, scaler: Any, loss: Tensor) -> Tensor:
        """Backward, all-reduce, one optimizer step; returns the global gradient norm (after
        unscaling). Under trainer.on_nonfinite=skip an update whose loss or gradients are not
        finite is dropped (fp16: the GradScaler drops inf gradients itself and lowers its scale)."""
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.dist.enabled:
            distributed.average_gradients(params, self.dist.world)
        scaler.unscale_(opt)
        grads = [p.grad for p in params if p.grad is not None]
        grad_norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros((), device=self.device)
        if self.cfg.trainer.on_nonfinite == OnNonFinite.skip and self._must_skip(loss, grad_norm, scaler):
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
        if bool(bad):
            self._skipped += 1
            self._skipped_total += 1
            if self._skipped >= self.cfg.trainer.skip_limit:
                intact = self._writer.last_good() if self._writer else ""
                raise NonFiniteError(
                    f"{self._skipped} updates in a row had a NaN or inf loss or gradient and were skipped "
                    f"(trainer.on_nonfinite=skip, trainer.skip_limit={self.cfg.trainer.skip_limit}): the "
                    f"game has diverged and does not recover. {intact} Lower the learning rates or try "
                    "trainer.precision=fp32."
                )
            return True
        self._skipped = 0
        return False

    def _g_step(self, fake: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """One G update through the last D step's fakes. Returns (loss_g, logits, grad norm)."""
        # D's weights need no gradients here, only the path back to G does
        for p in self.d_params:
            p.requires_grad_(False)
        with self._autocast():
            if self.cfg.loss.feature_matching:
                loss_g = self._feature_matching(fake, y)
                with torch.no_grad():
                    gen_logits = self.D(self._d_input(fake.detach()), y)
            elif self.cfg.loss.unroll_steps:
                loss_g = self.loss.g_loss(self._top_k(self._unrolled_logits(fake, y).float()))
                with torch.no_grad():  # the health metrics describe the real D
                    gen_logits = self.D(self._d_input(fake.detach()), y)
            else:
                gen_logits = self.D(self._d_input(fake), y)
                loss_g = self.loss.g_loss(self._top_k(gen_logits.float()))
        gn_g = self._update(self.g_params, self.opt_g, self.scaler_g, loss_g)
        for p in self.d_params:
            p.requires_grad_(True)
        return loss_g, gen_logits, gn_g

    def _top_k(self, logits: Tensor) -> Tensor:
        """The logits of the samples (or packs) D rates most realistic: a fraction annealed
        linearly from 1 to loss.top_k over loss.top_k_steps; the rest give G no gradient."""
        lc = self.cfg.loss
        if lc.top_k >= 1.0:
            return logits
        progress = min(1.0, self.step / lc.top_k_steps) if lc.top_k_steps else 1.0
        k = max(1, round(len(logits) * (1.0 - progress * (1.0 - lc.top_k))))
        return logits if k >= len(logits) else logits.topk(k, sorted=False).values

    def _unrolled_logits(self, fake: Tensor, y: Tensor | None) -> Tensor:
        """D's logits of `fake` after loss.unroll_steps surrogate D steps on fresh batches, which
        G's samples enter with their graph (unroll.py)."""

        def surrogate_loss(params: dict[str, Tensor]) -> Tensor:
            real, y_k = self.batches.next()
            fake_k = self.G(self._sample_z(len(real)), y_k)
            real_logits = call_with(self.D, params, self._d_input(real), y_k)
            fake_logits = call_with(self.D, params, self._d_input(fake_k), y_k)
            return self.loss.d_loss(real_logits.float(), fake_logits.float())

        # the surrogate batches leave no trace in G's BatchNorm running statistics
        with frozen_buffers(self.G):
            params = unrolled_params(self.D, self.opt_d, self.cfg.loss.unroll_steps, surrogate_loss)
        return call_with(self.D, params, self._d_input(fake), y)

    def _feature_matching(self, fake: Tensor, y: Tensor | None) -> Tensor:
        """||E f(x_real) - E f(G(z))||^2 over D's last hidden features f."""
        with torch.no_grad():
            real_f = self.D.features(self._d_input(self._last_real), y).float().mean(0)
        fake_f = self.D.features(self._d_input(fake), y).float().mean(0)
        return (real_f - fake_f).pow(2).sum()

    def train_step(self) -> None:
        n_critic = self.cfg.loss.n_critic
        skipping = self.cfg.trainer.on_nonfinite == OnNonFinite.skip
        if skipping:  # a skipped update must not leave NaN in BatchNorm statistics either
            torch._foreach_copy_(self._buffer_backup, self._buffers)
            skipped_before = self._skipped_total
        for i in range(n_critic):
            loss_d, real_logits, gn_d, fake, y = self._d_step(last=i == n_critic - 1)
        loss_g, gen_logits, gn_g = self._g_step(fake, y)
        if skipping and self._skipped_total != skipped_before:
            torch._foreach_copy_(self._buffers, self._buffer_backup)
        for scheduler in self.schedulers:
            scheduler.step()
        self._update_ema()
        values = torch.stack(
            [
                loss_d.float(),
                loss_g.detach().float(),
                torch.sigmoid(real_logits.float()).mean(),
                torch.sigmoid(gen_logits.detach().float()).mean(),
                gn_d.float(),
                gn_g.float(),
            ]
        )
        self.health.add(self.step, values)
        self.step += 1

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.G_ema is None:
            return
        # warm-up (as TensorFlow's ExponentialMovingAverage with num_updates): early on the
        # average follows G closely instead of dragging the random initial weights along
        decay = min(self.cfg.trainer.ema_decay, (1 + self.step) / (10 + self.step))
        ema, live, ema_buffers, buffers = self._ema_pairs
        torch._foreach_lerp_(ema, live, 1.0 - decay)
        if buffers:
            torch._foreach_copy_(ema_buffers, buffers)

    @torch.no_grad()
    def _ema_own_stats(self) -> None:
        """Give G_ema BatchNorm statistics of its own weights before anyone looks at it or saves
        it (trainer.ema_bn_batches; the training steps copy G's). Fixed noise, once per step: every
        rank, a resumed run and a repeated call all get the same numbers, and no training stream moves."""
        batches = self.cfg.trainer.ema_bn_batches
        if self.G_ema is None or batches == 0 or self._ema_stats_step == self.step:
            return
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.trainer.seed + 4)
        size = self.cfg.trainer.batch_size

        def inputs() -> Iterator[tuple[Tensor, Tensor | None]]:
            for _ in range(batches):
                z = sample_latents(self.cfg.model, size, gen)
                y = None
                if self.conditional:
                    y = torch.randint(0, self.num_classes, (size,), generator=gen, device=self.device)
                yield z, y

        with self._autocast():
            recompute_batchnorm_stats(self.G_ema, inputs())
        self._ema_stats_step = self.step

    # ---- looking at G ---------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, z: Tensor, y: Tensor | None, use_ema: bool = True) -> Tensor:
        """Samples from the EMA generator (or G) in eval mode; never touches the training state."""
        if use_ema:
            self._ema_own_stats()
        net = self.G_ema if (use_ema and self.G_ema is not None) else self.G
        was_training = net.training
        net.eval()
        try:
            with self._autocast():
                return net(z, y).float()
        finally:
            net.train(was_training)

    @torch.no_grad()
    def diversity(self) -> float:
        """Mean pairwise distance of G's fixed-noise samples relative to a real batch's."""
        n = self.cfg.trainer.health.diversity_samples
        z = self.fixed_z[:n]
        y = self.fixed_y[:n] if self.fixed_y is not None else None
        with frozen_buffers(self.G), self._autocast():
            x = self.G(z, y)  # train mode: what D sees
        return float(mean_pairwise_distance(x)) / max(self.real_diversity, 1e-12)

    def sample_image(self) -> Tensor:
        x = self.generate(self.fixed_z, self.fixed_y)
        if not self.is_image:
            modes = (
                mixture_modes(self.cfg.data.name.value)
                if self.cfg.data.name.value in ("ring8", "grid25")
                else None
            )
            return scatter_image(x, modes)
        return image_grid(x, self.grid_nrow)

    @torch.no_grad()
    def log_real_images(self, logger: RunLogger) -> None:
        """samples/real.png: a grid of real training images as D receives them (decoded, resized,
        scaled to [-1, 1]; before DiffAugment and instance noise), so a user sees what the model
        learns from (stylegan2-ada's reals.png). Images only; drawn with a stream of its own."""
        if self.is_image:
            real = self.batches.reference(self.cfg.trainer.n_samples, self.cfg.trainer.seed + 5)
            logger.real_images(image_grid(real, self.grid_nrow))

    # ---- state ----------------------------------------------------------------------------
    def state_dict(self, gather: bool = True) -> dict[str, Any]:
        """The whole training state; with `gather` (a collective call under torchrun) it holds
        every rank's data and noise streams, else only this rank's."""
        self._ema_own_stats()
        return {
            "version": __version__,
            "step": self.step,
            "config": config_dict(self.cfg),
            "choices": dict(self.choices),
            "models": {
                "g": self.G.state_dict(),
                "d": self.D.state_dict(),
                "g_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            },
            "optim": {"g": self.opt_g.state_dict(), "d": self.opt_d.state_dict()},
            "schedulers": [s.state_dict() for s in self.schedulers],
            "scaler": {"g": self.scaler_g.state_dict(), "d": self.scaler_d.state_dict()},
            "data": self.batches.state_dict(),
            # every rank's data and noise streams, so a run resumes on the same number of ranks
            # exactly; rank 0's are also the top-level ones a single process continues with
            "ranks": self._rank_streams(gather),
            "noise": {"z": self.fixed_z, "y": self.fixed_y},
            "rng": {
                "python": random.getstate(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "noise": self.noise_gen.get_state(),
            },
            "health": self.health.state_dict(),
            "rollbacks": self.rollbacks,
            "elapsed": self.elapsed,
            "best": self.best,
            "best_key": self.cfg.eval.best,
        }

    def _rank_streams(self, gather: bool) -> list[dict[str, Any]]:
        mine = {"data": self.batches.state_dict(), "noise": self.noise_gen.get_state().cpu()}
        return distributed.gather(mine, self.dist.world) if gather and self.dist.enabled else [mine]

    def load_state_dict(self, state: dict[str, Any], source: Path) -> None:
        bad = nonfinite_tensors(state["models"]) + nonfinite_tensors({"optim": state["optim"]})
        if bad:
            raise CheckpointError(
                f"{source}: {len(bad)} tensors of this training state are NaN or inf ({', '.join(bad[:3])}): "
                "the run had diverged when it was written (an older gan-cli saved such states). Resume "
                "from an earlier checkpoint (checkpoints/step_*.pt) instead."
            )
        try:
            self.G.load_state_dict(state["models"]["g"])
            self.D.load_state_dict(state["models"]["d"])
            if self.G_ema is not None:
                self.G_ema.load_state_dict(state["models"]["g_ema"] or state["models"]["g"])
            self.opt_g.load_state_dict(state["optim"]["g"])
            self.opt_d.load_state_dict(state["optim"]["d"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise CheckpointError(
                f"{source}: holds a different model than this config builds ({str(e).splitlines()[0]})."
            ) from e
        for scheduler, saved in zip(self.schedulers, state.get("schedulers", []), strict=False):
            scheduler.load_state_dict(saved)
        for scaler, saved in zip(
            (self.scaler_g, self.scaler_d), (state["scaler"]["g"], state["scaler"]["d"]), strict=True
        ):
            # a run resumed under another trainer.precision starts a fresh scaler (or none)
            if scaler.is_enabled() and saved:
                scaler.load_state_dict(saved)
        ranks = state.get("ranks") or []
        if self.dist.rank < len(ranks):
            self.batches.load_state_dict(ranks[self.dist.rank]["data"])
        # a rank the checkpoint did not have keeps its own freshly seeded streams
        if state["noise"]["z"].shape == self.fixed_z.shape:  # else trainer.n_samples changed: new noise
            self.fixed_z = state["noise"]["z"].to(self.device)
            self.fixed_y = state["noise"]["y"].to(self.device) if state["noise"]["y"] is not None else None
        rng = state["rng"]
        random.setstate(rng["python"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        if self.dist.rank < len(ranks):
            self.noise_gen.set_state(ranks[self.dist.rank]["noise"])
        elif not self.dist.enabled:
            self.noise_gen.set_state(rng["noise"])
        self.health.load_state_dict(state["health"])
        self.step = int(state["step"])
        self._ema_stats_step = -1
        self.rollbacks = int(state.get("rollbacks", 0))
        self.elapsed = float(state.get("elapsed", 0.0))
        # a best value of another metric (eval.best changed) is no benchmark for this one
        self.best = (
            state.get("best") if state.get("best_key", self.cfg.eval.best) == self.cfg.eval.best else None
        )
        self.apply_optim_config()

    def apply_optim_config(self) -> None:
        """Make the optimizers and schedulers do what the config says after a checkpoint restored
        their saved hyperparameters: base learning rates optim.lr_g / lr_d (times
        trainer.rollback_lr_factor per rollback), the schedule's current factor, Adam's betas and
        the weight decay. With an unchanged config every value is the one saved, bit for bit."""
        o = self.cfg.optim
        factor = self.cfg.trainer.rollback_lr_factor**self.rollbacks
        for opt, scheduler, lr in zip(
            (self.opt_g, self.opt_d), self.schedulers, (o.lr_g, o.lr_d), strict=True
        ):
            base = lr * factor if self.rollbacks else lr
            scheduler.base_lrs = [base] * len(opt.param_groups)
            for group in opt.param_groups:
                group["initial_lr"] = base
                group["lr"] = base * lr_factor(self.cfg, scheduler.last_epoch)
                group["weight_decay"] = o.weight_decay
                if "betas" in group:
                    group["betas"] = tuple(o.betas)

    def export_generator(self, path: Path) -> None:
        """G's (EMA) weights and the configs that rebuild it: enough to sample without training."""
        self._ema_own_stats()
        net = self.G_ema if self.G_ema is not None else self.G
        cfg = config_dict(self.cfg)
        save_atomic(
            {
                "format": GENERATOR_FORMAT,
                "version": __version__,
                "step": self.step,
                "ema": self.G_ema is not None,
                "model": cfg["model"],
                "data": cfg["data"],
                "loss": cfg["loss"]["name"],
                "state_dict": net.state_dict(),
            },
            path,
        )

    # ---- the loop -------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: leave now; saves are atomic
        self._signal = signum

    def fit(self, logger: RunLogger, writer: CheckpointWriter) -> dict[str, float]:
        """Train until `trainer.steps`; returns the last window's metrics."""
        t = self.cfg.trainer
        every = self.cfg.eval.every
        self._writer = writer
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        started = time.perf_counter() - self.elapsed
        try:
            while self.step < t.steps:
                try:
                    self.train_step()
                    logger.advance()
                    self.elapsed = time.perf_counter() - started
                    done = self.step == t.steps
                    if every and (self.step % every == 0 or done) and self.dist.main:
                        self._evaluate(logger, writer)
                    if self.step % t.log_every == 0 or done:
                        self._log(logger, writer)
                    if self.step % t.sample_every == 0 or done:
                        if self.dist.main:
                            logger.image(self.step, self.sample_image())
                    if self.step % t.ckpt_every == 0 or done:
                        self._save(writer, logger)
                    stop = self._signal is not None
                    if self.dist.enabled:  # every rank stops at the same step
                        stop = distributed.any_rank(stop)
                    if stop:
                        path = self._save(writer, logger)
                        raise Interrupted(self._signal or signal.SIGTERM, path, writer.last_good())
                except RolledBack:
                    continue
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
        return self.last_summary

    def _log(self, logger: RunLogger, writer: CheckpointWriter) -> None:
        """Write one window of health metrics (or stop, or roll back, on a NaN or inf)."""
        if self.dist.enabled:  # the window's means over all ranks
            self.health.acc = distributed.all_reduce_mean(self.health.acc, self.dist.world)
        summary = self.health.summarise(self.step, self.diversity())
        if summary.first_nonfinite_step >= 0 and self.cfg.trainer.on_nonfinite != OnNonFinite.skip:
            names = " and ".join(summary.nonfinite_losses)
            self._diverged(
                logger, writer, f"{names} became NaN or inf at step {summary.first_nonfinite_step + 1}"
            )
        record = {
            **summary.metrics,
            "lr/g": self.opt_g.param_groups[0]["lr"],
            "elapsed": round(self.elapsed, 3),
        }
        logger.metrics(self.step, {**record, **self._pending_eval}, summary.warnings)
        self.last_summary = {**summary.metrics, **self._pending_eval}
        self._pending_eval = {}
        for name in summary.warnings:
            if name not in self._active_warnings:
                logger.warn(self.step, name, self.health.explain(name))
        self._active_warnings = set(summary.warnings)

    def _evaluate(self, logger: RunLogger, writer: CheckpointWriter) -> None:
        """Run the eval metrics on the (EMA) generator; keep checkpoints/best.pt by eval.best."""
        from gan_cli.metrics import evaluate
        from gan_cli.sampling import LoadedGenerator

        if self.health.nonfinite()[0] >= 0 and self.cfg.trainer.on_nonfinite != OnNonFinite.skip:
            return  # diverged: the log that follows stops or rolls back
        self._ema_own_stats()
        net = self.G_ema if self.G_ema is not None else self.G
        was_training = net.training
        net.eval()
        try:
            with torch.random.fork_rng(devices=[]):  # evaluation never moves the training streams
                gen = LoadedGenerator(
                    net, self.cfg.model, self.cfg.data, self.step, self.G_ema is not None, self.run_dir
                )
                results = evaluate(gen, [m.value for m in self.cfg.eval.metrics], self.cfg.eval, self.device)
        finally:
            net.train(was_training)
        numbers = {f"eval/{k}": v for k, v in results.items() if isinstance(v, (int, float))}
        self._pending_eval = {"eval/step": self.step, **numbers}
        logger.message(
            f"[step {self.step}] eval: " + ", ".join(f"{k[5:]}={v:.4g}" for k, v in numbers.items())
        )
        key = self.cfg.eval.best
        if key and isinstance(results.get(key), (int, float)):
            value = float(results[key])
            better = self.best is None or (
                value > self.best if self.cfg.eval.best_mode.value == "max" else value < self.best
            )
            if better and self.nonfinite_state() is None:
                self.best = value
                writer.save_as(self.state_dict(gather=False), "best.pt")
                logger.message(f"[step {self.step}] new best {key}={value:.4g}: checkpoints/best.pt")

    def _diverged(self, logger: RunLogger, writer: CheckpointWriter, what: str) -> None:
        """A NaN or inf in the losses, gradients, weights or samples: roll back (raising RolledBack)
        under trainer.on_nonfinite=rollback, else stop with NonFiniteError. Checkpoints stay as
        they were."""
        mode = self.cfg.trainer.on_nonfinite
        if mode == OnNonFinite.rollback:
            self._rollback(logger, writer, what)
        advice = (
            "Lower the learning rates or try trainer.precision=fp32."
            if mode == OnNonFinite.skip
            else "Lower the learning rates, try trainer.precision=fp32, or set "
            "trainer.on_nonfinite=rollback|skip."
        )
        raise NonFiniteError(f"{what} (trainer.on_nonfinite={mode.value}). {writer.last_good()} {advice}")

    def _rollback(self, logger: RunLogger, writer: CheckpointWriter, what: str) -> None:
        last = writer.dir / "last.pt"
        if self.rollbacks >= 3 or not last.is_file():
            why = "3 rollbacks already" if self.rollbacks >= 3 else "no checkpoint was written yet"
            raise NonFiniteError(f"{what}; cannot roll back ({why}). {writer.last_good()}")
        rollbacks = self.rollbacks + 1
        self.load_state_dict(load_checkpoint(last), last)
        self.rollbacks = rollbacks
        self.apply_optim_config()  # the learning rates scaled once more; the schedule keeps it
        factor = self.cfg.trainer.rollback_lr_factor
        logger.rewind(self.step)
        logger.warn(
            self.step,
            "NON_FINITE",
            f"{what}: rolled back to step {self.step} and scaled the learning rates by {factor}.",
        )
        raise RolledBack

    @torch.no_grad()
    def nonfinite_state(self) -> str | None:
        """What in the training state is NaN or inf (weights, buffers, optimizer moments, or the
        (EMA) generator's samples of the fixed noise), or None when all of it is finite. Read at
        every checkpoint, so that no diverged state is ever saved."""
        named: list[tuple[str, Tensor]] = []
        for prefix, net in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            if net is not None:
                named += [(f"{prefix}.{n}", t) for n, t in [*net.named_parameters(), *net.named_buffers()]]
        for prefix, opt in (("optimizer of G", self.opt_g), ("optimizer of D", self.opt_d)):
            named += [(prefix, t) for st in opt.state.values() for t in st.values() if torch.is_tensor(t)]
        named = [(n, t) for n, t in named if t.is_floating_point()]
        finite = torch.stack([torch.isfinite(t).all() for _, t in named]).tolist() if named else []
        bad = [n for (n, _), ok in zip(named, finite, strict=True) if not ok]
        if bad:
            shown = ", ".join(dict.fromkeys(bad[:5]))
            return f"{len(bad)} of {len(named)} tensors of the training state are NaN or inf ({shown})"
        n = min(len(self.fixed_z), self.cfg.trainer.n_samples)
        samples = self.generate(self.fixed_z[:n], self.fixed_y[:n] if self.fixed_y is not None else None)
        if not torch.isfinite(samples).all():
            return "the generator's samples of the fixed noise are NaN or inf"
        return None

    def _save(self, writer: CheckpointWriter, logger: RunLogger) -> Path | None:
        """Checkpoint the state (and export G); None, with nothing written, when it is not finite."""
        if self.health.nonfinite()[0] >= 0 and self.cfg.trainer.on_nonfinite != OnNonFinite.skip:
            return None  # the next log window stops or rolls back; a diverged state is never saved
        problem = self.nonfinite_state()
        if self.dist.enabled and distributed.any_rank(problem is not None):  # every rank decides alike
            problem = problem or "the training state of another rank is NaN or inf"
        if problem is not None:
            self._diverged(logger, writer, f"At step {self.step}, {problem}")
        state = self.state_dict()  # a collective call under torchrun: every rank comes here
        if not self.dist.main:
            return writer.dir / f"step_{self.step:06d}.pt"
        path = writer.save(state, self.step)
        self.export_generator(writer.dir / "generator.pt")
        return path

    def weights_fingerprint(self) -> str:
        """A short hash of G's and D's parameters: equal on every rank of a healthy torchrun run
        (BatchNorm running statistics are per rank unless trainer.sync_bn)."""
        import hashlib

        digest = hashlib.sha1()
        for t in [*self.G.parameters(), *self.D.parameters()]:
            digest.update(t.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]
