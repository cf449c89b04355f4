"""What every data source shares: the error type, the in-memory data set and image fitting."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import io
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor

from gan_cli.errors import UserError

if TYPE_CHECKING:
    from gan_cli.data.stacked import StackedDigits

try:
    from PIL import ImageCms

    _SRGB = ImageCms.createProfile("sRGB")
except ImportError:  # a Pillow built without LittleCMS shows images without colour management
    ImageCms = None


class DataError(UserError, RuntimeError):
    """A data set is missing, incomplete or unusable; the message says what to do."""


# whether reading a data set shows tqdm bars (the image scan and decode); see `progress_bars`
_PROGRESS: contextvars.ContextVar[bool] = contextvars.ContextVar("gan_cli_data_progress", default=True)


@contextlib.contextmanager
def progress_bars(shown: bool) -> Iterator[None]:
    """Show or hide the progress bars of the data sets read inside (the trainer passes
    trainer.progress, so that `false` turns off every bar of a run, not only the training one)."""
    token = _PROGRESS.set(shown)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def progress_shown() -> bool:
    """Whether a data set read now shows its progress bars (`progress_bars`; default: yes)."""
    return _PROGRESS.get()


# `data.<key>` or `data=` in a message, where it names the data config (not data.a.<key> already,
# nor a part of a path or file name)
_DATA_KEY = re.compile(r"(?<![\w./\\~-])data(?=[.=])(?!\.[ab][.=])")


@contextlib.contextmanager
def keys_of(section: str) -> Iterator[None]:
    """Name the keys of `section` (a translation domain, "data.a" or "data.b") in the DataErrors
    raised inside: data sources speak of data.root and data=<name>, which for a domain are
    data.a.root and data.a.name=<name>. "data" leaves messages as they are."""
    try:
        yield
    except DataError as e:
        if section == "data":
            raise
        text = str(e)
        named = _DATA_KEY.sub(lambda m: section, text).replace(f"{section}=", f"{section}.name=")
        raise DataError(named if named != text else f"{section}: {text}") from e


@dataclass
class Dataset:
    """A whole data set in memory: uint8 (N, C, H, W) images or float32 (N, dim) points. Stacked
    MNIST's x is a `stacked.StackedDigits`: indexing it gives the uint8 images."""

    x: Tensor | StackedDigits
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
    """A decoded PIL image -> uint8 (channels, size, size) of what a viewer shows (`as_displayed`):
    shorter side resized to `size`, then centre-cropped. Raises ValueError as `as_displayed` does."""
    img = as_displayed(img).convert("L" if channels == 1 else "RGB")
    w, h = img.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((new_w, new_h), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return t.view(size, size, channels).permute(2, 0, 1).contiguous()


def as_displayed(img: Image.Image) -> Image.Image:
    """A PIL image opened from a file (loaded or not) -> the 8-bit "L" or "RGB" pixels a standard image
    viewer shows for it: turned upright by its EXIF orientation (a damaged EXIF block is ignored);
    16-bit grey scaled to 8 bits as round(v / 257) (Pillow's own conversion clips it; mode "I" is read
    as 16-bit, as older Pillows return 16-bit PNGs); colours converted from an embedded ICC profile to
    sRGB (an unusable profile is ignored); CMYK and CIELAB converted to RGB; transparency (alpha,
    premultiplied alpha, palette or colour key) composited on white. Multi-frame files show their
    first frame.

    Raises what Pillow raises for a damaged file (OSError for a truncated one), and ValueError for
    32-bit float samples (mode "F"), which have no standard display range."""
    profile = img.info.get("icc_profile")
    img.load()  # Pillow turns a TIFF upright itself, by its Orientation tag
    with contextlib.suppress(*_EXIF_ERRORS):
        ImageOps.exif_transpose(img, in_place=True)
    if img.mode == "F":
        raise ValueError("32-bit floating-point samples have no standard display range")
    if img.mode in _DEEP_GREY:
        img = _deep_grey_to_8bit(img)
    grey = img.mode in ("1", "L", "LA", "La")
    alpha = None
    if img.mode in _ALPHA or img.info.get("transparency") is not None:
        full = img.convert("LA" if grey else "RGBA")
        alpha = full.getchannel("A")
        img = full.convert("L" if grey else "RGB")
    elif img.mode not in ("L", "RGB", "CMYK", "LAB"):
        img = img.convert("L" if grey else "RGB")
    img = _to_srgb(img, profile)
    if alpha is not None:
        rgba = img.convert("RGBA")
        rgba.putalpha(alpha)
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert(img.mode)
    return img


# what Pillow raises for a damaged EXIF block, which viewers ignore
_EXIF_ERRORS = (SyntaxError, ValueError, OSError, EOFError, KeyError, TypeError, struct.error)
_DEEP_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA = ("RGBA", "RGBa", "LA", "La", "PA")


def _deep_grey_to_8bit(img: Image.Image) -> Image.Image:
    """16-bit grey ("I;16*", or "I" read as 0..65535) -> "L" as round(v / 257), or "LA" when a
    colour key (PNG tRNS) makes some values transparent."""
    v = np.asarray(img).astype(np.int64)
    grey = Image.fromarray(((v.clip(0, 65535) + 128) // 257).astype(np.uint8))
    key = img.info.get("transparency")
    if isinstance(key, int):
        grey.putalpha(Image.fromarray(np.where(v == key, 0, 255).astype(np.uint8)))
    return grey


def _to_srgb(img: Image.Image, profile: bytes | None) -> Image.Image:
    """An "L", "RGB", "CMYK" or "LAB" image -> sRGB through its ICC profile (LAB: its own space),
    where LittleCMS can; else as Pillow converts it (CMYK naively; LAB raises ValueError)."""
    if ImageCms is not None and (profile or img.mode == "LAB"):
        transform = _srgb_transform(profile if img.mode != "LAB" else None, img.mode)
        if transform is not None:
            return ImageCms.applyTransform(img, transform)
    return img.convert("RGB") if img.mode in ("CMYK", "LAB") else img


@functools.lru_cache(maxsize=32)
def _srgb_transform(profile: bytes | None, mode: str) -> ImageCms.ImageCmsTransform | None:
    """The transform from `profile` (None: CIELAB) to sRGB for `mode`; None when LittleCMS cannot
    use the profile (damaged, or made for other channels), so the image is shown as stored."""
    try:
        if profile is None:
            source = ImageCms.createProfile("LAB")
        else:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        return ImageCms.buildTransform(source, _SRGB, mode, "RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None
