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
    ) -> None:
        """`maxout` > 1: each hidden unit is the max of that many linear pieces (Goodfellow et al.
        2013; the PacGAN paper's D) instead of a LeakyReLU. `mbd_kernels` > 0: minibatch
        discrimination's features (that many kernels of `mbd_dim`) join the last hidden features
        (after the minibatch-std column, when on) before the output layer."""
        super().__init__()
        if scale is not None:  # vector data: inputs in units of the data's scale
            self.register_buffer("scale", torch.tensor(float(scale)))
        else:
            self.scale = None
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
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
