"""Mode coverage on 2-D Gaussian mixtures, as in PacGAN (Lin et al. 2018, Table 1)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

SAMPLES = 2500  # the protocol's sample count


def modes2d(points: Tensor, modes: Tensor, std: float) -> dict[str, float]:
    """Each sample goes to its nearest mode and is high quality (HQ) within 3 std of it; a mode is
    covered by at least one HQ sample. Reverse KL is KL(histogram of HQ samples over modes ||
    uniform), log(K) when no sample is HQ."""
    points, modes = points.double(), modes.double()
    dist = torch.cdist(points, modes)
    nearest_dist, nearest = dist.min(dim=1)
    hq = nearest_dist <= 3 * std
    counts = torch.bincount(nearest[hq], minlength=len(modes)).double()
    k = len(modes)
    if counts.sum() == 0:
        rkl = math.log(k)
    else:
        p = counts / counts.sum()
        nz = p > 0
        rkl = float((p[nz] * (p[nz] * k).log()).sum())
    return {
        "modes2d/modes": float((counts > 0).sum()),
        "modes2d/hq_pct": 100.0 * float(hq.double().mean()),
        "modes2d/rkl": rkl,
    }
