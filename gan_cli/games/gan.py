"""The GAN game: one generator G, one discriminator D (mlp, dcgan, cgan), the loss variants and
their penalties, the stabilisers, an EMA of G, and fixed noise for every grid.

A step is loss.n_critic D updates on fresh real batches and fresh fakes, then loss.g_steps G updates:
the first through the last D step's fakes (one G forward shared by both), any later one through a
fresh G forward of the same z. Goodfellow et al. 2014; the DCGAN recipe of
Radford et al. 2016; the variants and stabilisers of losses.py, unroll.py and augment.py.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gan_cli import __version__, distributed
from gan_cli.checkpoint import GENERATOR_FORMAT, CheckpointError, save_atomic
from gan_cli.data import LoaderBatches, make_batches, mixture_modes
from gan_cli.health import FIELDS, GAN_DISCRIMINATORS, frozen_buffers, mean_pairwise_distance
from gan_cli.latent import sample_latents
from gan_cli.logs import image_grid, scatter_image
from gan_cli.losses import LOSSES, clip_weights, gradient_penalty, mmd2, r1_penalty, smoothed_gan_d
from gan_cli.models import build_models, check_buildable, is_conditional
from gan_cli.models.norm import recompute_batchnorm_stats
from gan_cli.optim import apply_optim_config, build_optimizer, build_schedulers
from gan_cli.schema import ConfigError, Labels, LossName, ema_decay_at
from gan_cli.unroll import call_with, unrolled_params

from . import Game, Setup

POINT_SAMPLES = 2500  # fixed-noise points drawn for a 2-D scatter (the PacGAN evaluation count)


def config_dict(cfg: Any) -> Any:
    """The config as plain Python data (enums as their names, dataclasses as dicts, tuples as
    lists), for checkpoints and logs: what OmegaConf.to_container(OmegaConf.structured(cfg),
    enum_to_str=True) gives for a resolved config, read straight off the dataclasses (1 ms instead of
    that route's 0.1 s, paid at every checkpoint and export)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: config_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, Enum):
        return cfg.name
    if isinstance(cfg, (list, tuple)):
        return [config_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: config_dict(v) for k, v in cfg.items()}
    return cfg


class GAN(Game):
    fields = FIELDS
    discriminators = GAN_DISCRIMINATORS

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        cfg, device = self.cfg, self.device
        t = cfg.trainer
        # what can fail without the data fails before it is read
        check_buildable(cfg.model, cfg.data, cfg.loss.name)
        if cfg.eval.every:
            from gan_cli.metrics import preflight

            labelled = cfg.data.num_classes > 0 or cfg.data.labels == Labels.subfolders
            preflight([m.value for m in cfg.eval.metrics], cfg.data.name.value, labelled, cfg.eval)

        # data
        self.batches, self.num_classes = make_batches(cfg.data, t.batch_size, self.stream_seed, device)
        if cfg.data.num_classes == 0 and self.num_classes:  # discovered from image subfolders
            cfg.data.num_classes = self.num_classes
        self.is_image = not cfg.data.dim
        self.conditional = is_conditional(cfg.model)

        # models, EMA, optimizers
        self.G, self.D = build_models(cfg.model, cfg.data, cfg.loss.name)
        if self.is_image and device.type != "mps":
            # NHWC is the fast layout of oneDNN and cuDNN convolutions
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        self.G.to(device)
        self.D.to(device)
        if self.dist.enabled and t.sync_bn and device.type != "cuda":
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
        self._fixed_samples: tuple[int, Tensor] | None = None  # (step, samples): fixed_samples()
        if self.dist.enabled and t.sync_bn:
            self.G = nn.SyncBatchNorm.convert_sync_batchnorm(self.G)
            self.D = nn.SyncBatchNorm.convert_sync_batchnorm(self.D)
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
        self.opt_g = build_optimizer(cfg, self.g_params, cfg.optim.lr_g)
        self.opt_d = build_optimizer(cfg, self.d_params, cfg.optim.lr_d)
        self.schedulers = build_schedulers(cfg, (self.opt_g, self.opt_d))
        fp16 = self.amp_dtype == torch.float16
        self.scaler_g = torch.amp.GradScaler(device.type, enabled=fp16)
        self.scaler_d = torch.amp.GradScaler(device.type, enabled=fp16)
        self.loss = LOSSES[cfg.loss.name.value]
        self.probabilistic = self.loss.probabilistic

        # noise: one generator for training, fixed samples drawn once for every grid
        self.noise_gen = torch.Generator(device=device).manual_seed(self.stream_seed + 1)
        self.fixed_z, self.fixed_y, self.grid_nrow = self._fixed_noise()
        # ADA: D's inputs through an augmentation pipe whose p follows D's confidence on real data
        self.ada = self.build_ada(self.noise_gen)
        if self.ada is not None:
            self.fields = (*FIELDS, "ada/rt")
        self.real_diversity = self._real_diversity()

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
        return self.d_input(x, self.noise_gen, self.ada)

    # ---- one training step ----------------------------------------------------------------
    def train_step(self) -> Tensor:
        n_critic = self.cfg.loss.n_critic
        for i in range(n_critic):
            loss_d, real_logits, gn_d, fake, y = self._d_step(last=i == n_critic - 1)
        loss_g, gen_logits, gn_g = self._g_step(fake, y)
        for _ in range(self.g_steps_now() - 1):
            with self.autocast():
                fake = self.G(self._last_z, y)
            loss_g, gen_logits, gn_g = self._g_step(fake, y)
        for scheduler in self.schedulers:
            scheduler.step()
        self._update_ema()
        values = [
            loss_d.float(),
            loss_g.detach().float(),
            torch.sigmoid(real_logits.float()).mean(),
            torch.sigmoid(gen_logits.detach().float()).mean(),
            gn_d.float(),
            gn_g.float(),
        ]
        return torch.stack([*values, self._rt] if self.ada is not None else values)

    def g_steps_now(self) -> int:
        """G updates at this step: loss.g_steps before loss.g_steps_until (or always, when 0), then 1."""
        lc = self.cfg.loss
        return lc.g_steps if not lc.g_steps_until or self.step < lc.g_steps_until else 1

    def _d_step(self, last: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
        """One D update. Returns (loss_d, real logits, grad norm, fake, fake labels); the last
        D step keeps G's graph of `fake` so the G step can reuse it instead of regenerating."""
        real, y = self.batches.next()
        # conditional fakes take the real batch's labels: same label distribution, and the
        # gradient penalty interpolates within one class
        lc = self.cfg.loss
        with self.autocast():
            z = self._sample_z(len(real))
            with torch.set_grad_enabled(last):
                fake = self.G(z, y)
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
        grad_norm = self.update(self.d_params, self.opt_d, self.scaler_d, loss_d)
        if self.cfg.loss.name == LossName.wgan:
            clip_weights(self.D, self.cfg.loss.clip)
        if self.ada is not None:
            self._rt = self.ada.update(real_logits)
        self._last_real, self._last_z = real, z
        return loss_d.detach(), real_logits.detach(), grad_norm, fake, y

    def _g_step(self, fake: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """One G update through the last D step's fakes. Returns (loss_g, logits, grad norm)."""
        # D's weights need no gradients here, only the path back to G does
        for p in self.d_params:
            p.requires_grad_(False)
        with self.autocast():
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
        if self.cfg.loss.mmd_weight > 0:  # outside autocast: mmd2 works in fp32
            mmd = mmd2(fake.flatten(1), self._last_real.flatten(1), self.mmd_bandwidths())
            loss_g = loss_g + self.cfg.loss.mmd_weight * mmd
        gn_g = self.update(self.g_params, self.opt_g, self.scaler_g, loss_g)
        for p in self.d_params:
            p.requires_grad_(True)
        return loss_g, gen_logits, gn_g

    def mmd_bandwidths(self) -> list[float]:
        """loss.mmd_bandwidths, or data.std x (1, 2, 4, 8) when it is empty: from a mixture's own
        cluster width (the term then widens clusters tighter than the data's) to a few of them
        (which pulls in the samples that stray between clusters)."""
        chosen = list(self.cfg.loss.mmd_bandwidths)
        return chosen or [self.cfg.data.std * f for f in (1.0, 2.0, 4.0, 8.0)]

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

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.G_ema is None:
            return
        decay = ema_decay_at(self.cfg.trainer.ema_decay, self.step)  # warmed up
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

        with self.autocast():
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
            with self.autocast():
                return net(z, y).float()
        finally:
            net.train(was_training)

    @torch.no_grad()
    def diversity(self) -> float:
        """Mean pairwise distance of G's fixed-noise samples relative to a real batch's."""
        n = self.cfg.trainer.health.diversity_samples
        z = self.fixed_z[:n]
        y = self.fixed_y[:n] if self.fixed_y is not None else None
        with frozen_buffers(self.G), self.autocast():
            x = self.G(z, y)  # train mode: what D sees
        return float(mean_pairwise_distance(x)) / max(self.real_diversity, 1e-12)

    def window_metrics(self) -> dict[str, float]:
        return {"diversity": self.diversity()}

    def loader_workers(self) -> int:
        return self.cfg.data.num_workers if isinstance(self.batches, LoaderBatches) else 0

    def log_values(self) -> dict[str, float]:
        return {"lr/g": self.opt_g.param_groups[0]["lr"]} | ({"ada/p": self.ada.p} if self.ada else {})

    def fixed_samples(self) -> Tensor:
        """The (EMA) generator's samples of the fixed inputs, (n_samples, C, H, W) in [-1, 1] or
        (n_samples, dim): generated once per step for the grid and the checkpoint's NaN check."""
        if self._fixed_samples is None or self._fixed_samples[0] != self.step:
            self._fixed_samples = (self.step, self.generate(self.fixed_z, self.fixed_y))
        return self._fixed_samples[1]

    def sample_image(self) -> Tensor:
        x = self.fixed_samples()
        if not self.is_image:
            name = self.cfg.data.name.value
            return scatter_image(x, mixture_modes(name) if name in ("ring8", "grid25") else None)
        return image_grid(x, self.grid_nrow)

    def samples_finite(self) -> bool:
        n = min(len(self.fixed_z), self.cfg.trainer.n_samples)
        if n == len(self.fixed_z):
            return bool(torch.isfinite(self.fixed_samples()).all())
        y = self.fixed_y[:n] if self.fixed_y is not None else None
        return bool(torch.isfinite(self.generate(self.fixed_z[:n], y)).all())

    @torch.no_grad()
    def real_image(self) -> Tensor | None:
        """Real training images as D receives them (decoded, resized, scaled to [-1, 1]; before
        DiffAugment and instance noise), drawn with a stream of their own. Images only."""
        if not self.is_image:
            return None
        real = self.batches.reference(self.cfg.trainer.n_samples, self.cfg.trainer.seed + 5)
        return image_grid(real, self.grid_nrow)

    def evaluate(self, metrics: list[str], run_dir: Path) -> dict[str, Any]:
        """eval.metrics on the (EMA) generator."""
        from gan_cli.metrics import evaluate
        from gan_cli.sampling import LoadedGenerator

        self._ema_own_stats()
        net = self.G_ema if self.G_ema is not None else self.G
        was_training = net.training
        net.eval()
        try:
            gen = LoadedGenerator(
                net, self.cfg.model, self.cfg.data, self.step, self.G_ema is not None, run_dir
            )
            return evaluate(gen, metrics, self.cfg.eval, self.device)
        finally:
            net.train(was_training)

    def export(self, path: Path) -> None:
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

    # ---- state ----------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        nets = {"G": self.G, "D": self.D}
        return nets | ({"G_ema": self.G_ema} if self.G_ema is not None else {})

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.opt_g, self.opt_d]

    def state_dict(self) -> dict[str, Any]:
        self._ema_own_stats()
        return {
            "models": {
                "g": self.G.state_dict(),
                "d": self.D.state_dict(),
                "g_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            },
            "optim": {"g": self.opt_g.state_dict(), "d": self.opt_d.state_dict()},
            "schedulers": [s.state_dict() for s in self.schedulers],
            "scaler": {"g": self.scaler_g.state_dict(), "d": self.scaler_d.state_dict()},
            "data": self.batches.state_dict(),
            "noise": {"z": self.fixed_z, "y": self.fixed_y},
            "rng": {"noise": self.noise_gen.get_state()},
        } | ({"ada": self.ada.state_dict()} if self.ada is not None else {})

    def streams(self) -> dict[str, Any]:
        """This rank's data and noise streams, and its ADA accumulators (a rank's sign sums of the
        interval so far; p itself is the same on every rank)."""
        ada = {}
        if self.ada is not None:
            ada = {"ada": {k: v.cpu() if torch.is_tensor(v) else v for k, v in self.ada.state_dict().items()}}
        return {"data": self.batches.state_dict(), "noise": self.noise_gen.get_state().cpu(), **ada}

    def load_state_dict(self, state: dict[str, Any], streams: dict[str, Any] | None) -> None:
        try:
            self.G.load_state_dict(state["models"]["g"])
            self.D.load_state_dict(state["models"]["d"])
            if self.G_ema is not None:
                self.G_ema.load_state_dict(state["models"]["g_ema"] or state["models"]["g"])
            self.opt_g.load_state_dict(state["optim"]["g"])
            self.opt_d.load_state_dict(state["optim"]["d"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise CheckpointError(
                f"holds a different model than this config builds ({str(e).splitlines()[0]})."
            ) from e
        for scheduler, saved in zip(self.schedulers, state.get("schedulers", []), strict=False):
            scheduler.load_state_dict(saved)
        for scaler, saved in zip(
            (self.scaler_g, self.scaler_d), (state["scaler"]["g"], state["scaler"]["d"]), strict=True
        ):
            # a run resumed under another trainer.precision starts a fresh scaler (or none)
            if scaler.is_enabled() and saved:
                scaler.load_state_dict(saved)
        if streams is not None:
            self.batches.load_state_dict(streams["data"])
            self.noise_gen.set_state(streams["noise"])
        if state["noise"]["z"].shape == self.fixed_z.shape:  # else trainer.n_samples changed: new noise
            self.fixed_z = state["noise"]["z"].to(self.device)
            self.fixed_y = state["noise"]["y"].to(self.device) if state["noise"]["y"] is not None else None
        if self.ada is not None and "ada" in state:  # else trainer.ada was off: p starts at trainer.ada_p
            mine = streams.get("ada") if streams is not None else None
            self.ada.load_state_dict(mine if mine is not None else state["ada"])
        self._ema_stats_step = -1
        self._fixed_samples = None

    def apply_optim_config(self, rollbacks: int) -> None:
        o = self.cfg.optim
        pairs = [(self.opt_g, self.schedulers[0], o.lr_g), (self.opt_d, self.schedulers[1], o.lr_d)]
        apply_optim_config(self.cfg, pairs, rollbacks)
