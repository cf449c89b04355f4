"""Mode coverage on 2-D Gaussian mixtures, as in PacGAN (Lin et al. 2018, Table 1)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

SAMPLES = 2500  # the protocol's sample count
# E[r^2 | r <= 3] for a 2-D standard normal (r^2 ~ Exp(mean 2), cut at 9): what the data's own
# high-quality samples give, so that `spread` is 1 for a generator with the data's clusters
_DATA_MEAN_SQ = 2 - 9 * math.exp(-4.5) / (1 - math.exp(-4.5))


def modes2d(points: Tensor, modes: Tensor, std: float) -> dict[str, float]:
    """Each sample goes to its nearest mode and is high quality (HQ) within 3 std of it; a mode is
    covered by at least one HQ sample. Reverse KL is KL(histogram of HQ samples over modes ||
    uniform), log(K) when no sample is HQ. Spread is the RMS distance of HQ samples to their mode
    relative to the data's own (1: clusters as wide as the data's; below 1: tighter, which the
    PacGAN metrics reward: the data itself scores 98.9 % HQ); NaN when no sample is HQ."""
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
    spread = (
        float((nearest_dist[hq].pow(2).mean() / (_DATA_MEAN_SQ * std**2)).sqrt()) if hq.any() else math.nan
    )
    return {
        "modes2d/modes": float((counts > 0).sum()),
        "modes2d/hq_pct": 100.0 * float(hq.double().mean()),
        "modes2d/rkl": rkl,
        "modes2d/spread": spread,
    }
