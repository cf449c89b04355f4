"""Model zoo: build (G, D) from the model and data configs.

Every G maps (z, y=None) -> samples; every D maps (x, y=None) -> logits of shape (N,).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn

from gan_cli.data.embedded import mixture_scale
from gan_cli.errors import ModelConfigError
from gan_cli.latent import sample_latents
from gan_cli.models.cgan import CGANDiscriminator, CGANGenerator
from gan_cli.models.cyclegan import PatchDiscriminator, ResnetGenerator
from gan_cli.models.dcgan import DCGANDiscriminator, DCGANGenerator, stages
from gan_cli.models.init import dcgan_init
from gan_cli.models.mlp import MLPDiscriminator, MLPGenerator
from gan_cli.schema import CondMode, DataConfig, Labels, LossName, ModelConfig, ModelName, Norm


def resolve_norms(model: ModelConfig, loss: LossName) -> tuple[str, str]:
    """`auto` -> batch norm; in D, layer norm for wgan_gp, whose penalty is taken per sample,
    and none under spectral normalisation (as in SNGAN)."""
    if model.name == ModelName.cyclegan:  # instance norm, as the authors' code
        auto = "none" if model.spectral_norm_d else "instance"
        return (
            "instance" if model.g_norm == Norm.auto else model.g_norm.value,
            auto if model.d_norm == Norm.auto else model.d_norm.value,
        )
    g = "batch" if model.g_norm == Norm.auto else model.g_norm.value
    if model.d_norm != Norm.auto:
        d = model.d_norm.value
    elif model.spectral_norm_d:
        d = "none"
    elif loss == LossName.wgan_gp:
        d = "layer"
    else:
        d = "none" if model.name == ModelName.mlp else "batch"
    return g, d


def sample_shape(data: DataConfig) -> tuple[int, ...]:
    """Shape of one sample: (C, H, W) for images, (dim,) for vector data."""
    if data.dim:
        return (data.dim,)
    return (data.channels, data.image_size, data.image_size)


def is_conditional(model: ModelConfig) -> bool:
    """Whether G and D take class labels (cgan always; stylegan2 with model.cond=projection)."""
    if model.name == ModelName.stylegan2:
        return model.cond != CondMode.none
    return model.name == ModelName.cgan


class Packed(nn.Module):
    """PacGAN: D sees groups of `pack` samples stacked along channels (features): (N, C, ...) ->
    (N / pack, pack * C, ...), one logit per group."""

    def __init__(self, d: nn.Module, pack: int) -> None:
        super().__init__()
        self.d, self.pack = d, pack

    def _pack(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0] // self.pack, self.pack * x.shape[1], *x.shape[2:])

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.d(self._pack(x), None)

    def features(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.d.features(self._pack(x), None)


def spectral_normalise(net: nn.Module) -> nn.Module:
    """Spectral normalisation on every conv, linear and embedding layer."""
    for module in list(net.modules()):
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.utils.parametrizations.spectral_norm(module)
    return net


def build_translators(
    model: ModelConfig, data: DataConfig, loss: LossName
) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
    """CycleGAN's (G_AB, G_BA, D_A, D_B) for data.a and data.b: ResNet generators A -> B and
    B -> A, PatchGAN discriminators of domain A and domain B images, N(0, 0.02) init."""
    if data.a is None or data.b is None:
        raise ModelConfigError(
            "model=cyclegan needs data=unpaired with data.a and data.b (e.g. data=digits2mnist)"
        )
    try:
        stages(data.image_size)
    except ValueError as e:
        raise ModelConfigError(f"model=cyclegan: {e}") from e
    if data.image_size // 2**model.d_layers < 3:  # the last two convs need a 3x3 map (a 1x1 patch)
        fits = max(1, int(math.log2(data.image_size / 3)))
        raise ModelConfigError(
            f"model.d_layers={model.d_layers} halves a {data.image_size} px image below 3x3 before the "
            f"PatchGAN's last two convs; use model.d_layers <= {fits} at this size"
        )
    g_norm, d_norm = resolve_norms(model, loss)
    ca, cb = data.a.channels, data.b.channels
    nets = (
        ResnetGenerator(ca, cb, model.g_channels, model.res_blocks, g_norm),
        ResnetGenerator(cb, ca, model.g_channels, model.res_blocks, g_norm),
        PatchDiscriminator(ca, model.d_channels, model.d_layers, d_norm),
        PatchDiscriminator(cb, model.d_channels, model.d_layers, d_norm),
    )
    for i, net in enumerate(nets):
        dcgan_init(net)
        if (i < 2 and model.spectral_norm_g) or (i >= 2 and model.spectral_norm_d):
            spectral_normalise(net)
    return nets


def check_buildable(model: ModelConfig, data: DataConfig, loss: LossName) -> None:
    """Build the networks once and throw them away, so that a model that does not fit the data
    fails before any data is read. Raises ModelConfigError naming the key. The random stream is
    restored, so the real build draws the same weights (a build on the meta device would need no
    memory, but its first use costs 1.6 s of imports)."""
    if data.labels == Labels.subfolders and data.num_classes == 0:  # classes not yet counted
        data = dataclasses.replace(data, num_classes=2)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        if model.name == ModelName.cyclegan:
            build_translators(model, data, loss)
        else:
            build_models(model, data, loss)


def build_models(model: ModelConfig, data: DataConfig, loss: LossName) -> tuple[nn.Module, nn.Module]:
    """Construct (G, D) with their initialisation and stabilisers; shape facts come from the data
    config."""
    g, d = _build(model, data, loss)
    if model.spectral_norm_g:
        spectral_normalise(g)
    if model.spectral_norm_d:
        spectral_normalise(d)
    if model.pack > 1:
        d = Packed(d, model.pack)
    return g, d


def _stylegan2(model: ModelConfig, data: DataConfig) -> tuple[nn.Module, nn.Module]:
    """StyleGAN2's G (mapping + synthesis) and residual D (models/stylegan2.py), their own
    initialisation (equalised learning rate: N(0, 1) weights scaled at run time)."""
    from gan_cli.models import stylegan2 as sg2

    c_dim = data.num_classes if is_conditional(model) else 0
    size = dict(channel_base=model.channel_base, channel_max=model.channel_max)
    try:
        g = sg2.Generator(
            model.z_dim,
            model.w_dim,
            data.image_size,
            data.channels,
            c_dim=c_dim,
            mapping_depth=model.mapping_layers,
            output=model.g_output.value,
            **size,
        )
        # D's label mapping keeps the reference's 8 layers (model.mapping_layers is G's, as its `map`)
        d = sg2.Discriminator(
            data.image_size, data.channels, c_dim=c_dim, mbstd_group=model.mbstd_group, **size
        )
    except ValueError as e:
        raise ModelConfigError(f"model=stylegan2: {e} (data.image_size, model.*)") from e
    return g, d


def _build(model: ModelConfig, data: DataConfig, loss: LossName) -> tuple[nn.Module, nn.Module]:
    g_norm, d_norm = resolve_norms(model, loss)
    shape = sample_shape(data)
    d_shape = (shape[0] * model.pack, *shape[1:])  # PacGAN widens D's input
    # minibatch discrimination (Salimans et al. 2016) before D's last layer; 0 kernels = off
    mbd = {
        "mbd_kernels": model.mbd_kernels if model.minibatch_discrimination else 0,
        "mbd_dim": model.mbd_dim,
    }
    if model.name == ModelName.mlp:
        scale = mixture_scale(data) if data.dim else None
        g = MLPGenerator(
            model.z_dim,
            list(model.g_hidden),
            shape,
            g_norm,
            tanh=not data.dim,
            activation=model.g_activation.value,
            scale=scale,
            ref_size=model.vbn_ref_size,
        )
        if g.ref_size:  # virtual batch norm's reference latents, drawn once from the prior
            seed = int(torch.randint(2**62, ()))  # from the seeded global stream, as the weights
            g.set_reference(sample_latents(model, g.ref_size, torch.Generator().manual_seed(seed)))
        d = MLPDiscriminator(
            d_shape,
            list(model.d_hidden),
            d_norm,
            model.mbstd,
            scale=scale,
            maxout=model.d_maxout,
            **mbd,
        )
        return g, d
    if data.dim:
        raise ModelConfigError(
            f"model={model.name.value} is convolutional and needs images, but data={data.name.value} "
            "holds 2-D points; use model=mlp"
        )
    if model.name == ModelName.cyclegan:
        raise ModelConfigError("model=cyclegan has two generators and two discriminators: build_translators")
    if model.name == ModelName.stylegan2:
        return _stylegan2(model, data)
    c, s, w_g, w_d = data.channels, data.image_size, model.g_channels, model.d_channels
    base, out_conv = model.base_size, model.g_out_conv
    try:
        stages(s, base)
    except ValueError as e:
        raise ModelConfigError(f"model={model.name.value}: {e}") from e
    if model.name == ModelName.dcgan:
        g = DCGANGenerator(model.z_dim, c, s, w_g, g_norm, base, out_conv)
        d = DCGANDiscriminator(c * model.pack, s, w_d, d_norm, model.mbstd, **mbd, base=base)
    else:
        if data.num_classes < 2:
            raise ModelConfigError(
                f"model=cgan needs a labelled data set, but data={data.name.value} has "
                f"data.num_classes={data.num_classes}"
            )
        k = data.num_classes
        g = CGANGenerator(model.z_dim, k, model.embed_dim, c, s, w_g, g_norm, base, out_conv)
        d = CGANDiscriminator(k, c, s, w_d, d_norm, model.cond.value, **mbd, base=base)
    dcgan_init(g)
    dcgan_init(d)
    return g, d
