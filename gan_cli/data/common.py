"""What every data source shares: the error type, the in-memory data set and image fitting."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor


class DataError(RuntimeError):
    """A data set is missing, incomplete or unusable; the message says what to do."""


@dataclass
class Dataset:
    """A whole data set in memory: uint8 (N, C, H, W) images or float32 (N, dim) points."""

    x: Tensor
    y: Tensor | None  # int64 (N,) labels
    num_classes: int

    @property
    def is_image(self) -> bool:
        return self.x.dim() == 4


def to_model_range(x: Tensor) -> Tensor:
    """uint8 images in [0, 255] -> float in [-1, 1]; float data passes through."""
    if x.dtype == torch.uint8:
        return x.float().mul_(2.0 / 255.0).sub_(1.0)
    return x


def fit_array(x: Tensor, channels: int, size: int, chunk: int = 4096) -> Tensor:
    """uint8 NCHW square images -> `channels` x `size` px. 28 px digits are zero-padded to 32
    (the usual MNIST GAN convention); other sizes are resized with antialiasing."""
    if x.shape[1] != channels:
        x = _convert_channels(x, channels)
    if x.shape[-1] == size:
        return x
    if (x.shape[-1], size) == (28, 32):
        return F.pad(x, (2, 2, 2, 2))
    parts = []
    for part in x.split(chunk):
        out = F.interpolate(part.float(), size=(size, size), mode="bilinear", antialias=True)
        parts.append(out.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(parts)


def _convert_channels(x: Tensor, channels: int) -> Tensor:
    if channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)  # ITU-R 601 luma, as PIL's "L"
    return (x.float() * weights).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)


def fit_pil(img: Image.Image, channels: int, size: int) -> Tensor:
    """Any PIL image -> uint8 (channels, size, size): transparency composited on white, shorter
    side resized to `size`, then centre-cropped."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    img = img.convert("L" if channels == 1 else "RGB")
    w, h = img.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((new_w, new_h), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return t.view(size, size, channels).permute(2, 0, 1).contiguous()
