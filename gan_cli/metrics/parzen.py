"""Parzen-window log-likelihood: the evaluation of the original GAN paper (Goodfellow et al. 2014,
Table 1: MNIST 225 +/- 2 nats, TFD 2057 +/- 26), whose protocol comes from Breuleux et al. 2011
("Quickly generating representative samples from an RBM-derived process").

Isotropic Gaussian kernels of one width sigma sit on N points s_i (generated samples, or real
training items as the reference); a point x then has the log density

    log p(x) = logsumexp_i(-||x - s_i||^2 / (2 sigma^2)) - log N - (d / 2) log(2 pi sigma^2)

in nats. sigma is the value of a grid that maximises the mean log density of a validation split;
the result is the mean over held-out test points with its standard error std / sqrt(n).

Caveat (Theis, van den Oord and Bethge 2016, "A note on the evaluation of generative models"):
in high dimensions these estimates say little about a model's likelihood. They scale poorly with
the dimension (far more kernels are needed than anyone draws), and a model that only stores
k-means centroids of the training data scores higher than the real data itself. Read the number
as a historical point of comparison, not as a measure of sample quality.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

# the reference code's grid for MNIST-scale data (pixels in [0, 1]): np.logspace(-1, 0, 10)
IMAGE_SIGMAS = tuple(float(s) for s in np.logspace(-1, 0, 10))
# 2-D points: three decades up to the data's scale (ring8: 1, grid25: 4), times that scale; the
# PacGAN modes (std 0.01 and 0.05) want a sigma near a third of their std with 10,000 kernels
POINT_SIGMAS = tuple(float(s) for s in np.logspace(-3, 0, 16))
CHUNK_POINTS = 1024  # test points per block of the distance matrix ...
CHUNK_KERNELS = 2048  # ... times kernels: 16 MiB in float64


@dataclass(frozen=True)
class ParzenResult:
    ll: float  # mean log-likelihood of the test points, nats
    se: float  # its standard error, std / sqrt(n)
    sigma: float  # the kernel width chosen on the validation points
    valid_ll: tuple[float, ...]  # mean validation log-likelihood for each sigma of the grid


def log_likelihood(
    x: Tensor,
    kernels: Tensor,
    sigmas: Sequence[float],
    chunk_points: int = CHUNK_POINTS,
    chunk_kernels: int = CHUNK_KERNELS,
) -> Tensor:
    """log p(x) under the Parzen window with Gaussian kernels of width sigma centred on `kernels`.

    x: (n, ...) points; kernels: (N, ...) centres of the same shape per item; both are flattened
    to d = prod(...) coordinates and computed in float64 on x's device. Distances come in blocks of
    chunk_points x chunk_kernels as ||x||^2 + ||s||^2 - 2 x.s (both centred on the kernels' mean,
    which keeps the norms and so the rounding small), merged with a running logsumexp, so memory
    does not grow with N. Returns (len(sigmas), n) float64 log densities in nats.
    Raises ValueError for a non-positive sigma, no kernels or a dimension mismatch.
    """
    if not len(sigmas) or min(sigmas) <= 0:
        raise ValueError(f"sigmas must be positive, got {list(sigmas)}")
    x = x.flatten(1).to(torch.float64)
    k = kernels.flatten(1).to(device=x.device, dtype=torch.float64)
    if len(k) == 0 or x.shape[1] != k.shape[1]:
        raise ValueError(f"kernels must match the points: points {tuple(x.shape)}, kernels {tuple(k.shape)}")
    centre = k.mean(0)
    x, k = x - centre, k - centre
    sig = torch.tensor(list(sigmas), dtype=torch.float64, device=x.device)
    coef = -0.5 / sig**2  # (S,): log kernel = coef * ||x - s||^2 + const
    k_sq = k.pow(2).sum(1)
    out = torch.empty(len(sig), len(x), dtype=torch.float64, device=x.device)
    for i in range(0, len(x), chunk_points):
        xb = x[i : i + chunk_points]
        x_sq = xb.pow(2).sum(1, keepdim=True)
        acc = torch.full((len(sig), len(xb)), -math.inf, dtype=torch.float64, device=x.device)
        for j in range(0, len(k), chunk_kernels):
            kb = k[j : j + chunk_kernels]
            d2 = torch.addmm(x_sq + k_sq[j : j + chunk_kernels], xb, kb.T, alpha=-2.0).clamp_(min=0.0)
            # logsumexp, shifted once by the nearest kernel for every sigma: each term is <= 1
            # and the nearest one is 1, so the sum neither overflows nor reaches 0
            nearest = d2.amin(1)
            shifted, term = d2.sub_(nearest[:, None]), torch.empty_like(d2)
            sums = [torch.mul(shifted, c, out=term).exp_().sum(1) for c in coef.tolist()]
            acc = torch.logaddexp(acc, torch.stack(sums).log_() + coef[:, None] * nearest)
        out[:, i : i + len(xb)] = acc
    log_norm = math.log(len(k)) + 0.5 * x.shape[1] * torch.log(2 * math.pi * sig**2)
    return out - log_norm[:, None]


def mean_and_se(ll: Tensor) -> tuple[float, float]:
    """Mean of per-point log-likelihoods (n,) and its standard error std / sqrt(n), with the
    population std (ddof 0) as in the reference code (Goodfellow et al.'s parzen_ll.py)."""
    ll = ll.to(torch.float64)
    return float(ll.mean()), float(ll.std(correction=0) / math.sqrt(len(ll)))


def select_sigma(valid: Tensor, kernels: Tensor, sigmas: Sequence[float]) -> tuple[float, list[float]]:
    """The sigma of the grid with the highest mean validation log-likelihood (the first of a
    tie), and that mean for every sigma. valid: (n, ...) points; kernels: (N, ...)."""
    means = log_likelihood(valid, kernels, sigmas).mean(1)
    return float(sigmas[int(means.argmax())]), means.tolist()


def parzen(kernels: Tensor, valid: Tensor, test: Tensor, sigmas: Sequence[float]) -> ParzenResult:
    """The protocol: choose sigma on `valid`, then the mean log-likelihood (nats) of `test` with
    its standard error. All three are (n, ...) in the same coordinates (images: pixels in [0, 1])."""
    sigma, valid_ll = select_sigma(valid, kernels, sigmas)
    ll, se = mean_and_se(log_likelihood(test, kernels, [sigma])[0])
    return ParzenResult(ll=ll, se=se, sigma=sigma, valid_ll=tuple(valid_ll))


def default_sigmas(points: bool, scale: float = 1.0) -> list[float]:
    """The grid when eval.parzen_sigmas is empty: the reference's for images in [0, 1], else
    POINT_SIGMAS times the 2-D set's scale (its largest mode coordinate)."""
    return [s * scale for s in POINT_SIGMAS] if points else list(IMAGE_SIGMAS)
