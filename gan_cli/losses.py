"""GAN objectives on raw D logits: one (d_loss, g_loss) pair per variant, plus penalties.

Written with softplus / logits throughout (never BCELoss), which is exact and safe under autocast:
-log sigmoid(l) = softplus(-l) and -log(1 - sigmoid(l)) = softplus(l).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


@dataclass(frozen=True)
class GANLoss:
    d_loss: Callable[[Tensor, Tensor], Tensor]  # (real logits, fake logits) -> scalar
    g_loss: Callable[[Tensor], Tensor]  # fake logits -> scalar
    probabilistic: bool  # sigmoid(logit) is meant as P(real): D_OVERPOWERS / D_FAILING apply
    boundary: float = 0.0  # the logit at which D is undecided between real and fake (ADA's r_t)


def _gan_d(real: Tensor, fake: Tensor) -> Tensor:
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def _minimax_g(fake: Tensor) -> Tensor:
    # G minimises log(1 - D(G(z))) = -softplus(logit): the saturating loss of the original paper
    return -F.softplus(fake).mean()


def _nonsaturating_g(fake: Tensor) -> Tensor:
    return F.softplus(-fake).mean()


def _wgan_d(real: Tensor, fake: Tensor) -> Tensor:
    return fake.mean() - real.mean()


def _wgan_g(fake: Tensor) -> Tensor:
    return -fake.mean()


def _hinge_d(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def _lsgan_d(real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * (real - 1.0).pow(2).mean() + 0.5 * fake.pow(2).mean()


def _lsgan_g(fake: Tensor) -> Tensor:
    return 0.5 * (fake - 1.0).pow(2).mean()


LOSSES: dict[str, GANLoss] = {
    "minimax": GANLoss(_gan_d, _minimax_g, probabilistic=True),
    "nonsaturating": GANLoss(_gan_d, _nonsaturating_g, probabilistic=True),
    "wgan": GANLoss(_wgan_d, _wgan_g, probabilistic=False),
    "wgan_gp": GANLoss(_wgan_d, _wgan_g, probabilistic=False),
    "hinge": GANLoss(_hinge_d, _wgan_g, probabilistic=True),
    "lsgan": GANLoss(_lsgan_d, _lsgan_g, probabilistic=False, boundary=0.5),  # targets 1 and 0
}


def gradient_penalty(
    d: nn.Module, real: Tensor, fake: Tensor, y: Tensor | None, gen: torch.Generator
) -> Tensor:
    """WGAN-GP: E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates, computed in fp32
    (autocast off) because the penalty's second-order gradients underflow in half precision."""
    with torch.autocast(device_type=real.device.type, enabled=False):
        real, fake = real.float(), fake.float()
        eps_shape = (len(real),) + (1,) * (real.dim() - 1)
        eps = torch.rand(eps_shape, device=real.device, generator=gen)
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        out = d(x_hat, y)
        (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True, materialize_grads=True)
        return (grad.flatten(1).norm(2, dim=1) - 1.0).pow(2).mean()


def r1_penalty(d: nn.Module, real: Tensor, y: Tensor | None) -> Tensor:
    """R1 (Mescheder et al. 2018): E ||grad_x D(x)||^2 on real data, in fp32 like the GP."""
    with torch.autocast(device_type=real.device.type, enabled=False):
        x = real.detach().float().requires_grad_(True)
        # materialize_grads: a D that ignores its input has zero gradient, not an error
        (grad,) = torch.autograd.grad(d(x, y).sum(), x, create_graph=True, materialize_grads=True)
        return grad.pow(2).flatten(1).sum(1).mean()


EXP_FLOOR = -87.0  # the smallest exponent whose exp is a normal fp32 number (e^-87 = 1.6e-38)


class _GaussianKernelSum(torch.autograd.Function):
    """sum_c exp(c d2) for squared distances d2 and coefficients c = -1 / (2 s^2), its derivative
    sum_c c exp(c d2) kept from the forward pass: one pass over the matrix per bandwidth, where
    autograd would record four ops each. Exponents below EXP_FLOOR are raised to it (the kernel is
    1.6e-38 there, 0 for every purpose): exp's subnormal results are ~20x slower on x86 CPUs, and
    a 2-D cluster's bandwidth puts most pairs of a batch there."""

    @staticmethod
    def forward(ctx: Any, d2: Tensor, coefs: tuple[float, ...]) -> Tensor:
        k = torch.zeros_like(d2)
        dk = torch.zeros_like(d2) if ctx.needs_input_grad[0] else None
        for c in coefs:
            e = torch.exp((d2 * c).clamp_min_(EXP_FLOOR))
            k.add_(e)
            if dk is not None:
                dk.add_(e, alpha=c)
        ctx.save_for_backward(dk)
        return k

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (dk,) = ctx.saved_tensors
        return grad * dk, None


def mmd2(x: Tensor, y: Tensor, bandwidths: Sequence[float]) -> Tensor:
    """Unbiased squared maximum mean discrepancy (Gretton et al. 2012, "A Kernel Two-Sample Test",
    eq. 3) between samples x (N, D) and y (M, D), N, M >= 2, under the sum of Gaussian kernels
    k(a, b) = sum_s exp(-||a - b||^2 / (2 s^2)) over `bandwidths` s (in the data's units):
    mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean_{i, j} k(x_i, y_j). Zero in
    expectation when x and y come from one distribution; as a generator's loss it is the moment
    matching of GMMN (Li et al. 2015; Dziugaite et al. 2015), here beside D's loss. In fp32; returns
    a scalar tensor (differentiable in x and y). The x rows against [x; y] are one matrix."""
    x, y = x.float(), y.float()
    n, m = len(x), len(y)
    coefs = tuple(-0.5 / (s * s) for s in bandwidths)

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        d2 = (a.square().sum(1, keepdim=True) + b.square().sum(1) - 2 * a @ b.t()).clamp_min(0)
        return _GaussianKernelSum.apply(d2, coefs)

    k_x = kernel(x, torch.cat([x, y]))  # (N, N + M): the xx block, then the xy block
    xx, xy = k_x[:, :n], k_x[:, n:]
    k_yy = kernel(y, y)
    off_diagonal = lambda k: k.sum() - k.diagonal().sum()  # noqa: E731
    return off_diagonal(xx) / (n * (n - 1)) + off_diagonal(k_yy) / (m * (m - 1)) - 2 * xy.mean()


def smoothed_gan_d(real: Tensor, fake: Tensor, smoothing: float) -> Tensor:
    """The logistic D loss with one-sided label smoothing: real targets 1 - smoothing
    (Salimans et al. 2016); fake targets stay 0."""
    real_term = (1 - smoothing) * F.softplus(-real) + smoothing * F.softplus(real)
    return real_term.mean() + F.softplus(fake).mean()


@torch.no_grad()
def clip_weights(d: nn.Module, clip: float) -> None:
    """WGAN's Lipschitz constraint by weight clipping (Arjovsky et al. 2017)."""
    for p in d.parameters():
        p.clamp_(-clip, clip)
