"""StyleGAN2 networks (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"),
as plain nn.Modules in pure PyTorch (any device, no compiled ops): the mapping network, the
skip-connection synthesis network with modulated/demodulated convolutions, and the residual
discriminator with a minibatch-std layer and projection conditioning. The structure, names and
initialisation follow NVlabs/stylegan2-ada-pytorch (training/networks.py), config "auto"/"paper".

Randomness: weights, the learned constant and the `const` noise maps are drawn from the global torch
RNG at construction; the per-layer noise of noise_mode="random" comes from the `generator` passed to
the forward call (a torch.Generator on the images' device) or, when it is None, the global RNG.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_cli.models.layers import MinibatchStd

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)  # keeps the second moment of a unit-variance signal through leaky ReLU
SQRT_HALF = math.sqrt(0.5)
RESAMPLE_TAPS = (1.0, 3.0, 3.0, 1.0)  # the reference's low-pass filter for up- and down-sampling
NOISE_MODES = ("random", "const", "none")
OUTPUTS = ("linear", "tanh")


# --- FIR resampling (the [1,3,3,1] filter, as upfirdn2d in the reference) -----------------------


def fir_filter(taps: tuple[float, ...] = RESAMPLE_TAPS) -> Tensor:
    """(k, k) separable low-pass filter: the outer product of `taps`, normalised to sum 1, so a
    constant image keeps its value."""
    t = torch.tensor(taps, dtype=torch.float32)
    f = torch.outer(t, t)
    return f / f.sum()


def blur(x: Tensor, f: Tensor, pad: int, gain: float = 1.0) -> Tensor:
    """Depthwise filtering of (N, C, H, W) by the (k, k) filter `f` with `pad` zeros on every side:
    (N, C, H + 2 pad - k + 1, W + 2 pad - k + 1). `f` is symmetric, so correlation = convolution."""
    c = x.shape[1]
    w = (f * gain).to(x.dtype)[None, None].expand(c, 1, *f.shape)
    return F.conv2d(x, w, padding=pad, groups=c)


def upsample2d(x: Tensor, f: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C, 2H, 2W): zero insertion then the 4-tap filter (gain 4 keeps the mean),
    as one depthwise transposed convolution. Half-pixel aligned: along each axis output 2i is
    0.75 x[i] + 0.25 x[i-1] and output 2i+1 is 0.75 x[i] + 0.25 x[i+1] (zeros outside)."""
    c = x.shape[1]
    w = (f * 4).to(x.dtype)[None, None].expand(c, 1, *f.shape)
    return F.conv_transpose2d(x, w, stride=2, padding=(f.shape[0] - 2) // 2, groups=c)


def downsample2d(x: Tensor, f: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C, H/2, W/2): the 4-tap filter then every other pixel, as one depthwise
    strided convolution; output i along an axis is (x[2i-1] + 3 x[2i] + 3 x[2i+1] + x[2i+2]) / 8."""
    c = x.shape[1]
    w = f.to(x.dtype)[None, None].expand(c, 1, *f.shape)
    return F.conv2d(x, w, stride=2, padding=(f.shape[0] - 2) // 2, groups=c)


# --- Equalised learning rate (Karras et al. 2018, ProGAN section 4.1) ----------------------------


class EqualLinear(nn.Module):
    """Fully connected layer with an equalised learning rate: weights are stored ~ N(0, 1) / lr_mul
    and scaled at run time by lr_mul / sqrt(in_features), the bias (stored as bias_init / lr_mul) by
    lr_mul, so Adam's step, which is invariant to the gradient's scale, moves every layer at the same
    relative speed, times lr_mul. `activation`: leaky ReLU (slope 0.2) times sqrt(2), whose gain is
    folded into the weight and bias scales (leaky ReLU is positively homogeneous).

    (N, in_features) -> (N, out_features)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), bias_init / lr_mul)) if bias else None
        self.lr_mul = lr_mul
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        gain = LRELU_GAIN if self.activation else 1.0
        b = None if self.bias is None else (self.bias * (self.lr_mul * gain)).to(x.dtype)
        x = F.linear(x, (self.weight * (self.weight_gain * gain)).to(x.dtype), b)
        return F.leaky_relu(x, LRELU_SLOPE, inplace=True) if self.activation else x

    def extra_repr(self) -> str:
        o, i = self.weight.shape
        return f"{i}, {o}, lr_mul={self.lr_mul}, activation={self.activation}"


class EqualConv2d(nn.Module):
    """Square convolution ('same' padding) with an equalised learning rate (see EqualLinear;
    fan_in = in_channels * kernel_size**2) and optional leaky ReLU times sqrt(2). `down`: the
    [1,3,3,1] low-pass filter, then stride 2 (the reference's conv2d_resample, down=2). `gain`
    multiplies the output (the residual blocks' 1/sqrt(2)), folded into the scales like the
    activation's.

    (N, in_channels, H, W) -> (N, out_channels, H, W), or (H/2, W/2) with `down`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        lr_mul: float = 1.0,
        activation: bool = False,
        down: bool = False,
        gain: float = 1.0,
    ) -> None:
        super().__init__()
        k = kernel_size
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, k, k) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.lr_mul = lr_mul
        self.weight_gain = lr_mul / math.sqrt(in_channels * k * k)
        self.activation = activation
        self.down = down
        self.gain = gain
        if down:
            self.register_buffer("resample_filter", fir_filter(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        gain = self.gain * (LRELU_GAIN if self.activation else 1.0)
        w = (self.weight * (self.weight_gain * gain)).to(x.dtype)
        b = None if self.bias is None else (self.bias * (self.lr_mul * gain)).to(x.dtype)
        k = self.weight.shape[-1]
        if not self.down:
            x = F.conv2d(x, w, b, padding=k // 2)
        elif k == 1:  # filter and subsample first: the 1x1 conv then runs on a quarter of the pixels
            x = F.conv2d(downsample2d(x, self.resample_filter), w, b)
        else:  # conv then [1,3,3,1] then subsample == blur, then a stride-2 conv (both are linear)
            x = F.conv2d(blur(x, self.resample_filter, pad=k // 2 + 1), w, b, stride=2)
        return F.leaky_relu(x, LRELU_SLOPE, inplace=True) if self.activation else x

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        return (
            f"{i}, {o}, kernel_size={k}, lr_mul={self.lr_mul}, activation={self.activation}, "
            f"down={self.down}, gain={self.gain:.4g}"
        )


# --- Mapping network ------------------------------------------------------------------------------


def normalize_2nd_moment(x: Tensor, eps: float = 1e-8) -> Tensor:
    """(N, D) -> (N, D) scaled so that each row's mean square is 1 (StyleGAN's PixelNorm of z)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """z (N, z_dim) [and label c] -> w (N, w_dim), or ws (N, num_ws, w_dim) broadcast for the
    synthesis layers (StyleGAN, Karras et al. 2019, section 2): 2nd-moment normalisation of z, then
    `depth` leaky-ReLU EqualLinear layers with lr_mul 0.01 (8 in the paper).

    Conditioning (c_dim > 0): the label is embedded by an EqualLinear (lr_mul 1), normalised and
    concatenated with the normalised z; c may be integer class ids (N,) or float (N, c_dim) vectors
    (one-hot or soft). z_dim = 0 maps the label alone (the discriminator's projection uses this).

    w_avg (a buffer, when w_avg_beta is set) tracks the mean w: every forward pass in training mode
    does w_avg <- beta w_avg + (1 - beta) mean_batch(w). Truncation (psi < 1) moves the first
    `truncation_cutoff` ws (all when None) to w_avg + psi (w - w_avg)."""

    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        num_ws: int | None,
        depth: int = 8,
        c_dim: int = 0,
        embed_dim: int | None = None,
        hidden_dim: int | None = None,
        lr_mul: float = 0.01,
        w_avg_beta: float | None = 0.995,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"the mapping network needs depth >= 1 layer, got {depth}")
        if z_dim + c_dim == 0:
            raise ValueError("the mapping network needs an input: z_dim > 0 or c_dim > 0")
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.w_avg_beta = w_avg_beta
        embed_dim = (w_dim if embed_dim is None else embed_dim) if c_dim > 0 else 0
        hidden_dim = w_dim if hidden_dim is None else hidden_dim
        self.embed = EqualLinear(c_dim, embed_dim) if c_dim > 0 else None
        widths = [z_dim + embed_dim] + [hidden_dim] * (depth - 1) + [w_dim]
        pairs = zip(widths[:-1], widths[1:], strict=True)
        self.layers = nn.Sequential(*(EqualLinear(a, b, lr_mul=lr_mul, activation=True) for a, b in pairs))
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def _label(self, c: Tensor | None, n: int) -> Tensor:
        if c is None:
            raise ValueError(f"this mapping network is conditional (c_dim={self.c_dim}): pass labels c")
        if c.dim() == 1 and not c.is_floating_point():
            c = F.one_hot(c.long(), self.c_dim)
        if c.shape != (n, self.c_dim):
            raise ValueError(f"labels c must be (N,) class ids or (N, {self.c_dim}), got {tuple(c.shape)}")
        return c.float()

    def forward(
        self,
        z: Tensor | None,
        c: Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_w_avg: bool = True,
    ) -> Tensor:
        """z (N, z_dim) (None when z_dim = 0), c (N,) ids or (N, c_dim) -> (N, num_ws, w_dim), or
        (N, w_dim) when num_ws is None. `update_w_avg=False` leaves w_avg alone in training mode
        (for extra passes such as style-mixing draws). Raises ValueError for missing labels, wrong
        label shapes, or truncation without w_avg / without num_ws for a cutoff."""
        parts = []
        if self.z_dim > 0:
            parts.append(normalize_2nd_moment(z.float()))
        if self.embed is not None:
            n = z.shape[0] if z is not None else len(c) if c is not None else 0
            parts.append(normalize_2nd_moment(self.embed(self._label(c, n))))
        w = self.layers(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])

        if self.w_avg_beta is not None and self.training and update_w_avg:
            with torch.no_grad():
                self.w_avg.lerp_(w.detach().mean(dim=0).to(self.w_avg.dtype), 1.0 - self.w_avg_beta)

        if truncation_cutoff is not None and self.num_ws is None:
            raise ValueError("truncation_cutoff needs a mapping network that broadcasts (num_ws set)")
        if truncation_psi != 1 and self.w_avg_beta is None:
            raise ValueError("truncation needs w_avg: build the mapping network with w_avg_beta set")
        w_avg = self.w_avg.to(w.dtype) if self.w_avg_beta is not None else None
        if self.num_ws is None:
            return w if truncation_psi == 1 else w_avg.lerp(w, truncation_psi)
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)  # a copy: callers may edit rows (style mixing)
        if truncation_psi != 1:
            cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws = torch.cat([w_avg.lerp(ws[:, :cut], truncation_psi), ws[:, cut:]], dim=1)
        return ws


# --- Synthesis network ------------------------------------------------------------------------------


def modulated_conv2d(
    x: Tensor,
    weight: Tensor,
    styles: Tensor,
    demodulate: bool = True,
    up: Tensor | None = None,
    bias: Tensor | None = None,
    gain: float = 1.0,
) -> Tensor:
    """StyleGAN2's modulated convolution (Karras et al. 2020, eq. 1-3): per sample n,
    w'_oik = s_ni w_oik and, with demodulation, w''_oik = w'_oik / sqrt(sum_ik w'_oik^2 + 1e-8), so
    unit-variance inputs give unit-variance outputs whatever the style. Returns
    gain * (conv(x, w'') + bias).

    x (N, I, H, W), weight (O, I, k, k) (k odd; used as given: demodulation cancels its scale,
    without it the caller scales), styles (N, I), bias (O,) -> (N, O, H, W) ('same' padding).
    `up`, a (4, 4) FIR filter: up-sample x2 as the reference's conv2d_resample (transposed conv,
    stride 2, then the filter) -> (N, O, 2H, 2W); this equals zero insertion, padding (3, 2),
    the filter times 4, then a true convolution (flipped kernel, the reference's flip_weight=False
    for up-sampling layers; the weights are learned, so the orientation is a convention).

    Computed by scaling the activations, conv(x * s) * d, with one weight shared by the batch, not
    as the reference's fused path (a grouped conv over per-sample weights): the same numbers, but
    faster on CPU. A 32 px G (channel_base 4096, channel_max 128, batch 32), forward+backward on one
    thread: 2.1 s (1 image channel) and 2.4 s (3) this way, 3.1 s and 4.6 s grouped (PyTorch 2.14,
    mkldnn, a shared machine); on 2 loaded threads 3.9 s and 2.1 s against 6.7 s and 6.7 s. The
    reference takes this path in training too."""
    n, i = styles.shape
    o, _, k, _ = weight.shape
    x = x * styles.to(x.dtype).view(n, i, 1, 1)
    if up is None:
        x = F.conv2d(x, weight.to(x.dtype), padding=k // 2)
    else:
        x = F.conv_transpose2d(x, weight.transpose(0, 1).to(x.dtype), stride=2)  # (2H + k - 2)
        x = blur(x, up, pad=(up.shape[0] - k + 1) // 2, gain=4)
    if demodulate:  # sum_ik (s_ni w_oik)^2 = (s^2 @ (sum_k w^2)^T)_no: no (N, O, I, k, k) tensor
        with torch.autocast(x.device.type, enabled=False):  # in fp32 under AMP, as the reference
            sq = styles.float().square() @ weight.float().square().sum(dim=(2, 3)).t()
            scale = (sq + 1e-8).rsqrt() * gain
        scale = scale.to(x.dtype).view(n, o, 1, 1)
    else:
        scale = torch.full((1, o, 1, 1), gain, dtype=x.dtype, device=x.device)
    if bias is None:
        return x * scale
    return torch.addcmul((bias * gain).to(x.dtype).view(1, o, 1, 1), x, scale)  # one pass


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally up-sampling x2) + noise + bias + leaky ReLU (times sqrt(2)).
    The style is an affine map of w (EqualLinear, bias 1 at init, so styles start near 1). Noise:
    one (N, 1, res, res) map per layer, scaled by a learned per-channel strength, zero at init
    (StyleGAN's per-feature B; stylegan2-ada-pytorch learns one scalar per layer).

    x (N, in_channels, res or res/2, ...), w (N, w_dim) -> (N, out_channels, res, res)."""

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        if up:
            self.register_buffer("resample_filter", fir_filter(), persistent=False)
        else:
            self.resample_filter = None

    def forward(
        self, x: Tensor, w: Tensor, noise_mode: str = "random", generator: torch.Generator | None = None
    ) -> Tensor:
        # lrelu(g (y + noise + b)) == g lrelu(y + noise + b): the gain g rides on the scales
        x = modulated_conv2d(
            x, self.weight, self.affine(w), up=self.resample_filter, bias=self.bias, gain=LRELU_GAIN
        )
        strength = (self.noise_strength * LRELU_GAIN).to(x.dtype).view(1, -1, 1, 1)
        if noise_mode == "random":
            shape = (x.shape[0], 1, self.resolution, self.resolution)
            x = x.addcmul_(torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype), strength)
        elif noise_mode == "const":
            x = x.add_(self.noise_const.to(x.dtype) * strength)
        return F.leaky_relu(x, LRELU_SLOPE, inplace=True)


class ToRGB(nn.Module):
    """Modulated 1x1 conv without demodulation, + bias: features (N, C, H, W), w (N, w_dim) ->
    image (N, image_channels, H, W). The equalised-LR gain 1/sqrt(C) scales the styles."""

    def __init__(self, in_channels: int, image_channels: int, w_dim: int) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(image_channels, in_channels))
        self.bias = nn.Parameter(torch.zeros(image_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        styles = self.affine(w) * self.weight_gain  # (N, C)
        # b_o + sum_c W_oc s_nc x_nchw: one batched matmul over the pixels
        w_n = (self.weight * styles.unsqueeze(1)).to(x.dtype)  # (N, O, C)
        y = torch.baddbmm(self.bias.to(x.dtype).view(1, -1, 1), w_n, x.flatten(2))  # (N, O, HW)
        return y.view(x.shape[0], -1, *x.shape[2:])


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator: (up-sampling conv,) conv, toRGB; the running image is
    up-sampled with the [1,3,3,1] filter and the block's toRGB output added. The 4x4 block starts
    from a learned constant (C, 4, 4) instead of features. Uses num_conv + 1 ws: the toRGB's w is
    the next block's first."""

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, resolution: int, image_channels: int
    ) -> None:
        super().__init__()
        self.resolution = resolution
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            self.conv0 = None
        else:
            self.const = None
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = ToRGB(out_channels, image_channels, w_dim)
        self.num_conv = 1 if in_channels == 0 else 2
        self.register_buffer("resample_filter", fir_filter(), persistent=False)

    def forward(
        self,
        x: Tensor | None,
        img: Tensor | None,
        ws: Tensor,
        noise_mode: str = "random",
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """x: features (N, in_channels, res/2, res/2) (None for the first block), img: image so far
        (N, image_channels, res/2, res/2) or None, ws (N, num_conv + 1, w_dim) -> (features at res,
        image at res)."""
        if self.conv0 is None:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode, generator)
        x = self.conv1(x, ws[:, self.num_conv - 1], noise_mode, generator)
        y = self.torgb(x, ws[:, self.num_conv])
        img = y if img is None else upsample2d(img, self.resample_filter) + y
        return x, img


def check_image_size(image_size: int) -> int:
    """log2(image_size). Raises ValueError unless image_size is a power of two >= 8."""
    if image_size < 8 or image_size & (image_size - 1):
        raise ValueError(f"StyleGAN2 needs an image size that is a power of two >= 8, got {image_size}")
    return image_size.bit_length() - 1


def channels_per_resolution(image_size: int, channel_base: int, channel_max: int) -> dict[int, int]:
    """{res: min(channel_base // res, channel_max)} for res = 4, 8, ..., image_size (at least 1).
    The reference's 32768 / 512 gives 512 channels up to 64 px, 256 at 128 px, ...; 4096 / 128 gives
    128 at 4-32 px."""
    check_image_size(image_size)
    res = [2**i for i in range(2, image_size.bit_length())]
    return {r: max(1, min(channel_base // r, channel_max)) for r in res}


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) -> images (N, image_channels, S, S): a learned 4x4 constant, two
    modulated convs per resolution up to S (one at 4x4), and the skip architecture, whose image is
    the up-sampled sum of every resolution's toRGB. num_ws = 2 log2(S) - 2 (8 at 32 px).

    `output`: "linear" returns that sum as it is, roughly in [-1, 1] (the reference's); "tanh"
    squashes it into (-1, 1) as DCGAN's generator (Radford et al. 2016), so a near-binary set's
    background (MNIST at 32 px: 85 % of the pixels exactly -1) is reachable (README, "StyleGAN2")."""

    def __init__(
        self,
        w_dim: int,
        image_size: int,
        image_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        output: str = "linear",
    ) -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}; got {output!r}")
        ch = channels_per_resolution(image_size, channel_base, channel_max)
        self.w_dim, self.image_size, self.image_channels = w_dim, image_size, image_channels
        self.output = output
        self.blocks = nn.ModuleList(
            SynthesisBlock(ch.get(r // 2, 0), ch[r], w_dim, r, image_channels) for r in ch
        )
        self.num_ws = sum(b.num_conv for b in self.blocks) + 1

    def forward(
        self, ws: Tensor, noise_mode: str = "random", generator: torch.Generator | None = None
    ) -> Tensor:
        """Raises ValueError for an unknown noise_mode or ws of the wrong shape."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}; got {noise_mode!r}")
        if ws.dim() != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be (N, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        x = img = None
        i = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, i : i + block.num_conv + 1], noise_mode, generator)
            i += block.num_conv
        return torch.tanh(img) if self.output == "tanh" else img


class Generator(nn.Module):
    """StyleGAN2 generator = MappingNetwork + SynthesisNetwork (Karras et al. 2020).

    forward(z (N, z_dim), c) -> images (N, image_channels, S, S), roughly in [-1, 1] (in (-1, 1)
    with output="tanh", see SynthesisNetwork). For style mixing and path-length regularisation call
    the parts: ws = G.mapping(z, c) (N, num_ws, w_dim), then G.synthesis(ws). Raises ValueError for
    an image size that is not a power of two >= 8, or an unknown output."""

    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        image_size: int,
        image_channels: int,
        c_dim: int = 0,
        channel_base: int = 32768,
        channel_max: int = 512,
        mapping_depth: int = 8,
        mapping_lr_mul: float = 0.01,
        w_avg_beta: float = 0.995,
        output: str = "linear",
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.image_size, self.image_channels = image_size, image_channels
        self.synthesis = SynthesisNetwork(
            w_dim, image_size, image_channels, channel_base, channel_max, output
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim, w_dim, self.num_ws, mapping_depth, c_dim, lr_mul=mapping_lr_mul, w_avg_beta=w_avg_beta
        )

    def forward(
        self,
        z: Tensor,
        c: Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str | None = None,
        return_ws: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """z (N, z_dim), c (N,) class ids or (N, c_dim) (None when unconditional) -> images
        (N, image_channels, S, S), and ws (N, num_ws, w_dim) with return_ws. noise_mode: random
        (fresh noise from `generator`, else the global RNG), const (fixed maps) or none; None =
        random in training mode, const in eval mode (so sampling a trained G is deterministic, as
        the reference's generate.py)."""
        if noise_mode is None:
            noise_mode = "random" if self.training else "const"
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff)
        img = self.synthesis(ws, noise_mode, generator)
        return (img, ws) if return_ws else img


# --- Discriminator ----------------------------------------------------------------------------------


class DiscriminatorBlock(nn.Module):
    """Residual block (StyleGAN2 Fig. 7c): conv 3x3, conv 3x3 with [1,3,3,1] down-sampling, plus a
    1x1 down-sampling skip; the sum is scaled by 1/sqrt(2) to keep the variance.
    (N, in_channels, H, W) -> (N, out_channels, H/2, W/2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3, activation=True)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, activation=True, down=True, gain=SQRT_HALF)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False, down=True, gain=SQRT_HALF)

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x).add_(self.conv1(self.conv0(x)))


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 head: minibatch std (groups of `mbstd_group`, 1 feature), conv 3x3, fc, and the
    output fc: (N, C, 4, 4) -> (N, out_features)."""

    def __init__(self, channels: int, out_features: int, mbstd_group: int = 4) -> None:
        super().__init__()
        self.mbstd = MinibatchStd(mbstd_group)
        self.conv = EqualConv2d(channels + 1, channels, 3, activation=True)
        self.fc = EqualLinear(channels * 16, channels, activation=True)
        self.out = EqualLinear(channels, out_features)

    def features(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(self.mbstd(x)).flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.features(x))


class Discriminator(nn.Module):
    """StyleGAN2's residual discriminator: images (N, image_channels, S, S) [, labels] -> logits (N,).

    fromRGB (1x1) at S, a residual block per resolution down to 4x4 (channels from the same budget
    as G), then the epilogue. Conditional (c_dim > 0): projection (Miyato & Koyama 2018) as the
    reference's cmap, logit = <out(x), mapping(c)> / sqrt(cmap_dim), with a MappingNetwork of the
    label alone (cmap_dim defaults to the 4x4 channels). A batch that the minibatch-std group size
    does not divide is taken as one group (gan_cli.models.layers.MinibatchStd)."""

    def __init__(
        self,
        image_size: int,
        image_channels: int,
        c_dim: int = 0,
        channel_base: int = 32768,
        channel_max: int = 512,
        cmap_dim: int | None = None,
        mbstd_group: int = 4,
        mapping_depth: int = 8,
    ) -> None:
        super().__init__()
        ch = channels_per_resolution(image_size, channel_base, channel_max)
        self.image_size, self.image_channels, self.c_dim = image_size, image_channels, c_dim
        self.fromrgb = EqualConv2d(image_channels, ch[image_size], 1, activation=True)
        self.blocks = nn.Sequential(
            *(DiscriminatorBlock(ch[r], ch[r // 2]) for r in sorted(ch, reverse=True) if r > 4)
        )
        self.cmap_dim = (ch[4] if cmap_dim is None else cmap_dim) if c_dim > 0 else 0
        self.epilogue = DiscriminatorEpilogue(ch[4], self.cmap_dim or 1, mbstd_group)
        self.mapping = (
            MappingNetwork(0, self.cmap_dim, None, mapping_depth, c_dim, w_avg_beta=None)
            if c_dim > 0
            else None
        )

    def features(self, img: Tensor, c: Tensor | None = None) -> Tensor:
        """(N, image_channels, S, S) -> (N, C4): the epilogue's last hidden layer (for feature
        matching)."""
        return self.epilogue.features(self.blocks(self.fromrgb(img)))

    def forward(self, img: Tensor, c: Tensor | None = None) -> Tensor:
        """img (N, image_channels, S, S), c (N,) class ids or (N, c_dim) -> logits (N,). Raises
        ValueError when a conditional D gets no labels."""
        x = self.epilogue(self.blocks(self.fromrgb(img)))
        if self.mapping is None:
            return x.view(-1)
        cmap = self.mapping(None, c)
        return (x * cmap).sum(dim=1) / math.sqrt(self.cmap_dim)
