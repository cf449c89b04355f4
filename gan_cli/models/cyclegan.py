"""CycleGAN's networks (Zhu et al. 2017): a ResNet generator (Johnson et al. 2016) and a PatchGAN
discriminator (Isola et al. 2017), with the layer choices of the authors' PyTorch code
(junyanz/pytorch-CycleGAN-and-pix2pix): reflection padding, instance norm, N(0, 0.02) init.
"""

from __future__ import annotations

from torch import Tensor, nn

from gan_cli.models.norm import norm_2d


class ResidualBlock(nn.Module):
    """x + (pad, 3x3 conv, norm, ReLU, pad, 3x3 conv, norm)(x): same shape in and out."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        bias = norm != "batch"  # a following batch norm's shift makes a conv bias redundant
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_2d(norm, channels),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_2d(norm, channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """(N, in_channels, S, S) in [-1, 1] -> (N, out_channels, S, S) in [-1, 1], S divisible by 4:
    a 7x7 conv, two stride-2 convs down to S/4 (width x4), `blocks` residual blocks there, two
    transposed convs back up and a 7x7 conv to tanh. The paper uses 9 blocks at 256 px, 6 at 128 px."""

    def __init__(self, in_channels: int, out_channels: int, width: int, blocks: int, norm: str) -> None:
        super().__init__()
        bias = norm != "batch"
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, width, 7, bias=bias),
            norm_2d(norm, width),
            nn.ReLU(),
        ]
        for m in (1, 2):  # downsampling
            layers += [
                nn.Conv2d(width * m, width * m * 2, 3, 2, 1, bias=bias),
                norm_2d(norm, width * m * 2),
                nn.ReLU(),
            ]
        layers += [ResidualBlock(width * 4, norm) for _ in range(blocks)]
        for m in (4, 2):  # upsampling
            layers += [
                nn.ConvTranspose2d(width * m, width * m // 2, 3, 2, 1, output_padding=1, bias=bias),
                norm_2d(norm, width * m // 2),
                nn.ReLU(),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN: (N, C, S, S) -> (N, P) logits, one per overlapping patch. `layers` stride-2 4x4
    convs (width doubling up to x8), one stride-1 conv, then a 4x4 conv to one channel. With 3
    layers each logit sees 70x70 pixels: the whole image at 32 px (P = 4 there)."""

    def __init__(self, in_channels: int, width: int, layers: int, norm: str) -> None:
        super().__init__()
        bias = norm != "batch"
        seq: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        prev = 1
        for n in range(1, layers + 1):
            mult = min(2**n, 8)
            stride = 2 if n < layers else 1
            seq += [
                nn.Conv2d(width * prev, width * mult, 4, stride, 1, bias=bias),
                norm_2d(norm, width * mult),
                nn.LeakyReLU(0.2),
            ]
            prev = mult
        seq += [nn.Conv2d(width * prev, 1, 4, 1, 1)]
        self.net = nn.Sequential(*seq)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(1)
