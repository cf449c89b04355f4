"""Adaptive discriminator augmentation, ADA (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data"; the pipe of NVlabs/stylegan2-ada-pytorch training/augment.py and the
p heuristic of its training/training_loop.py).

Every image a discriminator sees, real or fake, in its own step and in G's, goes through one pipe of
differentiable transforms; each transform is applied to each sample on its own with probability p.
Below p of about 0.8 the transforms do not leak into G's samples: D still sees the clean
distribution often enough that G gains nothing by producing augmented images. p is steered by how
sure D is of the real images: every `interval` D steps, r_t = E[sign(D(x_real))] over those steps, and
p moves by batch * interval / (kimg * 1000) up when r_t > target (D overfits) and down otherwise.

The pipe (`TRANSFORMS`, in the reference's order and with its strengths):
    blit   xflip, rotate90, xint (integer translation, up to 1/8 of the size)
    geom   scale (isotropic), rotate (arbitrary), aniso (anisotropic scaling), xfrac (fractional
           translation)
    color  brightness, contrast, lumaflip, hue, saturation
The geometric ones compose into one per-sample matrix and one bilinear resampling with reflection
padding (no second blur, a constant image stays constant). The reference resamples at twice the
resolution through a wavelet low-pass filter to suppress aliasing; we sample directly, which for the
small images gan-cli trains on costs a little sharpness of rotated and scaled samples, not
correctness. The colour ones compose into one 4x4 matrix on (r, g, b, 1) about the luma axis
(1, 1, 1)/sqrt(3). On 1-channel images, as in the reference, a grey value g is treated as (g, g, g):
brightness and contrast act as usual, lumaflip becomes g -> -g, and hue and saturation, which leave
grey unchanged, are skipped.

Pure PyTorch rather than kornia (0.9): kornia's augmentations gate per sample with a run-time `p`
and draw from the global RNG, which would do, but its colour ops expect [0, 1] images and clamp to
them (a [-1, 1] image loses half its values and their gradients), hue and saturation go through HSV
(not the reference's linear rotation about the luma axis), it has no luma flip, and each geometric
transform is its own warp, so composing the seven with separate probabilities would resample an
image up to seven times. The two matrices below are about 60 lines.

Random draws come from a torch.Generator the game owns and checkpoints, so augmented runs resume
exactly; p and the interval's accumulators stay on the device (no host sync per step).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

BLIT = ("xflip", "rotate90", "xint")
GEOM = ("scale", "rotate", "aniso", "xfrac")
COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
TRANSFORMS = BLIT + GEOM + COLOR
# the reference's presets (its --augpipe choices without the filter, noise and cutout ones)
GROUPS = {"blit": BLIT, "geom": GEOM, "color": COLOR, "bg": BLIT + GEOM, "bgc": TRANSFORMS}

# strengths of the reference's AugmentPipe, in units of the image size, log2 or full circles
XINT_MAX = 0.125  # integer translation: uniform in +-1/8 of the size, rounded to pixels
SCALE_STD = 0.2  # isotropic scaling: 2 ** N(0, 0.2)
ROTATE_MAX = 1.0  # arbitrary rotation: uniform in +-pi
ANISO_STD = 0.2  # anisotropic scaling: 2 ** N(0, 0.2) in x, its inverse in y
XFRAC_STD = 0.125  # fractional translation: N(0, 1/8) of the size
BRIGHTNESS_STD = 0.2  # + N(0, 0.2)
CONTRAST_STD = 0.5  # x 2 ** N(0, 0.5)
HUE_MAX = 1.0  # rotation about the luma axis, uniform in +-pi
SATURATION_STD = 1.0  # chroma x 2 ** N(0, 1)


def pipe_transforms(names: Sequence[str]) -> tuple[str, ...]:
    """The transforms that `names` (transform names and `GROUPS` names) select, in pipe order.

    Raises ValueError naming the unknown names."""
    unknown = [n for n in names if n not in TRANSFORMS and n not in GROUPS]
    if unknown:
        raise ValueError(f"unknown {unknown}; valid: {', '.join([*GROUPS, *TRANSFORMS])}")
    chosen = {t for n in names for t in GROUPS.get(n, (n,))}
    return tuple(t for t in TRANSFORMS if t in chosen)


# ---- per-sample matrices -------------------------------------------------------------------------
def _gated(value: Tensor, identity: float, p: Tensor, gen: torch.Generator) -> Tensor:
    """`value` (N,) where a uniform draw falls below p, else the transform's identity value."""
    keep = torch.rand(value.shape, device=value.device, generator=gen) < p
    return torch.where(keep, value, torch.full_like(value, identity))


def _affine(
    n: int, device: torch.device, a: Tensor, b: Tensor, c: Tensor, d: Tensor, tx: Tensor, ty: Tensor
) -> Tensor:
    """(N, 3, 3) homogeneous 2-D matrices [[a, b, tx], [c, d, ty], [0, 0, 1]]."""
    m = torch.zeros(n, 3, 3, device=device)
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = a, b, tx
    m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = c, d, ty
    m[:, 2, 2] = 1.0
    return m


def geometric_matrix(
    transforms: Sequence[str], p: Tensor, n: int, height: int, width: int, gen: torch.Generator
) -> Tensor:
    """(N, 3, 3) inverse transforms: output pixel -> input pixel, in pixels about the image centre.

    Each transform of `transforms` is drawn for every sample and kept with probability p (a 0-d
    tensor in [0, 1]); a sample no transform touched gets the identity, exactly. Arbitrary rotation
    happens before and after anisotropic scaling, each with probability 1 - sqrt(1 - p), so that a
    sample is rotated with probability p (as in the reference)."""
    dev = p.device
    zero, one = torch.zeros(n, device=dev), torch.ones(n, device=dev)
    g_inv = torch.eye(3, device=dev).expand(n, 3, 3)

    def then(m: Tensor) -> None:
        nonlocal g_inv
        g_inv = g_inv @ m

    def rand() -> Tensor:
        return torch.rand(n, device=dev, generator=gen)

    def randn() -> Tensor:
        return torch.randn(n, device=dev, generator=gen)

    def rotation(theta: Tensor) -> Tensor:
        c, s = torch.cos(theta), torch.sin(theta)
        return _affine(n, dev, c, -s, s, c, zero, zero)

    if "xflip" in transforms:
        flip = _gated(torch.floor(rand() * 2), 0.0, p, gen)
        then(_affine(n, dev, 1 - 2 * flip, zero, zero, one, zero, zero))
    if "rotate90" in transforms:
        # exact quarter turns: cos and sin from a table, not from float pi
        k = _gated(torch.floor(rand() * 4), 0.0, p, gen).long()
        cos, sin = (
            torch.tensor([1.0, 0.0, -1.0, 0.0], device=dev)[k],
            torch.tensor([0.0, 1.0, 0.0, -1.0], device=dev)[k],
        )
        then(_affine(n, dev, cos, -sin, sin, cos, zero, zero))
    if "xint" in transforms:
        keep = torch.rand(n, device=dev, generator=gen) < p
        t = (torch.rand(n, 2, device=dev, generator=gen) * 2 - 1) * XINT_MAX
        t = torch.where(keep[:, None], t, 0.0)
        then(
            _affine(
                n, dev, one, zero, zero, one, -torch.round(t[:, 0] * width), -torch.round(t[:, 1] * height)
            )
        )
    if "scale" in transforms:
        s = _gated(torch.exp2(randn() * SCALE_STD), 1.0, p, gen)
        then(_affine(n, dev, 1 / s, zero, zero, 1 / s, zero, zero))
    p_rot = 1 - torch.sqrt((1 - p).clamp(0, 1))
    if "rotate" in transforms:
        then(rotation(_gated((rand() * 2 - 1) * math.pi * ROTATE_MAX, 0.0, p_rot, gen)))
    if "aniso" in transforms:
        s = _gated(torch.exp2(randn() * ANISO_STD), 1.0, p, gen)
        then(_affine(n, dev, 1 / s, zero, zero, s, zero, zero))
    if "rotate" in transforms:
        then(rotation(_gated((rand() * 2 - 1) * math.pi * ROTATE_MAX, 0.0, p_rot, gen)))
    if "xfrac" in transforms:
        keep = torch.rand(n, device=dev, generator=gen) < p
        t = torch.randn(n, 2, device=dev, generator=gen) * XFRAC_STD
        t = torch.where(keep[:, None], t, 0.0)
        then(_affine(n, dev, one, zero, zero, one, -t[:, 0] * width, -t[:, 1] * height))
    return g_inv


def color_matrix(transforms: Sequence[str], p: Tensor, n: int, channels: int, gen: torch.Generator) -> Tensor:
    """(N, 4, 4) colour transforms acting on (r, g, b, 1) of [-1, 1] images, each kept with
    probability p; the identity, exactly, for a sample none touched. Hue and saturation only for
    3-channel images (they leave grey unchanged)."""
    dev = p.device
    eye = torch.eye(4, device=dev)
    v = torch.tensor([1.0, 1.0, 1.0, 0.0], device=dev) / math.sqrt(3)  # the luma axis
    vv = torch.outer(v, v)
    c = eye.expand(n, 4, 4)

    def rand() -> Tensor:
        return torch.rand(n, device=dev, generator=gen)

    def randn() -> Tensor:
        return torch.randn(n, device=dev, generator=gen)

    if "brightness" in transforms:
        b = _gated(randn() * BRIGHTNESS_STD, 0.0, p, gen)
        shift = eye.repeat(n, 1, 1)
        shift[:, :3, 3] = b[:, None]
        c = shift @ c
    if "contrast" in transforms:
        k = _gated(torch.exp2(randn() * CONTRAST_STD), 1.0, p, gen)
        c = torch.diag_embed(torch.stack([k, k, k, torch.ones_like(k)], dim=1)) @ c
    if "lumaflip" in transforms:
        flip = _gated(torch.floor(rand() * 2), 0.0, p, gen)
        c = (eye - 2 * vv * flip[:, None, None]) @ c  # Householder reflection of the luma axis
    if "hue" in transforms and channels == 3:
        theta = _gated((rand() * 2 - 1) * math.pi * HUE_MAX, 0.0, p, gen)[:, None, None]
        # Rodrigues about v: I + sin K + (1 - cos) K^2, exactly I at theta = 0
        k = torch.zeros(4, 4, device=dev)
        k[0, 1], k[0, 2], k[1, 0], k[1, 2], k[2, 0], k[2, 1] = -v[2], v[1], v[2], -v[0], -v[1], v[0]
        c = (eye + torch.sin(theta) * k + (1 - torch.cos(theta)) * (k @ k)) @ c
    if "saturation" in transforms and channels == 3:
        s = _gated(torch.exp2(randn() * SATURATION_STD), 1.0, p, gen)[:, None, None]
        chroma = eye - vv
        chroma[3, 3] = 0.0
        c = (eye + (s - 1) * chroma) @ c  # scales the distance from the luma axis
    return c


# ---- applying them -------------------------------------------------------------------------------
def _untouched(m: Tensor) -> Tensor:
    """(N,) True where a per-sample matrix is exactly the identity."""
    eye = torch.eye(m.shape[-1], device=m.device)
    return (m == eye).flatten(1).all(1)


def warp(x: Tensor, g_inv: Tensor) -> Tensor:
    """Resample (N, C, H, W) images through per-sample inverse matrices (output pixel -> input
    pixel, about the centre), bilinear with reflection padding; samples whose matrix is the identity
    are returned unchanged."""
    _, _, h, w = x.shape
    # pixels about the centre -> grid_sample's [-1, 1] (align_corners=False: 2 * pixel / size)
    theta = g_inv[:, :2, :].clone()
    theta[:, 0, 1] *= h / w
    theta[:, 1, 0] *= w / h
    theta[:, 0, 2] *= 2 / w
    theta[:, 1, 2] *= 2 / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return torch.where(_untouched(g_inv)[:, None, None, None], x, out)


def recolor(x: Tensor, c: Tensor) -> Tensor:
    """Apply per-sample (N, 4, 4) colour matrices to (N, 1 or 3, H, W) images; a 1-channel grey
    value g is read as (g, g, g) and the mean of the three results is kept. Raises ValueError for
    other channel counts."""
    n, ch, h, w = x.shape
    flat = x.reshape(n, ch, h * w)
    if ch == 3:
        out = c[:, :3, :3] @ flat + c[:, :3, 3:]
    elif ch == 1:
        grey = c[:, :3, :].mean(dim=1, keepdim=True)  # (N, 1, 4)
        out = flat * grey[:, :, :3].sum(dim=2, keepdim=True) + grey[:, :, 3:]
    else:
        raise ValueError(f"ADA's colour transforms need 1 or 3 channels, got {ch}")
    return torch.where(_untouched(c)[:, None, None, None], x, out.reshape(n, ch, h, w))


def augment(x: Tensor, transforms: Sequence[str], p: Tensor, gen: torch.Generator) -> Tensor:
    """The ADA pipe on (N, C, H, W) images in [-1, 1]: each of `transforms` applied to each sample
    with probability p (a 0-d tensor in [0, 1] on x's device), drawn from `gen`. Differentiable in
    x; the random draws do not depend on p, so the stream advances alike whatever p is. Computed in
    fp32 (outside autocast), returned in x's dtype. Raises ValueError for a tensor that is not NCHW."""
    if x.dim() != 4:
        raise ValueError(f"ADA augments NCHW images, got shape {tuple(x.shape)}")
    n, ch, h, w = x.shape
    geometric = [t for t in transforms if t in BLIT + GEOM]
    colour = [t for t in transforms if t in COLOR]
    with torch.autocast(x.device.type, enabled=False):
        y = x.float()
        if geometric:
            y = warp(y, geometric_matrix(geometric, p, n, h, w, gen))
        if colour:
            y = recolor(y, color_matrix(colour, p, n, ch, gen))
    return y.to(x.dtype).contiguous(memory_format=torch.channels_last)


# ---- the controller ------------------------------------------------------------------------------
class Ada:
    """One discriminator's augmentation pipe and its p controller.

        ada = Ada(["bgc"], noise_gen, batch_size=64)
        logits_real = D(ada.augment(real)); logits_fake = D(ada.augment(fake))   # and in G's step
        ada.update(logits_real)                                                   # once per D step

    `transforms`: names of `TRANSFORMS` and `GROUPS`; `gen`: the generator the draws come from (its
    device is where p lives); `target`: the r_t that p steers towards; `interval`: D steps between
    adjustments; `kimg`: thousands of real images over which p can go from 0 to 1; `batch_size`:
    real images per D step over all ranks; `p`: the initial p; `boundary`: the logit at which D
    is undecided (0, or 0.5 for LSGAN's 0/1 targets); `world`: ranks whose sign sums are added up
    at each adjustment (every rank then holds the same p). Raises ValueError for unknown names."""

    def __init__(
        self,
        transforms: Sequence[str],
        gen: torch.Generator,
        *,
        batch_size: int,
        target: float = 0.6,
        interval: int = 4,
        kimg: float = 500.0,
        p: float = 0.0,
        boundary: float = 0.0,
        world: int = 1,
    ) -> None:
        self.transforms = pipe_transforms(transforms)
        self.gen = gen
        self.target, self.interval, self.boundary, self.world = target, interval, boundary, world
        self.adjustment = batch_size * interval / (kimg * 1000)  # p's change per interval
        device = gen.device
        self._p = torch.tensor(float(p), device=device)
        self._signs = torch.zeros((), device=device)  # sum of sign(D(x_real)) this interval
        self._count = 0  # real logits summed this interval
        self._steps = 0  # D steps this interval

    @property
    def p(self) -> float:
        """The augmentation probability now, in [0, 1] (synchronises with the device)."""
        return float(self._p)

    def augment(self, x: Tensor) -> Tensor:
        """What D sees of a batch of (N, C, H, W) images in [-1, 1] (see `augment`)."""
        return augment(x, self.transforms, self._p, self.gen)

    def update(self, real_logits: Tensor) -> Tensor:
        """Feed one D step's logits of (augmented) real images; every `interval` calls p moves by
        sign(r_t - target) * `adjustment`, clamped to [0, 1]. Returns this step's E[sign(D(x_real))]
        as a 0-d device tensor (for logging; NaN logits count as 0)."""
        signs = torch.nan_to_num(torch.sign(real_logits.detach().float() - self.boundary), nan=0.0)
        step_mean = signs.mean()
        self._signs = self._signs + signs.sum()
        self._count += signs.numel()
        self._steps += 1
        if self._steps == self.interval:
            signs_sum = self._signs
            if self.world > 1:  # every rank sees batches of the same size
                signs_sum = signs_sum.clone()
                torch.distributed.all_reduce(signs_sum)
            r_t = signs_sum / (self._count * self.world)
            self._p = (self._p + torch.sign(r_t - self.target) * self.adjustment).clamp(0.0, 1.0)
            self._signs = torch.zeros_like(self._signs)
            self._count = self._steps = 0
        return step_mean

    def state_dict(self) -> dict[str, Any]:
        return {
            "p": self._p.clone(),
            "signs": self._signs.clone(),
            "count": self._count,
            "steps": self._steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._p = state["p"].to(self._p.device)
        self._signs = state["signs"].to(self._p.device)
        self._count, self._steps = int(state["count"]), int(state["steps"])
