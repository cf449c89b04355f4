"""Stacked MNIST: three MNIST digits drawn at random as the R, G, B channels of one image, so that
the set has 10^3 = 1,000 modes (the digit triples). Introduced by Metz et al. 2017 (Unrolled GAN) and
used as a mode-collapse benchmark by VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018).

`data=stacked_mnist5k` stacks the embedded MNIST-5k (no download), `data=stacked_mnist` the MNIST of
`data.root`. The set has a fixed virtual size (`data.size`, 128,000 as in VEEGAN): which digits
make item i is drawn once from `data.seed`, independent of `trainer.seed`, so every run sees the
same set. Only the digits and the index triples are held in memory; the items are built when a
batch is gathered (128,000 x 3 x 32 x 32 uint8 images would take 393 MB, the triples take 3 MB).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from gan_cli.data.common import DataError
from gan_cli.data.source import Source
from gan_cli.schema import DataConfig, DataName

STACKED = {DataName.stacked_mnist5k: DataName.mnist5k, DataName.stacked_mnist: DataName.mnist}
CLASSES = 1000  # the triples (r, g, b) as one class 100 r + 10 g + b


class StackedDigits:
    """A uint8 (N, 3, H, W) image array that builds the rows it is indexed with: row i stacks the
    digits `triples[i]` (R, G, B) of `digits` (uint8 (M, 1, H, W)). Indexing (an int, a slice, an
    index or mask tensor) returns a Tensor; `rows` selects a lazy subset; `to` moves both parts."""

    def __init__(self, digits: Tensor, triples: Tensor) -> None:
        self.digits, self.triples = digits, triples

    def __len__(self) -> int:
        return len(self.triples)

    def __getitem__(self, index: int | slice | Tensor) -> Tensor:
        picked = self.triples[index]  # (3,) or (n, 3)
        return self.digits[picked].flatten(-4, -3)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), 3, *self.digits.shape[2:]))

    @property
    def dtype(self) -> torch.dtype:
        return self.digits.dtype

    @property
    def device(self) -> torch.device:
        return self.digits.device

    def dim(self) -> int:
        return 4

    def rows(self, indices: Tensor) -> StackedDigits:
        """The subset `indices`, still lazy."""
        return StackedDigits(self.digits, self.triples[indices.to(self.triples.device)])

    def to(self, device: torch.device | str) -> StackedDigits:
        return StackedDigits(self.digits.to(device), self.triples.to(device))


def digit_config(cfg: DataConfig) -> DataConfig:
    """The single-digit set a stacked set draws from (mnist5k or mnist, 1 channel, 10 classes, at
    the stacked set's image size, read from the same data.root)."""
    return dataclasses.replace(
        cfg, name=STACKED[cfg.name], channels=1, num_classes=10, subset=0, classes=None, hflip=False
    )


def stacked(cfg: DataConfig, digits: Source) -> Source:
    """The stacked set of `cfg` (data.size items from data.seed) over the opened digit set
    `digits` (uint8 arrays and labels)."""
    if digits.arrays is None or digits.labels is None:
        raise DataError(f"data={cfg.name.value}: the digit set has no decoded images and labels to stack.")
    gen = torch.Generator().manual_seed(cfg.seed)
    triples = torch.randint(len(digits.arrays), (cfg.size, 3), generator=gen)
    digit = digits.labels[triples]
    labels = 100 * digit[:, 0] + 10 * digit[:, 1] + digit[:, 2]
    return Source(
        length=cfg.size, labels=labels, num_classes=CLASSES, arrays=StackedDigits(digits.arrays, triples)
    )
