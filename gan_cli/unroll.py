"""Unrolled GAN (Metz et al. 2017): G is updated against D as it will be k optimizer steps later.

The k surrogate D steps are differentiable Adam steps taken on copies of D's weights (and of its
optimizer's moments), so G's gradient also flows through how D would react to G's samples (the
second-order term the paper found essential for mode coverage). The real D and its optimizer are
never touched: the surrogate weights are discarded after the G step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call

Params = dict[str, Tensor]
# the D loss of the surrogate weights on a fresh real and fake batch
SurrogateLoss = Callable[[Params], Tensor]


def adam_moments(D: nn.Module, opt: torch.optim.Optimizer) -> tuple[Params, Params, float]:
    """Copies of Adam's first and second moments per parameter name, and its step count."""
    m: Params = {}
    v: Params = {}
    step = 0.0
    for name, p in D.named_parameters():
        state = opt.state.get(p, {})
        if "exp_avg" in state:
            m[name] = state["exp_avg"].detach().clone()
            v[name] = state["exp_avg_sq"].detach().clone()
            step = float(state["step"])
        else:
            m[name] = torch.zeros_like(p)
            v[name] = torch.zeros_like(p)
    return m, v, step


def unrolled_params(
    D: nn.Module, opt: torch.optim.Optimizer, steps: int, loss_of: SurrogateLoss, create_graph: bool = True
) -> Params:
    """D's weights after `steps` Adam steps on `loss_of`, as a differentiable function of
    whatever `loss_of` depends on (G's weights, through its samples)."""
    group = opt.param_groups[0]
    lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
    params = {n: p.detach().requires_grad_() for n, p in D.named_parameters()}
    m, v, t = adam_moments(D, opt)
    for _ in range(steps):
        t += 1
        names = list(params)
        grads = torch.autograd.grad(loss_of(params), [params[n] for n in names], create_graph=create_graph)
        new: Params = {}
        for n, g in zip(names, grads, strict=True):
            p = params[n]
            if wd:
                g = g + wd * p
            m[n] = b1 * m[n] + (1 - b1) * g
            v[n] = b2 * v[n] + (1 - b2) * g * g
            m_hat = m[n] / (1 - b1**t)
            v_hat = v[n] / (1 - b2**t)
            # eps inside the root as well keeps the root's derivative finite where v is 0
            new[n] = p - lr * m_hat / ((v_hat + 1e-24).sqrt() + eps)
        params = new
    return params


def call_with(D: nn.Module, params: Params, *args: Tensor | None) -> Tensor:
    """D's forward pass with `params` in place of its weights, on copies of its buffers (BatchNorm
    statistics, spectral-norm vectors), so the real D is left as it was."""
    buffers = {n: b.clone() for n, b in D.named_buffers()}
    return functional_call(D, {**buffers, **params}, args)
