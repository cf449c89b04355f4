"""The generator's latent prior: where every z comes from (training, grids, gan-sample, gan-eval).

Standard normal by default. With `model.z_components=K` it is a Gaussian mixture as in GM-GAN
(Ben-Yosef & Weinshall 2018): K components with fixed means spread over [-1, 1]^z_dim and a small
std. The prior then has near-empty gaps between its components, so G can put the jumps between
separate modes of the data where almost no z falls; with a normal prior some mass always lands on
the way from one mode to the next.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from gan_cli.schema import ModelConfig


@lru_cache(maxsize=8)
def component_means(z_dim: int, k: int, device: torch.device | str = "cpu") -> Tensor:
    """K fixed means in [-1, 1]^z_dim: scrambled Sobol points with a constant seed, evenly spread
    (fewer near-coincident pairs than uniform draws) and the same in every process and version.
    Cached per device, so a training step on a GPU copies nothing from the host."""
    points = torch.quasirandom.SobolEngine(z_dim, scramble=True, seed=0).draw(k, dtype=torch.float32)
    return (points * 2 - 1).to(device)


def _normal(n: int, z_dim: int, gen: torch.Generator, device: torch.device, truncation: float) -> Tensor:
    """Standard normal codes; with `truncation` t > 0, every component beyond |t| is redrawn."""
    z = torch.randn(n, z_dim, generator=gen, device=device)
    if truncation > 0:
        while (bad := z.abs() > truncation).any():
            z[bad] = torch.randn(int(bad.sum()), generator=gen, device=device)
    return z


def sample_latents(model: ModelConfig, n: int, gen: torch.Generator, truncation: float = 0.0) -> Tensor:
    """n codes from the prior of `model`, drawn with `gen` (on its device). Truncation (t > 0: the
    truncation trick, fewer but more typical samples) applies to the normal part: the whole code
    of the standard prior, the offset from its component's mean for a mixture."""
    device = gen.device
    if model.z_components <= 0:
        return _normal(n, model.z_dim, gen, device, truncation)
    which = torch.randint(0, model.z_components, (n,), generator=gen, device=device)
    offset = _normal(n, model.z_dim, gen, device, truncation)
    means = component_means(model.z_dim, model.z_components, device)
    return means[which] + model.z_component_std * offset
