"""Model shapes, logits, conditioning and DCGAN initialisation."""

import pytest
import torch

from gan_cli.models import build_models, resolve_norms
from gan_cli.models.dcgan import stages
from gan_cli.models.norm import recompute_batchnorm_stats
from gan_cli.schema import ConfigError, LossName, ModelName, check_config, inert_settings
from tests.conftest import compose_config


@pytest.mark.parametrize("size,channels", [(32, 1), (32, 3), (64, 3), (64, 1), (16, 3)])
@pytest.mark.parametrize("model", ["dcgan", "cgan", "mlp"])
def test_shapes(model, size, channels):
    cfg = compose_config(f"model={model}", f"data.image_size={size}", f"data.channels={channels}")
    g, d = build_models(cfg.model, cfg.data, cfg.loss.name)
    z = torch.randn(4, cfg.model.z_dim)
    y = torch.tensor([0, 1, 2, 9])
    x = g(z, y)
    assert x.shape == (4, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1  # tanh output
    logits = d(x, y)
    assert logits.shape == (4,)


def test_mlp_on_points_is_linear_output():
    cfg = compose_config("model=mlp", "data=grid25")
    g, d = build_models(cfg.model, cfg.data, cfg.loss.name)
    assert not isinstance(list(g.modules())[-1], torch.nn.Tanh)  # grid25 spans [-4, 4]
    assert g(torch.randn(5, cfg.model.z_dim)).shape == (5, 2)
    assert d(torch.randn(5, 2)).shape == (5,)


@pytest.mark.parametrize("act,cls", [("relu", torch.nn.ReLU), ("leaky_relu", torch.nn.LeakyReLU)])
def test_mlp_generator_activation(act, cls):
    cfg = compose_config("model=mlp", "data=ring8", f"model.g_activation={act}")
    g, d = build_models(cfg.model, cfg.data, cfg.loss.name)
    acts = [m for m in g.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU))]
    assert acts and all(type(m) is cls for m in acts)
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in d.modules())  # D keeps its leaky units
    if act == "relu":  # hard zeros: a negative pre-activation passes no signal at all
        x = torch.randn(4, 8)
        assert torch.equal(acts[0](-x.abs()), torch.zeros_like(x))


@pytest.mark.parametrize("data,scale", [("ring8", 1.0), ("grid25", 4.0)])
def test_mlp_on_points_works_in_units_of_the_data_scale(data, scale):
    cfg = compose_config("model=mlp", f"data={data}")
    g, d = build_models(cfg.model, cfg.data, cfg.loss.name)
    assert g.scale.item() == pytest.approx(scale, rel=1e-3) and "scale" in g.state_dict()
    z, x = torch.randn(6, cfg.model.z_dim), torch.randn(6, 2)
    g.eval()
    assert torch.allclose(g(z), g.net(z) * g.scale)
    assert torch.allclose(d(x), d.net(x / d.scale).view(-1))
    image_g, _ = build_models(
        compose_config("model=mlp").model, compose_config("model=mlp").data, cfg.loss.name
    )
    assert "scale" not in image_g.state_dict()  # images are in [-1, 1] already


def test_maxout_discriminator():
    from gan_cli.models.layers import Maxout

    x = torch.tensor([[1.0, 5.0, -2.0, 0.0, 3.0, 4.0]])
    assert torch.equal(Maxout(3)(x), torch.tensor([[5.0, 4.0]]))
    cfg = compose_config("model=mlp", "data=ring8", "model.d_maxout=5", "model.d_hidden=[16,8]", tiny=False)
    _, d = build_models(cfg.model, cfg.data, cfg.loss.name)
    widths = [m.out_features for m in d.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [80, 40, 1] and not any(isinstance(m, torch.nn.LeakyReLU) for m in d.modules())
    assert d(torch.randn(4, 2)).shape == (4,)


def test_mlp_classic_widths():
    cfg = compose_config("model=mlp", "data=ring8", tiny=False)
    g, d = build_models(cfg.model, cfg.data, cfg.loss.name)
    g_widths = [m.out_features for m in g.modules() if isinstance(m, torch.nn.Linear)]
    d_widths = [m.out_features for m in d.modules() if isinstance(m, torch.nn.Linear)]
    assert g_widths == [128, 256, 512, 1024, 2]
    assert d_widths == [512, 256, 1]


@pytest.mark.parametrize("cond", ["projection", "concat"])
def test_cgan_discriminator_uses_labels(cond):
    cfg = compose_config("model=cgan", f"model.cond={cond}")
    torch.manual_seed(0)
    _, d = build_models(cfg.model, cfg.data, cfg.loss.name)
    x = torch.randn(4, 1, 16, 16).repeat(2, 1, 1, 1)
    y = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])
    out = d(x, y)
    assert not torch.allclose(out[:4], out[4:])  # same images, other labels, other logits


def test_cgan_generator_uses_labels():
    cfg = compose_config("model=cgan")
    g, _ = build_models(cfg.model, cfg.data, cfg.loss.name)
    g.eval()
    z = torch.randn(1, cfg.model.z_dim).repeat(2, 1)
    x = g(z, torch.tensor([0, 1]))
    assert not torch.allclose(x[0], x[1])


def test_dcgan_init():
    cfg = compose_config("model=dcgan", "model.g_channels=64", "model.d_channels=64", "data.image_size=32")
    torch.manual_seed(0)
    g, d = build_models(cfg.model, cfg.data, cfg.loss.name)
    convs = [m.weight for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    w = torch.cat([c.flatten() for c in convs])
    assert w.mean().abs() < 1e-3 and w.std().item() == pytest.approx(0.02, rel=0.05)
    bns = [m for m in d.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    bw = torch.cat([b.weight for b in bns])
    assert bw.mean().item() == pytest.approx(1.0, abs=0.01)
    assert all((b.bias == 0).all() for b in bns)


def test_norms_auto():
    cfg = compose_config("model=dcgan")
    assert resolve_norms(cfg.model, LossName.nonsaturating) == ("batch", "batch")
    assert resolve_norms(cfg.model, LossName.wgan_gp) == ("batch", "layer")
    cfg.model.name = ModelName.mlp
    assert resolve_norms(cfg.model, LossName.hinge) == ("batch", "none")


def test_dcgan_stages_for_every_multiple_of_4():
    # powers of two keep the paper's 4x4 base (and so every checkpoint's shapes)
    assert stages(8) == (1, 4) and stages(32) == (3, 4) and stages(64) == (4, 4)
    assert stages(28) == (2, 7) and stages(20) == (2, 5) and stages(48) == (3, 6) and stages(12) == (1, 6)
    for bad in (6, 30, 33):
        with pytest.raises(ValueError, match="multiple of 4 and >= 8"):
            stages(bad)


@pytest.mark.parametrize("model", ["dcgan", "cgan"])
@pytest.mark.parametrize("size", [28, 20])
def test_dcgan_and_cgan_at_mnist_size(model, size):
    cfg = compose_config(
        f"model={model}", f"data.image_size={size}", "data.num_classes=10", "model.mbstd=false"
    )
    g, d = build_models(cfg.model, cfg.data, cfg.loss.name)
    z, y = torch.randn(4, cfg.model.z_dim), torch.arange(4)
    x = g(z, y)
    assert x.shape == (4, 1, size, size)
    assert d(x, y).shape == (4,)


def test_cgan_needs_labels():
    from gan_cli.models import ModelConfigError

    cfg = compose_config("model=cgan", "data.num_classes=0")
    with pytest.raises(ModelConfigError, match="labelled"):
        build_models(cfg.model, cfg.data, cfg.loss.name)


def test_recompute_batchnorm_stats_averages_the_batches():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4, momentum=0.3))
    batches = [(torch.randn(16, 3) * (i + 1) + i,) for i in range(5)]
    assert recompute_batchnorm_stats(net, iter(batches))
    with torch.no_grad():
        hidden = [net[0](x) for (x,) in batches]
    bn = net[1]
    torch.testing.assert_close(bn.running_mean, torch.stack([h.mean(0) for h in hidden]).mean(0))
    torch.testing.assert_close(bn.running_var, torch.stack([h.var(0) for h in hidden]).mean(0))
    assert int(bn.num_batches_tracked) == 5
    assert bn.momentum == 0.3 and not net.training  # left as found, in eval mode
    # a second pass gives the same statistics (nothing left over from the first)
    mean = bn.running_mean.clone()
    recompute_batchnorm_stats(net, iter(batches))
    torch.testing.assert_close(bn.running_mean, mean)


def test_recompute_batchnorm_stats_without_batchnorm():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    assert not recompute_batchnorm_stats(net, iter(()))


def _vbn_generator(*over: str):
    cfg = compose_config("model=mlp", "data=ring8", "model.z_dim=2", "model.g_norm=virtual_batch", *over)
    torch.manual_seed(0)
    g, _ = build_models(cfg.model, cfg.data, cfg.loss.name)
    return cfg, g


def test_virtual_batch_norm_makes_each_sample_independent_of_its_batch():
    # Salimans et al. 2016: statistics of a fixed reference batch (plus the example itself), so a
    # sample is the same alone, in any batch, in training and in sampling mode
    cfg, g = _vbn_generator("model.g_hidden=[32,32,32]", "model.vbn_ref_size=16")
    z = torch.randn(6, 2)
    g.train()
    alone = torch.cat([g(z[i : i + 1]) for i in range(6)])
    in_batch = g(torch.cat([z, 5 * torch.randn(30, 2)]))[:6]
    g.eval()
    sampled = g(z)
    assert alone.shape == (6, 2)
    assert torch.allclose(alone, in_batch, atol=1e-6) and torch.allclose(alone, sampled, atol=1e-6)
    # BatchNorm in training mode moves a sample with the rest of its batch
    cfg_bn = compose_config("model=mlp", "data=ring8", "model.z_dim=2", "model.g_hidden=[32,32,32]")
    bn, _ = build_models(cfg_bn.model, cfg_bn.data, cfg_bn.loss.name)
    bn.train()
    assert not torch.allclose(bn(z)[:6], bn(torch.cat([z, 5 * torch.randn(30, 2)]))[:6], atol=1e-3)


def test_virtual_batch_norm_formula_and_reference_latents():
    cfg, g = _vbn_generator(
        "model.g_hidden=[8,8]", "model.vbn_ref_size=10", "model.z_components=4", "model.z_component_std=0.01"
    )
    assert g.z_ref.shape == (10, 2) and "z_ref" in g.state_dict()
    # drawn from G's own prior: every reference latent sits within 5 std of a component mean
    from gan_cli.latent import component_means

    dist = torch.cdist(g.z_ref, component_means(2, 4)).min(dim=1).values
    assert (dist < 0.05).all()
    # the second hidden layer's norm: reference rows with their own statistics, an example with
    # the reference's statistics and itself, each weighted 1 / (R + 1)
    vbn = g.net[4]
    assert type(vbn).__name__ == "VirtualBatchNorm1d"
    with torch.no_grad():
        vbn.weight.fill_(2.0)
        vbn.bias.fill_(0.5)
        x = torch.randn(10 + 3, 8, dtype=torch.float64)
        out = vbn.double()(x)
    ref, new = x[:10], x[10:]
    expect_ref = (ref - ref.mean(0)) / (ref.var(0, unbiased=False) + 1e-5).sqrt() * 2 + 0.5
    for i in range(3):
        both = torch.cat([ref, new[i : i + 1]])
        expect = (new[i] - both.mean(0)) / (both.var(0, unbiased=False) + 1e-5).sqrt() * 2 + 0.5
        assert torch.allclose(out[10 + i], expect)
    assert torch.allclose(out[:10], expect_ref)


def test_virtual_batch_norm_gradients_equal_autograd_of_the_formula():
    """Its hand-written derivative (input, weight, bias; reference rows and examples) against
    autograd of the definition: each example normalised with the reference rows plus itself."""
    from gan_cli.models.norm import VirtualBatchNorm1d

    torch.manual_seed(0)
    vbn = VirtualBatchNorm1d(6, ref_size=5).double()
    with torch.no_grad():
        vbn.weight.copy_(torch.randn(6))
        vbn.bias.copy_(torch.randn(6))
    x = torch.randn(5 + 4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(vbn, (x,))

    def definition(x: torch.Tensor) -> torch.Tensor:
        ref = x[:5]
        rows = [(ref - ref.mean(0)) / (ref.var(0, unbiased=False) + 1e-5).sqrt()]
        for i in range(5, len(x)):
            both = torch.cat([ref, x[i : i + 1]])
            rows.append((x[i : i + 1] - both.mean(0)) / (both.var(0, unbiased=False) + 1e-5).sqrt())
        return torch.cat(rows) * vbn.weight + vbn.bias

    upstream = torch.randn(9, 6, dtype=torch.float64)
    got = torch.autograd.grad(vbn(x), (x, vbn.weight, vbn.bias), upstream)
    want = torch.autograd.grad(definition(x), (x, vbn.weight, vbn.bias), upstream)
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, atol=1e-10)


def test_virtual_batch_norm_reference_follows_the_seed():
    _, a = _vbn_generator()
    _, b = _vbn_generator()
    assert torch.equal(a.z_ref, b.z_ref)  # same seed, same reference batch and weights
    cfg = compose_config("model=mlp", "data=ring8", "model.z_dim=2", "model.g_norm=virtual_batch")
    torch.manual_seed(1)
    c, _ = build_models(cfg.model, cfg.data, cfg.loss.name)
    assert not torch.equal(a.z_ref, c.z_ref)


def test_virtual_batch_norm_config_checks():
    with pytest.raises(ConfigError, match=r"g_norm=virtual_batch is implemented for model=mlp.*model=dcgan"):
        check_config(compose_config("model=dcgan", "model.g_norm=virtual_batch"))
    with pytest.raises(ConfigError, match=r"model.d_norm=virtual_batch: .*a generator's normalisation"):
        check_config(compose_config("model=mlp", "model.d_norm=virtual_batch"))
    with pytest.raises(ConfigError, match=r"model.vbn_ref_size must be >= 2 .*got 1"):
        check_config(compose_config("model=mlp", "model.g_norm=virtual_batch", "model.vbn_ref_size=1"))
    notes = " ".join(inert_settings(compose_config("model=mlp", "model.vbn_ref_size=32")))
    assert "model.vbn_ref_size=32 has no effect with model.g_norm=auto" in notes
    notes = " ".join(
        inert_settings(compose_config("model=mlp", "model.g_norm=virtual_batch", "trainer.ema_bn_batches=2"))
    )
    assert "trainer.ema_bn_batches=2 has no effect with model.g_norm=virtual_batch" in notes
    good = ("experiment=ring8_best", "model.g_norm=virtual_batch")
    check_config(compose_config(*good, tiny=False))
