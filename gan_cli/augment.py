"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to real and fake images
alike on their way into D, so D cannot memorise a small data set and G still gets gradients.

Random draws come from the trainer's noise generator, so augmented runs resume exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _rand(n: int, x: Tensor, gen: torch.Generator) -> Tensor:
    return torch.rand(n, 1, 1, 1, device=x.device, generator=gen, dtype=x.dtype)


def color(x: Tensor, gen: torch.Generator) -> Tensor:
    """Brightness +-0.5, saturation x[0, 2], contrast x[0.5, 1.5] (images in [-1, 1])."""
    n = len(x)
    x = x + (_rand(n, x, gen) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(n, x, gen) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(n, x, gen) + 0.5) + mean


def translation(x: Tensor, gen: torch.Generator, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to `ratio` of its size, filling with zeros."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device, generator=gen)
    tx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device, generator=gen)
    gy = (torch.arange(h, device=x.device)[None, :, None] + ty + 1).clamp(0, h + 1)
    gx = (torch.arange(w, device=x.device)[None, None, :] + tx + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, gy, gx].permute(0, 3, 1, 2)


def cutout(x: Tensor, gen: torch.Generator, ratio: float = 0.5) -> Tensor:
    """Zero one random square of `ratio` of the image size per image."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device, generator=gen)
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device, generator=gen)
    top, left = oy - ch // 2, ox - cw // 2
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


POLICIES = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: Tensor, policy: list[str], gen: torch.Generator) -> Tensor:
    for name in policy:
        x = POLICIES[name](x, gen)
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
