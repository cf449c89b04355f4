"""Model zoo: build (G, D) from the model and data configs.

Every G maps (z, y=None) -> samples; every D maps (x, y=None) -> logits of shape (N,).
"""

from __future__ import annotations

from torch import nn

from gan_cli.models.cgan import CGANDiscriminator, CGANGenerator
from gan_cli.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_cli.models.init import dcgan_init
from gan_cli.models.mlp import MLPDiscriminator, MLPGenerator
from gan_cli.schema import DataConfig, LossName, ModelConfig, ModelName, Norm


class ModelConfigError(ValueError):
    """The model cannot be built for this data set; the message says why."""


def resolve_norms(model: ModelConfig, loss: LossName) -> tuple[str, str]:
    """`auto` -> batch norm; in D, layer norm for wgan_gp, whose penalty is taken per sample."""
    g = "batch" if model.g_norm == Norm.auto else model.g_norm.value
    if model.d_norm != Norm.auto:
        d = model.d_norm.value
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
    return model.name == ModelName.cgan


def build_models(model: ModelConfig, data: DataConfig, loss: LossName) -> tuple[nn.Module, nn.Module]:
    """Construct (G, D) with their initialisation; shape facts come from the data config."""
    g_norm, d_norm = resolve_norms(model, loss)
    shape = sample_shape(data)
    if model.name == ModelName.mlp:
        g = MLPGenerator(model.z_dim, list(model.g_hidden), shape, g_norm, tanh=not data.dim)
        d = MLPDiscriminator(shape, list(model.d_hidden), d_norm)
        return g, d
    if data.dim:
        raise ModelConfigError(
            f"model={model.name.value} is convolutional and needs images, but data={data.name.value} "
            "holds 2-D points; use model=mlp"
        )
    c, s, w_g, w_d = data.channels, data.image_size, model.g_channels, model.d_channels
    if model.name == ModelName.dcgan:
        g, d = DCGANGenerator(model.z_dim, c, s, w_g, g_norm), DCGANDiscriminator(c, s, w_d, d_norm)
    else:
        if data.num_classes < 2:
            raise ModelConfigError(
                f"model=cgan needs a labelled data set, but data={data.name.value} has "
                f"data.num_classes={data.num_classes}"
            )
        k = data.num_classes
        g = CGANGenerator(model.z_dim, k, model.embed_dim, c, s, w_g, g_norm)
        d = CGANDiscriminator(k, c, s, w_d, d_norm, model.cond.value)
    dcgan_init(g)
    dcgan_init(d)
    return g, d
