"""The games the training loop can run. Each is one module owning its networks, optimizers,
schedulers, scalers, data streams, its step, its health values, its sample grid, its export for
`gan-sample` and its part of the checkpoint; the loop (trainer.py) knows none of it.

    gan       one G, one D (mlp, dcgan, cgan): the GAN losses, penalties, EMA, fixed noise
    cyclegan  G_AB, G_BA, D_A, D_B: unpaired translation with cycle-consistency, an image pool
    stylegan2 mapping + synthesis G, residual D: lazy R1, path length, style mixing, w_avg

The shape follows stylegan2-ada's training loop calling a loss object's phases and MMGeneration's
one model class per algorithm under a generic runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from gan_cli.augment import diff_augment
from gan_cli.distributed import DistInfo
from gan_cli.optim import Updater
from gan_cli.schema import Config, ModelName

if TYPE_CHECKING:
    from gan_cli.ada import Ada


@dataclass(frozen=True)
class Setup:
    """What the loop gives a game to build itself with."""

    cfg: Config
    device: torch.device
    dist: DistInfo
    updater: Updater  # every network's update goes through it (skip logic, all-reduce)
    amp_dtype: torch.dtype | None  # autocast dtype, None for fp32
    stream_seed: int  # this rank's seed for data and noise streams


class Game:
    """What the loop asks of a game. Subclasses set the class attributes and implement the methods.

    `step` is the loop's step count (G steps done so far), kept current by the loop."""

    fields: tuple[str, ...] = ()  # the per-step values `train_step` returns, in order
    discriminators: tuple[tuple[str, str, str], ...] = ()  # (label, real field, fake field) for warnings
    probabilistic: bool = True  # sigmoid(logit) reads as P(real): the D warnings apply

    def __init__(self, setup: Setup) -> None:
        self.cfg, self.device, self.dist, self.update = setup.cfg, setup.device, setup.dist, setup.updater
        self.amp_dtype, self.stream_seed = setup.amp_dtype, setup.stream_seed
        self.step = 0

    # ---- training -------------------------------------------------------------------------
    def train_step(self) -> Tensor:
        """One step of the game; returns its `fields` as one 1-D device tensor (no host sync)."""
        raise NotImplementedError

    def window_metrics(self) -> dict[str, float]:
        """Health metrics measured at the end of a log window (diversity: `diversity*` keys are
        checked for G_COLLAPSE)."""
        return {}

    def loader_workers(self) -> int:
        """DataLoader worker processes decoding a streamed data set (they take CPUs too)."""
        return 0

    def log_values(self) -> dict[str, float]:
        """Other values logged with each window (learning rates)."""
        return {}

    # ---- looking at it --------------------------------------------------------------------
    def sample_image(self) -> Tensor:
        """The fixed-input sample grid, (C, H, W) in [0, 1]."""
        raise NotImplementedError

    def real_image(self) -> Tensor | None:
        """A grid of real training images as the discriminators receive them, or None."""
        return None

    def samples_finite(self) -> bool:
        """Whether the generators' samples of the fixed inputs are all finite."""
        return bool(torch.isfinite(self.sample_image()).all())

    def evaluate(self, metrics: list[str], run_dir: Path) -> dict[str, Any]:
        """The eval.metrics of this game at this step (never moves a training stream)."""
        raise NotImplementedError

    def export(self, path: Path) -> None:
        """What gan-sample needs, written to `path` (checkpoints/generator.pt)."""
        raise NotImplementedError

    # ---- state ----------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        """Every network by name (the loop checks, fingerprints and snapshots them)."""
        raise NotImplementedError

    def optimizers(self) -> list[torch.optim.Optimizer]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """This game's part of the checkpoint (networks, optimizers, schedulers, scalers, fixed
        inputs and this rank's streams)."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any], streams: dict[str, Any] | None) -> None:
        """Restore from a checkpoint; `streams` are this rank's (None: a rank the checkpoint did
        not have keeps its fresh ones). Raises CheckpointError when the networks differ."""
        raise NotImplementedError

    def streams(self) -> dict[str, Any]:
        """This rank's data and noise streams (gathered from every rank into a checkpoint)."""
        raise NotImplementedError

    def apply_optim_config(self, rollbacks: int) -> None:
        """Learning rates, betas and schedules as the config says (after a load or a rollback)."""
        raise NotImplementedError

    def init_from(self, weights: dict[str, dict[str, Tensor]]) -> list[str]:
        """Fine-tuning: start every network that `weights` has (by the checkpoint's lower-case
        names; an EMA generator from the plain one where the file has no EMA) from those weights;
        optimizers, step and data streams stay fresh. Returns the names loaded.

        Raises CheckpointError naming the mismatched tensors and their shapes when the
        architectures differ, or when the file holds none of this game's networks."""
        from gan_cli.checkpoint import CheckpointError

        loaded = []
        for name, net in self.modules().items():
            key = name.lower()
            saved = weights.get(key) or (
                weights.get(key.removesuffix("_ema")) if key.endswith("_ema") else None
            )
            if saved is None:
                continue
            own = net.state_dict()
            problems = [
                f"{k}: {tuple(saved[k].shape)} in the file, {tuple(v.shape)} here"
                for k, v in own.items()
                if k in saved and saved[k].shape != v.shape
            ]
            problems += [f"{k}: missing in the file" for k in own if k not in saved]
            problems += [f"{k}: not in this model" for k in saved if k not in own]
            if problems:
                shown = "; ".join(problems[:4]) + (
                    f"; and {len(problems) - 4} more" if len(problems) > 4 else ""
                )
                raise CheckpointError(
                    f"its {name} does not fit the {name} this config builds ({shown}). Fine-tuning needs "
                    "the same architecture: the same model.* settings and data.channels / data.image_size."
                )
            net.load_state_dict(saved)
            loaded.append(name)
        if not loaded:
            raise CheckpointError(
                f"it holds {', '.join(sorted(weights)) or 'no networks'}, none of which this model "
                f"({', '.join(self.modules())}) has."
            )
        return loaded

    # ---- helpers every game uses ----------------------------------------------------------
    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def d_input(self, x: Tensor, gen: torch.Generator, ada: Ada | None = None) -> Tensor:
        """What a discriminator sees of a batch: DiffAugment'ed (trainer.diffaugment) or through
        that discriminator's ADA pipe (`ada`, trainer.ada), then instance noise, drawn from `gen`
        (the pipe from the generator it was built with) so augmented runs resume exactly."""
        if self.cfg.trainer.diffaugment:
            x = diff_augment(x, list(self.cfg.trainer.diffaugment), gen)
        if ada is not None:
            x = ada.augment(x)
        return self.noisy(x, gen)

    def build_ada(self, gen: torch.Generator) -> Ada | None:
        """An ADA pipe and p controller for one discriminator as trainer.ada* say, drawing from
        `gen`; None when trainer.ada is off. Feed it that D's real logits once per D step (`update`)
        and save its `state_dict` with the game's."""
        t = self.cfg.trainer
        if not t.ada:
            return None
        from gan_cli.ada import Ada
        from gan_cli.losses import LOSSES

        return Ada(
            list(t.ada_pipe),
            gen,
            batch_size=t.batch_size * self.dist.world,
            target=t.ada_target,
            interval=t.ada_interval,
            kimg=t.ada_kimg,
            p=t.ada_p,
            boundary=LOSSES[self.cfg.loss.name.value].boundary,
            world=self.dist.world,
        )

    def noisy(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """Instance noise: Gaussian noise on D's inputs, its std annealed linearly to 0 over
        trainer.instance_noise_steps (a horizon of its own, so extending a run changes nothing)."""
        t = self.cfg.trainer
        sigma = t.instance_noise * (
            max(0.0, 1.0 - self.step / t.instance_noise_steps) if t.instance_noise_steps else 1.0
        )
        if sigma <= 0:
            return x
        return x + sigma * torch.randn(x.shape, device=x.device, generator=gen, dtype=x.dtype)


def game_class(cfg: Config) -> type[Game]:
    """The game a config's model plays."""
    if cfg.model.name == ModelName.cyclegan:
        from gan_cli.games.cyclegan import CycleGAN

        return CycleGAN
    if cfg.model.name == ModelName.stylegan2:
        from gan_cli.games.stylegan2 import StyleGAN2

        return StyleGAN2
    from gan_cli.games.gan import GAN

    return GAN
