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


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination (Salimans et al. 2016, "Improved Techniques for Training GANs",
    sec. 3.2; reference code: openai/improved-gan, `MinibatchLayer`): D sees how close each sample
    lies to the others of its batch, so a generator that sends many codes to one output is caught
    by the batch, not by any single sample.

    (N, A) features f -> (N, A + B): f followed by o, where with M = f T reshaped to (N, B, C),
    c_b(x_i, x_j) = exp(-||M_i,b - M_j,b||_1) and o(x_i)_b = sum over j != i of c_b(x_i, x_j).
    The j = i term (exp(0) = 1 for every sample: no information) is left out, as the reference code
    does (it adds 1e6 to the self-distance); o_b lies in [0, N - 1], N - 1 for a batch of copies.

    T (A, B, C) starts N(0, 1/A), so each of its columns has unit norm on average: the reference's
    weight-normalised T at scale 1, without its data-dependent rescaling or its per-kernel bias
    (before D's last linear layer, a bias on o only adds a constant to the logit). Spectral
    normalisation does not touch T (a plain parameter, not a Linear layer).

    The layer runs in float32 under autocast: half precision rounds each sum of up to N - 1 terms
    in [0, 1] to a few bits. It compares samples within one forward call: real and fake batches
    are separate calls in the GAN game, each torchrun rank compares within its own batch, and
    under PacGAN the packed groups are compared with each other."""

    def __init__(self, in_features: int, kernels: int = 100, dim: int = 5) -> None:
        super().__init__()
        self.T = nn.Parameter(torch.randn(in_features, kernels, dim) / in_features**0.5)

    def closeness(self, f: Tensor) -> Tensor:
        """o: (N, A) -> (N, B) float32, each sample's summed closeness to the other N - 1."""
        with torch.autocast(f.device.type, enabled=False):
            m = (f.float() @ self.T.flatten(1).float()).unflatten(1, self.T.shape[1:])  # (N, B, C)
            per_kernel = m.transpose(0, 1)  # (B, N, C)
            c = torch.exp(-torch.cdist(per_kernel, per_kernel, p=1))  # (B, N, N)
            self_pairs = torch.eye(len(f), dtype=torch.bool, device=f.device)
            return c.masked_fill(self_pairs, 0.0).sum(dim=2).t()

    def forward(self, f: Tensor) -> Tensor:
        """(N, A) -> (N, A + B) in f's dtype: f, then o."""
        return torch.cat([f, self.closeness(f).to(f.dtype)], dim=1)
