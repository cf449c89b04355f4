"""DCGAN (Radford et al. 2016): transposed-conv G and strided-conv D for square images whose side
is a multiple of 4 (powers of two as in the paper; 28 px for MNIST as it is)."""

from __future__ import annotations

from torch import Tensor, nn

from gan_cli.models.layers import MinibatchDiscrimination, MinibatchStd
from gan_cli.models.norm import norm_2d


def stages(image_size: int) -> tuple[int, int]:
    """(blocks, base): G grows a base x base map by `blocks` stride-2 stages to the image; D
    shrinks it back. The base is the smallest one >= 4 that halving reaches: 4 for powers of two
    (3 blocks at 32 px, 4 at 64 px, as in the DCGAN paper), 7 at MNIST's own 28 px (2 blocks), 5 at
    20 px. Any multiple of 4 from 8 on works.

    Raises ValueError for other sizes (the message names data.image_size)."""
    if image_size < 8 or image_size % 4:
        raise ValueError(
            f"DCGAN models need a data.image_size that is a multiple of 4 and >= 8 (e.g. 28, 32 or 64), "
            f"got {image_size}"
        )
    blocks, base = 0, image_size
    while base % 2 == 0 and base // 2 >= 4:
        blocks, base = blocks + 1, base // 2
    return blocks, base


def generator_net(in_dim: int, channels: int, image_size: int, width: int, norm: str) -> nn.Module:
    """(N, in_dim) -> (N, channels, image_size, image_size) in [-1, 1]."""
    blocks, base = stages(image_size)
    bias = norm == "none"
    top = width * 2 ** (blocks - 1)
    layers: list[nn.Module] = [
        nn.Unflatten(1, (in_dim, 1, 1)),
        nn.ConvTranspose2d(in_dim, top, base, 1, 0, bias=bias),
        norm_2d(norm, top),
        nn.ReLU(),
    ]
    for i in reversed(range(blocks - 1)):
        c_in, c_out = width * 2 ** (i + 1), width * 2**i
        layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias), norm_2d(norm, c_out), nn.ReLU()]
    layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def discriminator_trunk(in_channels: int, image_size: int, width: int, norm: str) -> nn.Sequential:
    """(N, in_channels, S, S) -> (N, width * 2**(blocks-1), base, base) features (see `stages`)."""
    blocks, _ = stages(image_size)
    bias = norm == "none"
    layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1, bias=True), nn.LeakyReLU(0.2)]
    for i in range(1, blocks):
        c_in, c_out = width * 2 ** (i - 1), width * 2**i
        layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=bias), norm_2d(norm, c_out), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


def trunk_width(image_size: int, width: int) -> int:
    """Feature maps of D's last stage."""
    return width * 2 ** (stages(image_size)[0] - 1)


def head(image_size: int, width: int, extra: int = 0, mbd_kernels: int = 0, mbd_dim: int = 5) -> nn.Module:
    """D's last layer: one logit from the base x base maps of the trunk (+ `extra` maps), as (N, 1,
    1, 1) or (N, 1). With `mbd_kernels` > 0 the maps are flattened, minibatch discrimination's
    features appended (layers.MinibatchDiscrimination), and one linear layer reads both: the conv
    on the maps plus weights for the new features."""
    channels, base = trunk_width(image_size, width) + extra, stages(image_size)[1]
    if not mbd_kernels:
        return nn.Conv2d(channels, 1, base, 1, 0, bias=False)
    features = channels * base * base
    return nn.Sequential(
        nn.Flatten(),
        MinibatchDiscrimination(features, mbd_kernels, mbd_dim),
        nn.Linear(features + mbd_kernels, 1, bias=False),
    )


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int, channels: int, image_size: int, width: int, norm: str) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.net = generator_net(z_dim, channels, image_size, width, norm)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(z)


class DCGANDiscriminator(nn.Module):
    def __init__(
        self,
        channels: int,
        image_size: int,
        width: int,
        norm: str,
        mbstd: bool = False,
        mbd_kernels: int = 0,
        mbd_dim: int = 5,
    ) -> None:
        """`mbstd`: a minibatch-std map before the head; `mbd_kernels` > 0: minibatch
        discrimination in the head (see `head`)."""
        super().__init__()
        self.trunk = discriminator_trunk(channels, image_size, width, norm)
        self.mbstd = MinibatchStd() if mbstd else nn.Identity()
        self.head = head(image_size, width, int(mbstd), mbd_kernels, mbd_dim)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.head(self.mbstd(self.trunk(x))).view(-1)

    def features(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The last feature maps before the head (for feature matching)."""
        return self.trunk(x).flatten(1)
