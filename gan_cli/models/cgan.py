"""Class-conditional DCGAN: G sees [z, embed(y)]; D is conditioned by projection or by label maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_cli.models.dcgan import discriminator_trunk, generator_net, head, trunk_width


class CGANGenerator(nn.Module):
    def __init__(
        self,
        z_dim: int,
        num_classes: int,
        embed_dim: int,
        channels: int,
        image_size: int,
        width: int,
        norm: str,
        base: int = 0,
        out_conv: bool = False,
    ) -> None:
        """`base`, `out_conv`: see dcgan.generator_net."""
        super().__init__()
        self.z_dim = z_dim
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.net = generator_net(z_dim + embed_dim, channels, image_size, width, norm, base, out_conv)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if y is None:
            raise ValueError("a conditional generator needs labels y")
        return self.net(torch.cat([z, self.embed(y).to(z.dtype)], dim=1))


class CGANDiscriminator(nn.Module):
    """`projection`: logit = head(h) + <embed(y), sum-pooled h> (Miyato & Koyama 2018).
    `concat`: one-hot label maps are stacked onto the image channels before the first conv.
    `mbd_kernels` > 0: minibatch discrimination in the head (dcgan.head), across the labels of a
    batch. `base`: the side of the trunk's last maps (dcgan.sides)."""

    def __init__(
        self,
        num_classes: int,
        channels: int,
        image_size: int,
        width: int,
        norm: str,
        cond: str,
        mbd_kernels: int = 0,
        mbd_dim: int = 5,
        base: int = 0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.cond = cond
        in_channels = channels + (num_classes if cond == "concat" else 0)
        self.trunk = discriminator_trunk(in_channels, image_size, width, norm, base)
        features = trunk_width(image_size, width, base)
        self.head = head(image_size, width, mbd_kernels=mbd_kernels, mbd_dim=mbd_dim, base=base)
        self.embed = nn.Embedding(num_classes, features) if cond == "projection" else None
        if self.embed is not None:
            # as small as the head's weights: the default N(0, 1) over hundreds of summed features
            # makes the first logits huge and the game diverges
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = self._trunk(x, y)
        logit = self.head(h).view(-1)
        if self.embed is not None:
            logit = logit + (self.embed(y).to(h.dtype) * h.sum(dim=(2, 3))).sum(dim=1)
        return logit

    def _trunk(self, x: Tensor, y: Tensor | None) -> Tensor:
        if y is None:
            raise ValueError("a conditional discriminator needs labels y")
        if self.embed is None:
            maps = F.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, maps.expand(-1, -1, *x.shape[2:])], dim=1)
        return self.trunk(x)

    def features(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The last feature maps before the head (for feature matching)."""
        return self._trunk(x, y).flatten(1)
