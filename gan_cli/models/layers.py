"""Small layers shared by discriminators."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MinibatchStd(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018): appends, as one more feature (map), the
    mean over features of the std across each group of `group` samples, so D can see a batch
    that lacks variety."""

    def __init__(self, group: int = 4) -> None:
        super().__init__()
        self.group = group

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        g = self.group if n % self.group == 0 else n
        grouped = x.float().reshape(g, n // g, *x.shape[1:])
        std = grouped.var(dim=0, unbiased=False).add(1e-8).sqrt()  # (n/g, ...)
        stat = std.flatten(1).mean(dim=1).to(x.dtype)  # one number per group
        stat = stat.repeat(g)  # back to n, in the sample order of `grouped`
        shape = (n, 1, *x.shape[2:])
        return torch.cat([x, stat.view(n, *([1] * (x.dim() - 1))).expand(shape)], dim=1)


class Maxout(nn.Module):
    """(N, units * pieces) -> (N, units): the max over each unit's consecutive pieces."""

    def __init__(self, pieces: int) -> None:
        super().__init__()
        self.pieces = pieces

    def forward(self, x: Tensor) -> Tensor:
        return x.unflatten(1, (-1, self.pieces)).amax(dim=2)
