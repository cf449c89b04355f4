"""The StyleGAN2 game (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN";
the phases of NVlabs/stylegan2-ada-pytorch, training/loss.py StyleGAN2Loss and training_loop.py).

One step is the reference's iteration, four phases on a batch each:

    Gmain  G's loss through D (the variant of loss=; nonsaturating logistic by default), with
           style mixing: with probability loss.style_mixing the ws after a random layer come
           from a second z
    Greg   every loss.pl_interval steps (loss.pl_weight > 0): path-length regularisation on
           batch / loss.pl_batch_shrink samples, E_w,y (||J_w^T y||_2 - a)^2 with y ~ N(0, I) / sqrt(H W)
           and a the running mean of the lengths, weighted x pl_interval
    Dmain  D's loss on real images and on fresh fakes
    Dreg   every loss.r1_interval steps (loss.r1_gamma > 0): lazy R1, gamma / 2 E ||grad D(x)||^2
           on real images, weighted x r1_interval (Mescheder et al. 2018)

The lazy phases are extra optimizer steps, so Adam's rate and betas are scaled by c = interval /
(interval + 1) (lr c, beta^c) as the reference does. Everything else is the GAN game's: fixed noise
and grids (sampled with constant noise inputs), the EMA of G (here by half-life in images,
trainer.ema_kimg, with the reference's ramp-up), ADA on every image D sees, eval, export,
checkpoints. Regularisers run in fp32 outside autocast (second derivatives in bf16/fp16 lose too
much); the networks' forward passes follow trainer.precision.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from gan_cli.health import FIELDS, frozen_buffers, mean_pairwise_distance
from gan_cli.latent import sample_latents
from gan_cli.optim import apply_optim_config

from . import Setup
from .gan import GAN

REG_FIELDS = ("loss/r1", "loss/pl", "pl_mean")


def lazy_ratio(interval: int) -> float:
    """Adam's rate and beta exponent for a network with a lazy regulariser every `interval` steps:
    interval / (interval + 1) (Karras et al. 2020, appendix B). As in the reference, it applies
    whether or not the regulariser's weight is 0 (its G_reg_interval and D_reg_interval are set
    either way), so turning a regulariser off changes nothing else."""
    return interval / (interval + 1)


def ema_beta(half_life_kimg: float, rampup: float, images_seen: int, batch: int) -> float:
    """Per-step decay of the EMA of G whose half-life is `half_life_kimg` thousand images, ramped
    up to at most `rampup` x images seen so far (rampup 0: no ramp), for steps of `batch` images:
    0.5 ** (batch / half_life_images), as the reference's training loop."""
    half_life = half_life_kimg * 1000
    if rampup > 0:
        half_life = min(half_life, images_seen * rampup)
    return 0.5 ** (batch / max(half_life, 1e-8))


class StyleGAN2(GAN):
    """G = mapping + synthesis, D = residual with minibatch std (models/stylegan2.py); lazy R1,
    path length, style mixing, w_avg (tracked by G's mapping network, copied into the EMA)."""

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        lc = self.cfg.loss
        self.fields = (*FIELDS, *REG_FIELDS, *(("ada/rt",) if self.ada is not None else ()))
        self.g_ratio = lazy_ratio(lc.pl_interval)
        self.d_ratio = lazy_ratio(lc.r1_interval)
        self.apply_optim_config(0)
        zero = torch.zeros((), device=self.device)
        self.pl_mean = zero.clone()  # running mean of path lengths (the checkpoint keeps it)
        self._r1, self._pl = zero.clone(), zero.clone()  # the latest values, held between phases

    # ---- phases ---------------------------------------------------------------------------
    def _run_g(self, z: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor]:
        """Images (N, C, S, S) and their ws (N, num_ws, w_dim), with style mixing: with probability
        loss.style_mixing the layers from a random cutoff on take the ws of a second z."""
        gen = self.noise_gen
        ws = self.G.mapping(z, c)
        p = self.cfg.loss.style_mixing
        if p > 0:
            num_ws = ws.shape[1]
            cutoff = int(torch.randint(1, num_ws, (), generator=gen, device=self.device))
            if float(torch.rand((), generator=gen, device=self.device)) >= p:
                cutoff = num_ws
            z2 = sample_latents(self.cfg.model, len(z), gen)
            if cutoff < num_ws:
                ws2 = self.G.mapping(z2, c, update_w_avg=False)
                ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        return self.G.synthesis(ws, "random", gen), ws

    def train_step(self) -> Tensor:
        lc, step = self.cfg.loss, self.step
        real, c = self.batches.next()
        n = len(real)
        gen = self.noise_gen

        # Gmain: D's weights need no gradients, only the path back to G does
        for p in self.d_params:
            p.requires_grad_(False)
        with self.autocast():
            fake, _ = self._run_g(sample_latents(self.cfg.model, n, gen), c)
            gen_logits = self.D(self._d_input(fake), c)
            loss_g = self.loss.g_loss(self._top_k(gen_logits.float()))
        gn_g = self.update(self.g_params, self.opt_g, self.scaler_g, loss_g)

        # Greg: path-length regularisation
        if lc.pl_weight > 0 and step % lc.pl_interval == 0:
            self._pl = self._path_length_step(max(1, n // lc.pl_batch_shrink), c)
        for p in self.d_params:
            p.requires_grad_(True)

        # Dmain
        with torch.no_grad(), self.autocast():
            fake, _ = self._run_g(sample_latents(self.cfg.model, n, gen), c)
        with self.autocast():
            fake_logits = self.D(self._d_input(fake), c)
            real_logits = self.D(self._d_input(real), c)
            loss_d = self.loss.d_loss(real_logits.float(), fake_logits.float())
        gn_d = self.update(self.d_params, self.opt_d, self.scaler_d, loss_d)
        if self.ada is not None:
            self._rt = self.ada.update(real_logits.detach())

        # Dreg: lazy R1
        if lc.r1_gamma > 0 and step % lc.r1_interval == 0:
            self._r1 = self._r1_step(real, c)

        for scheduler in self.schedulers:
            scheduler.step()
        self._update_ema()
        values = [
            loss_d.detach().float(),
            loss_g.detach().float(),
            torch.sigmoid(real_logits.detach().float()).mean(),
            torch.sigmoid(gen_logits.detach().float()).mean(),
            gn_d.float(),
            gn_g.float(),
            self._r1,
            self._pl,
            self.pl_mean.clone(),
        ]
        return torch.stack([*values, self._rt] if self.ada is not None else values)

    def _path_length_step(self, n: int, c: Tensor | None) -> Tensor:
        """One G update on the path-length penalty; returns the mean penalty (unweighted)."""
        lc, gen = self.cfg.loss, self.noise_gen
        z = sample_latents(self.cfg.model, n, gen)
        img, ws = self._run_g(z, c[:n] if c is not None else None)
        h, w = img.shape[2:]
        noise = torch.randn(img.shape, generator=gen, device=self.device) / math.sqrt(h * w)
        (grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = grads.square().sum(2).mean(1).sqrt()
        pl_mean = self.pl_mean.lerp(lengths.mean(), lc.pl_decay)
        # a NaN batch must not poison the running mean for good (its update is skipped or stops)
        self.pl_mean.copy_(torch.where(torch.isfinite(pl_mean), pl_mean.detach(), self.pl_mean))
        penalty = (lengths - pl_mean).square().mean()
        self.update(self.g_params, self.opt_g, self.scaler_g, penalty * (lc.pl_weight * lc.pl_interval))
        return penalty.detach()

    def _r1_step(self, real: Tensor, c: Tensor | None) -> Tensor:
        """One D update on the R1 penalty of real images (gradients through ADA's pipe to the
        un-augmented images, as the reference); returns the mean squared gradient norm."""
        lc = self.cfg.loss
        x = real.detach().float().requires_grad_(True)
        logits = self.D(self._d_input(x), c)
        (grads,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
        penalty = grads.square().sum(dim=(1, 2, 3)).mean()
        self.update(self.d_params, self.opt_d, self.scaler_d, penalty * (lc.r1_gamma / 2 * lc.r1_interval))
        return penalty.detach()

    @torch.no_grad()
    def _update_ema(self) -> None:
        t = self.cfg.trainer
        if self.G_ema is None or t.ema_kimg <= 0:
            return super()._update_ema()
        batch = t.batch_size * self.dist.world
        beta = ema_beta(t.ema_kimg, t.ema_rampup, self.step * batch, batch)
        ema, live, ema_buffers, buffers = self._ema_pairs
        torch._foreach_lerp_(ema, live, 1.0 - beta)
        if buffers:  # w_avg and the constant noise maps follow G
            torch._foreach_copy_(ema_buffers, buffers)

    # ---- looking at G ---------------------------------------------------------------------
    @torch.no_grad()
    def diversity(self) -> float:
        """Mean pairwise distance of G's fixed-noise samples (constant noise inputs, w_avg left
        alone) relative to a real batch's."""
        n = self.cfg.trainer.health.diversity_samples
        z = self.fixed_z[:n]
        y = self.fixed_y[:n] if self.fixed_y is not None else None
        with frozen_buffers(self.G), self.autocast():
            x = self.G(z, y, noise_mode="const")
        return float(mean_pairwise_distance(x)) / max(self.real_diversity, 1e-12)

    # ---- state ----------------------------------------------------------------------------
    def streams(self) -> dict[str, Any]:
        """Also this rank's running path-length mean: each rank averages its own lengths, as the
        reference, so a torchrun run resumes each rank's."""
        return super().streams() | {"pl_mean": self.pl_mean.detach().cpu()}

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"stylegan2": {"pl_mean": self.pl_mean, "r1": self._r1, "pl": self._pl}}

    def load_state_dict(self, state: dict[str, Any], streams: dict[str, Any] | None) -> None:
        super().load_state_dict(state, streams)
        saved = state.get("stylegan2", {})
        for name in ("pl_mean", "r1", "pl"):
            if name in saved:
                getattr(self, name if name == "pl_mean" else f"_{name}").copy_(saved[name])
        if streams is not None and "pl_mean" in streams:
            self.pl_mean.copy_(streams["pl_mean"])

    def apply_optim_config(self, rollbacks: int) -> None:
        """The config's rates and betas, with the lazy regularisers' c: lr x c, beta ** c."""
        o = self.cfg.optim
        pairs = [
            (self.opt_g, self.schedulers[0], o.lr_g * self.g_ratio),
            (self.opt_d, self.schedulers[1], o.lr_d * self.d_ratio),
        ]
        apply_optim_config(self.cfg, pairs, rollbacks)
        for opt, ratio in ((self.opt_g, self.g_ratio), (self.opt_d, self.d_ratio)):
            for group in opt.param_groups:
                if "betas" in group:
                    group["betas"] = tuple(b**ratio for b in o.betas)
