"""DCGAN (Radford et al. 2016): transposed-conv G and strided-conv D for square images whose side
is a multiple of 4 (powers of two as in the paper; 28 px for MNIST as it is)."""

from __future__ import annotations

from torch import Tensor, nn

from gan_cli.models.layers import MinibatchDiscrimination, MinibatchStd
from gan_cli.models.norm import norm_2d


def sides(image_size: int, base: int = 0) -> list[int]:
    """The sides of the feature maps from G's first to the image, [base, ..., image_size]; D walks
    them backwards. Auto (`base` 0): the smallest side >= 4 that halving reaches, 4 for powers of two
    (3 stages at 32 px, 4 at 64 px, as in the DCGAN paper), 7 at MNIST's own 28 px (2 stages), 5 at
    20 px; any multiple of 4 from 8 on works. Another base is a side that halving with rounding up
    reaches (TensorFlow's "SAME" strided convs, as the Unrolled GAN and PacGAN code): 28 -> 14 -> 7
    -> 4 -> 2 -> 1, so that G grows 4 -> 7 -> 14 -> 28.

    Raises ValueError for other sizes (the message names data.image_size or model.base_size)."""
    if not base:
        if image_size < 8 or image_size % 4:
            raise ValueError(
                f"DCGAN models need a data.image_size that is a multiple of 4 and >= 8 (e.g. 28, 32 or "
                f"64), got {image_size}"
            )
        out = [image_size]
        while out[-1] % 2 == 0 and out[-1] // 2 >= 4:
            out.append(out[-1] // 2)
        return out[::-1]
    out = [image_size]
    while out[-1] > base:
        out.append((out[-1] + 1) // 2)
    if out[-1] != base or len(out) < 2:
        reached = []
        side = image_size
        while side > 1:
            side = (side + 1) // 2
            reached.append(side)
        raise ValueError(
            f"model.base_size={base} is not reached by halving data.image_size={image_size} (rounding "
            f"up); valid: 0 (auto) or one of {', '.join(map(str, reached))}"
        )
    return out[::-1]


def stages(image_size: int, base: int = 0) -> tuple[int, int]:
    """(blocks, base): G grows a base x base map by `blocks` stride-2 stages to the image; D
    shrinks it back (see `sides`). Raises ValueError as `sides` does."""
    path = sides(image_size, base)
    return len(path) - 1, path[0]


def _stride2(small: int, large: int) -> tuple[int, int]:
    """(padding, output_padding) of a 4x4 stride-2 conv from side `large` to `small` (D) and of its
    transpose back (G): an odd `large` pads 2, and G adds the one row that tells 2 * small - 1
    from 2 * small."""
    return (1, 0) if large == 2 * small else (2, 1)


def generator_net(
    in_dim: int, channels: int, image_size: int, width: int, norm: str, base: int = 0, out_conv: bool = False
) -> nn.Module:
    """(N, in_dim) -> (N, channels, image_size, image_size) in [-1, 1]. `base`: see `sides`;
    `out_conv`: the last stride-2 stage keeps `width` maps and a 3x3 stride-1 conv makes the image
    (Metz et al. 2017's Stacked MNIST G: 4x4x64 -> 7x7x32 -> 14x14x16 -> 28x28x8 -> 3 at width 8)."""
    path = sides(image_size, base)
    hidden = len(path) - (0 if out_conv else 1)  # maps of `width * 2**i` channels, i = hidden-1 .. 0
    bias = norm == "none"
    top = width * 2 ** (hidden - 1)
    layers: list[nn.Module] = [
        nn.Unflatten(1, (in_dim, 1, 1)),
        nn.ConvTranspose2d(in_dim, top, path[0], 1, 0, bias=bias),
        norm_2d(norm, top),
        nn.ReLU(),
    ]
    for i in range(1, len(path)):
        pad, extra = _stride2(path[i - 1], path[i])
        level = hidden - 1 - i
        c_in = width * 2 ** (level + 1)
        if level < 0:  # the image
            layers += [nn.ConvTranspose2d(c_in, channels, 4, 2, pad, extra, bias=False), nn.Tanh()]
            return nn.Sequential(*layers)
        c_out = width * 2**level
        layers += [
            nn.ConvTranspose2d(c_in, c_out, 4, 2, pad, extra, bias=bias),
            norm_2d(norm, c_out),
            nn.ReLU(),
        ]
    layers += [nn.Conv2d(width, channels, 3, 1, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def discriminator_trunk(
    in_channels: int, image_size: int, width: int, norm: str, base: int = 0
) -> nn.Sequential:
    """(N, in_channels, S, S) -> (N, width * 2**(blocks-1), base, base) features (see `sides`)."""
    path = sides(image_size, base)[::-1]
    bias = norm == "none"
    layers: list[nn.Module] = []
    for i in range(1, len(path)):
        pad, _ = _stride2(path[i], path[i - 1])
        c_in, c_out = (in_channels, width) if i == 1 else (width * 2 ** (i - 2), width * 2 ** (i - 1))
        conv = nn.Conv2d(c_in, c_out, 4, 2, pad, bias=True if i == 1 else bias)
        layers += [conv] if i == 1 else [conv, norm_2d(norm, c_out)]
        layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


def trunk_width(image_size: int, width: int, base: int = 0) -> int:
    """Feature maps of D's last stage."""
    return width * 2 ** (stages(image_size, base)[0] - 1)


def head(
    image_size: int, width: int, extra: int = 0, mbd_kernels: int = 0, mbd_dim: int = 5, base: int = 0
) -> nn.Module:
    """D's last layer: one logit from the base x base maps of the trunk (+ `extra` maps), as (N, 1,
    1, 1) or (N, 1). With `mbd_kernels` > 0 the maps are flattened, minibatch discrimination's
    features appended (layers.MinibatchDiscrimination), and one linear layer reads both: the conv
    on the maps plus weights for the new features."""
    side = stages(image_size, base)[1]
    channels = trunk_width(image_size, width, base) + extra
    if not mbd_kernels:
        return nn.Conv2d(channels, 1, side, 1, 0, bias=False)
    features = channels * side * side
    return nn.Sequential(
        nn.Flatten(),
        MinibatchDiscrimination(features, mbd_kernels, mbd_dim),
        nn.Linear(features + mbd_kernels, 1, bias=False),
    )


class DCGANGenerator(nn.Module):
    def __init__(
        self,
        z_dim: int,
        channels: int,
        image_size: int,
        width: int,
        norm: str,
        base: int = 0,
        out_conv: bool = False,
    ) -> None:
        """`base`, `out_conv`: see `generator_net`."""
        super().__init__()
        self.z_dim = z_dim
        self.net = generator_net(z_dim, channels, image_size, width, norm, base, out_conv)

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
        base: int = 0,
    ) -> None:
        """`mbstd`: a minibatch-std map before the head; `mbd_kernels` > 0: minibatch
        discrimination in the head (see `head`); `base`: the side of the last maps (see `sides`)."""
        super().__init__()
        self.trunk = discriminator_trunk(channels, image_size, width, norm, base)
        self.mbstd = MinibatchStd() if mbstd else nn.Identity()
        self.head = head(image_size, width, int(mbstd), mbd_kernels, mbd_dim, base)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.head(self.mbstd(self.trunk(x))).view(-1)

    def features(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The last feature maps before the head (for feature matching)."""
        return self.trunk(x).flatten(1)
