"""The classic fully connected GAN pair, for 2-D points or flattened images."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gan_cli.models.layers import Maxout, MinibatchDiscrimination, MinibatchStd
from gan_cli.models.norm import norm_1d


class MLPGenerator(nn.Module):
    """z -> hidden... -> prod(out_shape). Tanh for images ([-1, 1]); linear for vector data,
    whose range (grid25 spans [-4, 4]) a tanh could not reach."""

    def __init__(
        self,
        z_dim: int,
        hidden: list[int],
        out_shape: tuple[int, ...],
        norm: str,
        tanh: bool,
        activation: str = "leaky_relu",
        scale: float | None = None,
        ref_size: int = 0,
    ) -> None:
        """`norm="virtual_batch"`: every forward also runs the `ref_size` latents of the buffer
        `z_ref` (set once by `set_reference`, saved with the weights) and normalises with their
        statistics (Salimans et al. 2016), so a sample does not depend on its batch."""
        super().__init__()
        if scale is not None:  # vector data: the net works in units of the data's scale
            self.register_buffer("scale", torch.tensor(float(scale)))
        else:
            self.scale = None
        self.ref_size = ref_size if norm == "virtual_batch" else 0
        if self.ref_size:
            self.register_buffer("z_ref", torch.zeros(self.ref_size, z_dim))
        self.z_dim = z_dim
        self.out_shape = out_shape
        layers: list[nn.Module] = []
        width = z_dim
        for i, h in enumerate(hidden):
            # the first layer sees raw noise and is left unnormalised, as in the classic recipe
            use_norm = norm if i > 0 else "none"
            act = nn.ReLU() if activation == "relu" else nn.LeakyReLU(0.2)
            layers += [nn.Linear(width, h), norm_1d(use_norm, h, self.ref_size), act]
            width = h
        layers.append(nn.Linear(width, math.prod(out_shape)))
        if tanh:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def set_reference(self, z_ref: Tensor) -> None:
        """The reference batch (ref_size, z_dim) of virtual batch norm: latents from G's prior."""
        self.z_ref.copy_(z_ref)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """(N, z_dim) -> (N, *out_shape)."""
        if self.ref_size:
            x = self.net(torch.cat([self.z_ref.to(z.dtype), z]))[self.ref_size :]
        else:
            x = self.net(z)
        x = x.view(len(z), *self.out_shape)
        return x if self.scale is None else x * self.scale


class FourierFeatures(nn.Module):
    """(N, k * point_dim) -> (N, k * point_dim + k * 2 * features): each of the k points' coordinates
    followed by cos(2 pi B x) and sin(2 pi B x) of its own, B (point_dim, features) ~ N(0, scale^2)
    fixed at construction (Tancik et al. 2020)."""

    def __init__(self, point_dim: int, features: int, scale: float) -> None:
        super().__init__()
        self.point_dim = point_dim
        self.register_buffer("freqs", torch.randn(point_dim, features) * scale)

    def forward(self, x: Tensor) -> Tensor:
        angles = (2 * math.pi) * (x.view(len(x), -1, self.point_dim) @ self.freqs.to(x.dtype))
        return torch.cat([x, angles.cos().flatten(1), angles.sin().flatten(1)], dim=1)


class MLPDiscriminator(nn.Module):
    """x -> hidden... -> 1 logit per sample."""

    def __init__(
        self,
        in_shape: tuple[int, ...],
        hidden: list[int],
        norm: str,
        mbstd: bool = False,
        scale: float | None = None,
        maxout: int = 0,
        mbd_kernels: int = 0,
        mbd_dim: int = 5,
        fourier: int = 0,
        fourier_scale: float = 10.0,
        point_dim: int = 0,
    ) -> None:
        """`maxout` > 1: each hidden unit is the max of that many linear pieces (Goodfellow et al.
        2013; the PacGAN paper's D) instead of a LeakyReLU. `mbd_kernels` > 0: minibatch
        discrimination's features (that many kernels of `mbd_dim`) join the last hidden features
        (after the minibatch-std column, when on) before the output layer. `fourier` > 0 (points
        of `point_dim` coordinates, several per input when packed): cos and sin of that many random
        projections 2 pi B x of each point, B ~ N(0, fourier_scale^2) drawn once (a buffer), join
        its coordinates. A ReLU network learns fine detail slowly (its spectral bias; Tancik et al.
        2020, "Fourier features let networks learn high frequency functions"); a D that cannot tell
        a cluster of width 0.01 from a narrower one lets G shrink its clusters."""
        super().__init__()
        if scale is not None:  # vector data: inputs in units of the data's scale
            self.register_buffer("scale", torch.tensor(float(scale)))
        else:
            self.scale = None
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        if fourier:
            layers.append(FourierFeatures(point_dim, fourier, fourier_scale))
            width += 2 * fourier * (width // point_dim)
        for i, h in enumerate(hidden):
            use_norm = norm if i > 0 else "none"
            if maxout > 1:
                layers += [nn.Linear(width, h * maxout), Maxout(maxout), norm_1d(use_norm, h)]
            else:
                layers += [nn.Linear(width, h), norm_1d(use_norm, h), nn.LeakyReLU(0.2)]
            width = h
        if mbstd:
            layers.append(MinibatchStd())
            width += 1
        if mbd_kernels:
            layers.append(MinibatchDiscrimination(width, mbd_kernels, mbd_dim))
            width += mbd_kernels
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        # feature matching reads the features before minibatch discrimination's closeness terms
        self.features_end = len(layers) - 1 - int(mbd_kernels > 0)

    def _scaled(self, x: Tensor) -> Tensor:
        return x if self.scale is None else x / self.scale

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(self._scaled(x)).view(-1)

    def features(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The last hidden layer (for feature matching), without minibatch discrimination's
        closeness terms (as the dcgan and cgan discriminators' features)."""
        return self.net[: self.features_end](self._scaled(x))
