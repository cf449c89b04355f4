"""The generator's latent prior: where every z comes from (training, grids, gan-sample, gan-eval).

`model.z_prior` gives the shape: `normal` (standard normal, the default), `uniform` (U[-1, 1] per
component, as in the DCGAN paper, Radford et al. 2016) or `truncated` (a standard normal whose
components beyond `model.z_truncation` are redrawn: the truncation trick of Brock et al. 2019 built
into the prior, so G trains on the codes it is later sampled with).

With `model.z_components=K` it is a Gaussian mixture as in GM-GAN (Ben-Yosef & Weinshall 2018): K
components with fixed means spread over [-1, 1]^z_dim and a small std. The prior then has
near-empty gaps between its components, so G can put the jumps between separate modes of the data
where almost no z falls; with a normal prior some mass always lands on the way from one mode to
the next. The two compose: z = mean of a component + z_component_std * offset, where the offset is
drawn from `model.z_prior` (normal: each component a Gaussian of that std; uniform: a box of that
half-width, std z_component_std / sqrt(3); truncated: a Gaussian cut at z_truncation stds).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from gan_cli.schema import ModelConfig, ZPrior


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


def truncation_problem(model: ModelConfig, truncation: float) -> str | None:
    """Why a sampling-time `truncation` (gan-sample's truncation=) would change nothing under this
    prior, or None when it takes effect (or is 0, off). A uniform prior's codes lie in [-1, 1], so
    only t < 1 truncates it; a truncated prior is already cut at model.z_truncation."""
    if truncation <= 0:
        return None
    if model.z_prior == ZPrior.uniform and truncation >= 1:
        return (
            f"truncation={truncation:g} does nothing under this run's uniform prior (model.z_prior=uniform: "
            "its codes lie in [-1, 1]); a truncation t < 1 draws from U[-t, t], as redrawing every "
            "component beyond |t| would."
        )
    if model.z_prior == ZPrior.truncated and truncation >= model.z_truncation:
        return (
            f"truncation={truncation:g} does nothing under this run's prior, which is already cut at "
            f"model.z_truncation={model.z_truncation:g}; use a truncation below that."
        )
    return None


def _prior(
    model: ModelConfig, n: int, gen: torch.Generator, device: torch.device, truncation: float
) -> Tensor:
    """(n, z_dim) codes of the shape `model.z_prior`, before any mixture; truncation as in
    `sample_latents`."""
    if model.z_prior == ZPrior.uniform:
        # redrawing U[-1, 1] components beyond |t| gives U[-t, t]: the same law as scaling by t
        scale = truncation if 0 < truncation < 1 else 1.0
        return (torch.rand(n, model.z_dim, generator=gen, device=device) * 2 - 1) * scale
    if model.z_prior == ZPrior.truncated:
        truncation = min(truncation, model.z_truncation) if truncation > 0 else model.z_truncation
    return _normal(n, model.z_dim, gen, device, truncation)


def sample_latents(model: ModelConfig, n: int, gen: torch.Generator, truncation: float = 0.0) -> Tensor:
    """(n, model.z_dim) float32 codes from the prior of `model` (see the module docstring), drawn
    with `gen` on its device. The normal prior draws exactly what `torch.randn` draws, so runs from
    before z_prior existed keep their noise.

    `truncation` t > 0 is the truncation trick (Brock et al. 2019; fewer but more typical
    samples): every component beyond |t| is redrawn, in the whole code of a plain prior and in the
    offset from the component's mean for a mixture. Under a truncated prior the tighter of t and
    model.z_truncation holds; under a uniform prior t < 1 gives U[-t, t] and t >= 1 is refused.

    Raises ValueError where `truncation_problem` names one."""
    problem = truncation_problem(model, truncation)
    if problem:
        raise ValueError(problem)
    device = gen.device
    if model.z_components <= 0:
        return _prior(model, n, gen, device, truncation)
    which = torch.randint(0, model.z_components, (n,), generator=gen, device=device)
    offset = _prior(model, n, gen, device, truncation)
    means = component_means(model.z_dim, model.z_components, device)
    return means[which] + model.z_component_std * offset


def interpolate(model: ModelConfig, a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Codes on the walks from rows of `a` to rows of `b` at fractions `t` (broadcast): slerp for
    the normal and truncated priors (it keeps codes at a typical norm, White 2016), straight lines
    for a uniform prior (they stay in its cube) and for mixtures (they cross the gaps straight)."""
    from gan_cli.sampling import slerp

    if model.z_components == 0 and model.z_prior != ZPrior.uniform:
        return slerp(a, b, t)
    return torch.lerp(a, b, t)
