"""The CycleGAN game (Zhu et al. 2017): unpaired translation between image domains A and B.

G_AB maps A to B and G_BA maps B to A; D_A judges domain A images (real a against G_BA(b)) and D_B
domain B images. A step, as in the authors' code (junyanz/pytorch-CycleGAN-and-pix2pix):

    fake_b = G_AB(a), rec_a = G_BA(fake_b), fake_a = G_BA(b), rec_b = G_AB(fake_a)
    G step (D frozen): adv(D_B(fake_b)) + adv(D_A(fake_a))
                       + cycle_weight * (|rec_a - a|_1 + |rec_b - b|_1)
                       + identity_weight * cycle_weight * (|G_AB(b) - b|_1 + |G_BA(a) - a|_1)
                       + semantic_weight * (CE(f_A(fake_b), argmax f_A(a)) + CE(f_A(fake_a), argmax f_A(b)))
    D step: each D on its real batch and on fakes drawn through an image pool of past fakes

Both generators share one optimizer, as do both discriminators. The adversarial terms take any
loss variant of losses.py, scaled to the authors' criterion (see REFERENCE_SCALE), so that the
default cycle weight of 10 means what it means there.

Cycle-consistency is met as well by a map that swaps classes (a 1 drawn as a 7 and back); the
optional semantic term of CyCADA (Hoffman et al. 2018, eq. 4) adds a frozen classifier f_A of
domain A, trained on A's labels, whose class for an image must survive its translation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_cli import __version__, distributed
from gan_cli.checkpoint import GENERATOR_FORMAT, CheckpointError, save_atomic
from gan_cli.data import LoaderBatches, make_batches
from gan_cli.games.gan import config_dict
from gan_cli.health import mean_pairwise_distance
from gan_cli.logs import image_grid
from gan_cli.losses import LOSSES
from gan_cli.models import build_translators, check_buildable
from gan_cli.optim import apply_optim_config, build_optimizer, build_schedulers
from gan_cli.pool import ImagePool
from gan_cli.schema import ConfigError

from . import Game, Setup

# (D factor, G factor) that turn our loss variants into the authors' criterion: their D loss is
# 0.5 * (L(real) + L(fake)) and their G term the plain criterion; losses.py keeps each paper's
# constants (LSGAN's 1/2 on every term, the logistic D as a sum)
REFERENCE_SCALE = {"lsgan": (1.0, 2.0)}
DEFAULT_SCALE = (0.5, 1.0)


class CycleGAN(Game):
    fields = (
        "loss/d_a",
        "loss/d_b",
        "loss/g",
        "loss/cycle",
        "loss/identity",
        "loss/semantic",
        "d_a/real",
        "d_a/fake",
        "d_b/real",
        "d_b/fake",
        "grad_norm/d",
        "grad_norm/g",
    )
    discriminators = (("D_A", "d_a/real", "d_a/fake"), ("D_B", "d_b/real", "d_b/fake"))

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        cfg, device = self.cfg, self.device
        t, data = cfg.trainer, cfg.data
        check_buildable(cfg.model, data, cfg.loss.name)
        if cfg.eval.every:
            from gan_cli.metrics.translation import preflight

            preflight([m.value for m in cfg.eval.metrics], data)
        if t.sync_bn:
            raise ConfigError("trainer.sync_bn is for BatchNorm; model=cyclegan uses instance norm")
        assert data.a is not None and data.b is not None  # check_config made sure

        # data: two independent streams; an epoch of the loop covers the larger domain
        self.batches_a, _ = make_batches(data.a, t.batch_size, self.stream_seed, device, "data.a")
        self.batches_b, _ = make_batches(data.b, t.batch_size, self.stream_seed + 7, device, "data.b")

        # networks, optimizers
        nets = build_translators(cfg.model, data, cfg.loss.name)
        if device.type != "mps":
            nets = tuple(n.to(memory_format=torch.channels_last) for n in nets)
        self.G_AB, self.G_BA, self.D_A, self.D_B = (n.to(device) for n in nets)
        if self.dist.enabled:
            for net in self.modules().values():
                distributed.broadcast_module(net)
        if t.compile:
            for net in self.modules().values():
                net.compile()
        self.g_params = [*self.G_AB.parameters(), *self.G_BA.parameters()]
        self.d_params = [*self.D_A.parameters(), *self.D_B.parameters()]
        self.opt_g = build_optimizer(cfg, self.g_params, cfg.optim.lr_g)
        self.opt_d = build_optimizer(cfg, self.d_params, cfg.optim.lr_d)
        self.schedulers = build_schedulers(cfg, (self.opt_g, self.opt_d))
        fp16 = self.amp_dtype == torch.float16
        self.scaler_g = torch.amp.GradScaler(device.type, enabled=fp16)
        self.scaler_d = torch.amp.GradScaler(device.type, enabled=fp16)
        self.loss = LOSSES[cfg.loss.name.value]
        self.probabilistic = self.loss.probabilistic
        self.d_scale, self.g_scale = REFERENCE_SCALE.get(cfg.loss.name.value, DEFAULT_SCALE)
        self.f_a: nn.Module | None = None  # CyCADA's frozen domain-A classifier (loss.semantic_weight)
        if cfg.loss.semantic_weight:
            from gan_cli.metrics.translation import semantic_classifier

            self.f_a = semantic_classifier(data.a, cfg.eval, device)

        # pools of past fakes, the augmentation stream, and fixed inputs for every grid
        self.pool_a = ImagePool(t.pool_size, self.stream_seed + 11, device)
        self.pool_b = ImagePool(t.pool_size, self.stream_seed + 12, device)
        self.noise_gen = torch.Generator(device=device).manual_seed(self.stream_seed + 1)
        # ADA: each discriminator its own pipe and p, steered by its own real logits
        self.ada_a, self.ada_b = self.build_ada(self.noise_gen), self.build_ada(self.noise_gen)
        if t.ada:
            self.fields = (*CycleGAN.fields, "ada/rt_a", "ada/rt_b")
        k = max(1, t.n_samples // 6)  # six rows: a, G_AB(a), G_BA(G_AB(a)), b, G_BA(b), G_AB(G_BA(b))
        self.fixed_a = self.batches_a.reference(k, t.seed + 2)
        self.fixed_b = self.batches_b.reference(k, t.seed + 2)
        self.real_diversity = {
            "a": float(
                mean_pairwise_distance(self.batches_a.reference(t.health.diversity_samples, t.seed + 3))
            ),
            "b": float(
                mean_pairwise_distance(self.batches_b.reference(t.health.diversity_samples, t.seed + 3))
            ),
        }

    # ---- one training step ----------------------------------------------------------------
    def train_step(self) -> Tensor:
        real_a, _ = self.batches_a.next()
        real_b, _ = self.batches_b.next()
        lc = self.cfg.loss
        with self.autocast():
            fake_b = self.G_AB(real_a)
            rec_a = self.G_BA(fake_b)
            fake_a = self.G_BA(real_b)
            rec_b = self.G_AB(fake_a)

        # generators, with the discriminators' weights frozen (only the path back to G is needed)
        for p in self.d_params:
            p.requires_grad_(False)
        with self.autocast():
            adv = self.loss.g_loss(
                self.D_B(self.d_input(fake_b, self.noise_gen, self.ada_b)).float()
            ) + self.loss.g_loss(self.D_A(self.d_input(fake_a, self.noise_gen, self.ada_a)).float())
            cycle = lc.cycle_weight * (cycle_l1(rec_a, real_a) + cycle_l1(rec_b, real_b))
            identity = torch.zeros((), device=self.device)
            if lc.identity_weight:
                identity = (
                    lc.identity_weight
                    * lc.cycle_weight
                    * (cycle_l1(self.G_AB(real_b), real_b) + cycle_l1(self.G_BA(real_a), real_a))
                )
            semantic = torch.zeros((), device=self.device)
            if self.f_a is not None:
                semantic = lc.semantic_weight * self.semantic_loss(real_a, real_b, fake_a, fake_b)
            loss_g = self.g_scale * adv + cycle + identity + semantic
        gn_g = self.update(self.g_params, self.opt_g, self.scaler_g, loss_g)
        for p in self.d_params:
            p.requires_grad_(True)

        # discriminators, on real batches and pooled fakes
        pooled_b = self.pool_b.query(fake_b.detach())
        pooled_a = self.pool_a.query(fake_a.detach())
        with self.autocast():
            real_logits_a = self.D_A(self.d_input(real_a, self.noise_gen, self.ada_a)).float()
            fake_logits_a = self.D_A(self.d_input(pooled_a, self.noise_gen, self.ada_a)).float()
            real_logits_b = self.D_B(self.d_input(real_b, self.noise_gen, self.ada_b)).float()
            fake_logits_b = self.D_B(self.d_input(pooled_b, self.noise_gen, self.ada_b)).float()
            loss_d_a = self.d_scale * self.loss.d_loss(real_logits_a, fake_logits_a)
            loss_d_b = self.d_scale * self.loss.d_loss(real_logits_b, fake_logits_b)
        gn_d = self.update(self.d_params, self.opt_d, self.scaler_d, loss_d_a + loss_d_b)
        for scheduler in self.schedulers:
            scheduler.step()
        rt = []
        if self.ada_a is not None and self.ada_b is not None:
            rt = [self.ada_a.update(real_logits_a), self.ada_b.update(real_logits_b)]
        return torch.stack(
            [
                loss_d_a.detach(),
                loss_d_b.detach(),
                loss_g.detach().float(),
                cycle.detach().float(),
                identity.detach().float(),
                semantic.detach().float(),
                torch.sigmoid(real_logits_a.detach()).mean(),
                torch.sigmoid(fake_logits_a.detach()).mean(),
                torch.sigmoid(real_logits_b.detach()).mean(),
                torch.sigmoid(fake_logits_b.detach()).mean(),
                gn_d.float(),
                gn_g.float(),
                *rt,
            ]
        )

    def semantic_loss(self, real_a: Tensor, real_b: Tensor, fake_a: Tensor, fake_b: Tensor) -> Tensor:
        """CyCADA's L_sem (Hoffman et al. 2018, eq. 4): cross-entropy of f_A on each translation
        against f_A's class of its source image (f_A frozen; B images in A's channels). Scalar."""
        from gan_cli.metrics.translation import as_channels

        assert self.f_a is not None
        c = self.cfg.data.a.channels  # type: ignore[union-attr]
        with torch.no_grad():
            label_a = self.f_a(real_a).argmax(1)
            label_b = self.f_a(as_channels(real_b, c)).argmax(1)
        return F.cross_entropy(self.f_a(as_channels(fake_b, c)).float(), label_a) + F.cross_entropy(
            self.f_a(fake_a).float(), label_b
        )

    # ---- looking at it --------------------------------------------------------------------
    @torch.no_grad()
    def translate(self, x: Tensor, direction: str) -> Tensor:
        """`direction` "a2b" (G_AB) or "b2a" (G_BA) of [-1, 1] images, in eval mode, as float."""
        net = self.G_AB if direction == "a2b" else self.G_BA
        was_training = net.training
        net.eval()
        try:
            with self.autocast():
                return net(x).float()
        finally:
            net.train(was_training)

    def sample_image(self) -> Tensor:
        """Rows of a, G_AB(a), G_BA(G_AB(a)), then b, G_BA(b), G_AB(G_BA(b)) (fixed inputs)."""
        a, b = self.fixed_a, self.fixed_b
        ab = self.translate(a, "a2b")
        ba = self.translate(b, "b2a")
        rows = [a, ab, self.translate(ab, "b2a"), b, ba, self.translate(ba, "a2b")]
        channels = max(r.shape[1] for r in rows)
        rows = [r.float().expand(-1, channels, -1, -1) for r in rows]
        return image_grid(torch.cat(rows), len(a))

    @torch.no_grad()
    def real_image(self) -> Tensor | None:
        """Real images of both domains as the discriminators receive them: A's rows, then B's."""
        n = max(1, self.cfg.trainer.n_samples // 2)
        a = self.batches_a.reference(n, self.cfg.trainer.seed + 5)
        b = self.batches_b.reference(n, self.cfg.trainer.seed + 5)
        channels = max(a.shape[1], b.shape[1])
        nrow = max(1, round(n**0.5))
        grid = torch.cat([a.expand(-1, channels, -1, -1), b.expand(-1, channels, -1, -1)])
        return image_grid(grid, nrow)

    @torch.no_grad()
    def window_metrics(self) -> dict[str, float]:
        """Diversity of each direction's translations of fixed inputs, relative to the target
        domain's real images (G_COLLAPSE when a generator maps everything to one image)."""
        n = self.cfg.trainer.health.diversity_samples
        out = {}
        for direction, source, target in (("a2b", self.batches_a, "b"), ("b2a", self.batches_b, "a")):
            x = self.translate(source.reference(n, self.cfg.trainer.seed + 3), direction)
            out[f"diversity/{direction}"] = float(mean_pairwise_distance(x)) / max(
                self.real_diversity[target], 1e-12
            )
        return out

    def log_values(self) -> dict[str, float]:
        ada = {}
        if self.ada_a is not None and self.ada_b is not None:
            ada = {"ada/p_a": self.ada_a.p, "ada/p_b": self.ada_b.p}
        return {"lr/g": self.opt_g.param_groups[0]["lr"], **ada}

    def loader_workers(self) -> int:
        return sum(
            dom.num_workers
            for dom, batches in ((self.cfg.data.a, self.batches_a), (self.cfg.data.b, self.batches_b))
            if dom is not None and isinstance(batches, LoaderBatches)
        )

    def evaluate(self, metrics: list[str], run_dir: Path) -> dict[str, Any]:
        from gan_cli.metrics.translation import LoadedTranslator, evaluate_translation

        translator = LoadedTranslator(self.G_AB, self.G_BA, self.cfg.model, self.cfg.data, self.step, run_dir)
        was = [(n, n.training) for n in (self.G_AB, self.G_BA)]
        try:
            return evaluate_translation(translator, metrics, self.cfg.eval, self.device)
        finally:
            for net, training in was:
                net.train(training)

    def export(self, path: Path) -> None:
        """Both generators and the configs that rebuild them: enough for gan-sample to translate."""
        cfg = config_dict(self.cfg)
        save_atomic(
            {
                "format": GENERATOR_FORMAT,
                "game": "cyclegan",
                "version": __version__,
                "step": self.step,
                "ema": False,
                "model": cfg["model"],
                "data": cfg["data"],
                "loss": cfg["loss"]["name"],
                "state_dict": {"g_ab": self.G_AB.state_dict(), "g_ba": self.G_BA.state_dict()},
            },
            path,
        )

    # ---- state ----------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {"G_AB": self.G_AB, "G_BA": self.G_BA, "D_A": self.D_A, "D_B": self.D_B}

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.opt_g, self.opt_d]

    def state_dict(self) -> dict[str, Any]:
        return {
            "models": {name.lower(): net.state_dict() for name, net in self.modules().items()},
            "optim": {"g": self.opt_g.state_dict(), "d": self.opt_d.state_dict()},
            "schedulers": [s.state_dict() for s in self.schedulers],
            "scaler": {"g": self.scaler_g.state_dict(), "d": self.scaler_d.state_dict()},
            "data": {"a": self.batches_a.state_dict(), "b": self.batches_b.state_dict()},
            "noise": {"a": self.fixed_a, "b": self.fixed_b},
            "pool": {"a": self.pool_a.state_dict(), "b": self.pool_b.state_dict()},
            "rng": {"noise": self.noise_gen.get_state()},
        } | (
            {"ada": {"a": self.ada_a.state_dict(), "b": self.ada_b.state_dict()}}
            if self.ada_a is not None and self.ada_b is not None
            else {}
        )

    def streams(self) -> dict[str, Any]:
        return {
            "data": {"a": self.batches_a.state_dict(), "b": self.batches_b.state_dict()},
            "noise": self.noise_gen.get_state().cpu(),
            "pool": {"a": self.pool_a.state_dict(), "b": self.pool_b.state_dict()},
        }

    def load_state_dict(self, state: dict[str, Any], streams: dict[str, Any] | None) -> None:
        try:
            for name, net in self.modules().items():
                net.load_state_dict(state["models"][name.lower()])
            self.opt_g.load_state_dict(state["optim"]["g"])
            self.opt_d.load_state_dict(state["optim"]["d"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise CheckpointError(
                f"holds a different model than this config builds ({str(e).splitlines()[0]})."
            ) from e
        for scheduler, saved in zip(self.schedulers, state["schedulers"], strict=True):
            scheduler.load_state_dict(saved)
        for scaler, saved in zip((self.scaler_g, self.scaler_d), state["scaler"].values(), strict=True):
            if scaler.is_enabled() and saved:
                scaler.load_state_dict(saved)
        if streams is not None:
            self.batches_a.load_state_dict(streams["data"]["a"])
            self.batches_b.load_state_dict(streams["data"]["b"])
            self.noise_gen.set_state(streams["noise"])
            pools = streams.get("pool", state["pool"])
            self.pool_a.load_state_dict(pools["a"])
            self.pool_b.load_state_dict(pools["b"])
        if self.ada_a is not None and self.ada_b is not None and "ada" in state:
            self.ada_a.load_state_dict(state["ada"]["a"])
            self.ada_b.load_state_dict(state["ada"]["b"])
        if state["noise"]["a"].shape == self.fixed_a.shape:  # else trainer.n_samples changed
            self.fixed_a = state["noise"]["a"].to(self.device)
            self.fixed_b = state["noise"]["b"].to(self.device)

    def apply_optim_config(self, rollbacks: int) -> None:
        o = self.cfg.optim
        pairs = [(self.opt_g, self.schedulers[0], o.lr_g), (self.opt_d, self.schedulers[1], o.lr_d)]
        apply_optim_config(self.cfg, pairs, rollbacks)


def cycle_l1(x: Tensor, target: Tensor) -> Tensor:
    """Mean absolute difference (the cycle-consistency and identity criterion), in fp32."""
    return F.l1_loss(x.float(), target.float())
