"""DCGAN (Radford et al. 2016): transposed-conv G and strided-conv D for square power-of-two images."""

from __future__ import annotations

import math

from torch import Tensor, nn

from gan_cli.models.layers import MinibatchStd
from gan_cli.models.norm import norm_2d


def num_blocks(image_size: int) -> int:
    """Stride-2 stages between 4x4 and the image: 3 at 32 px, 4 at 64 px."""
    blocks = math.log2(image_size / 4) if image_size >= 8 else 0
    if blocks < 1 or not blocks.is_integer():
        raise ValueError(
            f"DCGAN models need a power-of-two data.image_size >= 8 (e.g. 32 or 64), got {image_size}"
        )
    return int(blocks)


def generator_net(in_dim: int, channels: int, image_size: int, width: int, norm: str) -> nn.Module:
    """(N, in_dim) -> (N, channels, image_size, image_size) in [-1, 1]."""
    blocks = num_blocks(image_size)
    bias = norm == "none"
    top = width * 2 ** (blocks - 1)
    layers: list[nn.Module] = [
        nn.Unflatten(1, (in_dim, 1, 1)),
        nn.ConvTranspose2d(in_dim, top, 4, 1, 0, bias=bias),
        norm_2d(norm, top),
        nn.ReLU(),
    ]
    for i in reversed(range(blocks - 1)):
        c_in, c_out = width * 2 ** (i + 1), width * 2**i
        layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias), norm_2d(norm, c_out), nn.ReLU()]
    layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def discriminator_trunk(in_channels: int, image_size: int, width: int, norm: str) -> nn.Sequential:
    """(N, in_channels, S, S) -> (N, width * 2**(blocks-1), 4, 4) features."""
    blocks = num_blocks(image_size)
    bias = norm == "none"
    layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1, bias=True), nn.LeakyReLU(0.2)]
    for i in range(1, blocks):
        c_in, c_out = width * 2 ** (i - 1), width * 2**i
        layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=bias), norm_2d(norm, c_out), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


def trunk_width(image_size: int, width: int) -> int:
    return width * 2 ** (num_blocks(image_size) - 1)


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int, channels: int, image_size: int, width: int, norm: str) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.net = generator_net(z_dim, channels, image_size, width, norm)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(z)


class DCGANDiscriminator(nn.Module):
    def __init__(self, channels: int, image_size: int, width: int, norm: str, mbstd: bool = False) -> None:
        super().__init__()
        self.trunk = discriminator_trunk(channels, image_size, width, norm)
        self.mbstd = MinibatchStd() if mbstd else nn.Identity()
        self.head = nn.Conv2d(trunk_width(image_size, width) + int(mbstd), 1, 4, 1, 0, bias=False)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.head(self.mbstd(self.trunk(x))).view(-1)

    def features(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The last feature maps before the head (for feature matching)."""
        return self.trunk(x).flatten(1)
