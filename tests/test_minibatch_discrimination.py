"""Minibatch discrimination (Salimans et al. 2016, sec. 3.2): the layer by hand, in each
discriminator, what it lets D see, a short training run, and the config checks."""

import math

import pytest
import torch
from torch import nn

from gan_cli.models import Packed, build_models
from gan_cli.models.layers import MinibatchDiscrimination
from gan_cli.schema import ConfigError, check_config, inert_settings
from gan_cli.trainer import Trainer
from tests.conftest import compose_config
from tests.test_training import fit

e = math.exp


def hand_layer() -> MinibatchDiscrimination:
    """A = 2 features, B = 2 kernels of C = 2: kernel 0 is the identity (M = f), kernel 1 copies
    the first feature twice (M = (f_0, f_0))."""
    layer = MinibatchDiscrimination(2, kernels=2, dim=2)
    with torch.no_grad():
        layer.T.zero_()
        layer.T[:, 0, :] = torch.eye(2)
        layer.T[0, 1, :] = 1.0
    return layer


def test_layer_output_by_hand():
    f = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # kernel 0: L1 distances d01 = 1, d02 = 1, d12 = 2; kernel 1: M = (0,0), (1,1), (0,0), so
    # d01 = 2, d02 = 0, d12 = 2. o_b(x_i) sums exp(-d) over the other two samples (j != i).
    expected_o = torch.tensor(
        [
            [e(-1) + e(-1), e(-2) + e(0)],
            [e(-1) + e(-2), e(-2) + e(-2)],
            [e(-1) + e(-2), e(0) + e(-2)],
        ]
    )
    out = hand_layer()(f)
    assert out.shape == (3, 2 + 2)
    assert torch.equal(out[:, :2], f)  # the features pass through, o is appended
    assert torch.allclose(out[:, 2:], expected_o, atol=1e-6)


def test_copies_score_n_minus_1_and_a_lone_sample_0():
    layer = MinibatchDiscrimination(6, kernels=4, dim=3)
    copies = torch.randn(1, 6).expand(5, 6)
    assert torch.allclose(layer.closeness(copies), torch.full((5, 4), 4.0))  # exp(0) from each of 4 others
    assert torch.equal(layer.closeness(torch.randn(1, 6)), torch.zeros(1, 4))  # the j = i term is left out


def test_identical_and_distinct_batches_give_different_features():
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(32, kernels=10, dim=5)
    x = torch.randn(1, 32)
    collapsed = layer(x.expand(8, 32))
    varied = layer(torch.cat([x, torch.randn(7, 32)]))
    assert torch.equal(collapsed[0, :32], varied[0, :32])  # the same sample, the same features ...
    assert (collapsed[0, 32:] - varied[0, 32:]).abs().min() > 1.0  # ... but D sees its batch


def test_gradients_match_the_formula_and_half_precision_is_kept_out():
    torch.manual_seed(1)
    layer = MinibatchDiscrimination(6, kernels=4, dim=3)
    f = torch.randn(5, 6, requires_grad=True)
    m = (f @ layer.T.flatten(1)).view(5, 4, 3)
    direct = (torch.exp(-(m[:, None] - m[None]).abs().sum(-1)) * (1 - torch.eye(5))[:, :, None]).sum(1)
    o = layer.closeness(f)
    assert torch.allclose(o, direct, atol=1e-6)
    w = torch.randn(5, 4)
    for a, b in zip(
        torch.autograd.grad((o * w).sum(), [f, layer.T]),
        torch.autograd.grad((direct * w).sum(), [f, layer.T]),
        strict=True,
    ):
        assert torch.allclose(a, b, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer.closeness(f.bfloat16()).dtype == torch.float32
        assert layer(f.bfloat16()).dtype == torch.bfloat16  # the output keeps its input's dtype


@pytest.mark.parametrize(
    "model,extra,features,matched",
    [
        ("mlp", [], 16, 16),  # the last hidden width
        ("mlp", ["model.mbstd=true"], 17, 17),  # + the minibatch-std column
        ("dcgan", [], 8 * 4 * 4, 8 * 4 * 4),  # 16 px: 2 blocks, 8 maps of 4x4 before the head
        ("dcgan", ["model.mbstd=true"], 9 * 4 * 4, 8 * 4 * 4),  # + the minibatch-std map
        ("dcgan", ["model.pack=2"], 8 * 4 * 4, 8 * 4 * 4),
        ("cgan", [], 8 * 4 * 4, 8 * 4 * 4),
    ],
)
def test_each_discriminator_carries_the_layer(model, extra, features, matched):
    """`features`: what the layer reads; `matched`: what feature matching reads (never o)."""
    cfg = compose_config(
        f"model={model}",
        "model.minibatch_discrimination=true",
        "model.mbd_kernels=7",
        "model.mbd_dim=3",
        *extra,
    )
    check_config(cfg)
    _, d = build_models(cfg.model, cfg.data, cfg.loss.name)
    (layer,) = [m for m in d.modules() if isinstance(m, MinibatchDiscrimination)]
    assert layer.T.shape == (features, 7, 3)
    last = [m for m in d.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
    assert isinstance(last, nn.Linear) and last.in_features == features + 7  # reads f and o
    x, y = torch.randn(8, 1, 16, 16), torch.randint(0, 10, (8,))
    pack = 2 if isinstance(d, Packed) else 1
    assert d(x, y).shape == (8 // pack,)
    assert d.features(x, y).shape == (8 // pack, matched)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(d(x, y).float()).all()


@pytest.mark.parametrize("model", ["mlp", "dcgan", "cgan"])
def test_d_scores_a_sample_by_its_batch_only_with_the_layer(model):
    x, others = torch.randn(1, 1, 16, 16), torch.randn(7, 1, 16, 16)
    y = torch.zeros(8, dtype=torch.long)
    first_logit = {}
    for on in (False, True):
        cfg = compose_config(f"model={model}", f"model.minibatch_discrimination={str(on).lower()}")
        torch.manual_seed(0)
        _, d = build_models(cfg.model, cfg.data, cfg.loss.name)
        d.eval()  # batch norm from running statistics: no other way across the batch
        with torch.no_grad():
            first_logit[on] = (d(x.expand(8, -1, -1, -1), y)[0], d(torch.cat([x, others]), y)[0])
    collapsed, varied = first_logit[False]
    assert torch.allclose(collapsed, varied)
    collapsed, varied = first_logit[True]
    assert not torch.allclose(collapsed, varied)


def test_dcgan_with_minibatch_discrimination_trains(tmp_path):
    cfg = compose_config(
        "model=dcgan", "model.minibatch_discrimination=true", "trainer.steps=3", "trainer.ema_bn_batches=2"
    )
    trainer = Trainer(cfg, tmp_path)
    (layer,) = [m for m in trainer.game.D.modules() if isinstance(m, MinibatchDiscrimination)]
    t0 = layer.T.detach().clone()
    metrics = fit(trainer, tmp_path)
    losses = {k: v for k, v in metrics.items() if k.startswith("loss/")}
    assert set(losses) >= {"loss/d", "loss/g"} and all(math.isfinite(v) for v in losses.values())
    assert not torch.equal(layer.T.detach(), t0)  # D learns its kernels


def test_config_errors_and_notes():
    with pytest.raises(ConfigError) as err:
        check_config(compose_config("model=dcgan", "model.minibatch_discrimination=true", "loss=wgan_gp"))
    assert (
        "model.minibatch_discrimination makes D's score of a sample depend on the other samples of its "
        "batch, and loss=wgan_gp's penalty bounds D's gradient one sample at a time" in str(err.value)
    )
    with pytest.raises(ConfigError) as err:
        check_config(
            compose_config("model=dcgan", "model.minibatch_discrimination=true", "model.pack=8")  # batch 8
        )
    assert (
        "with model.pack=8 D sees trainer.batch_size/pack = 1 input per batch: raise trainer.batch_size "
        "or lower model.pack" in str(err.value)
    )
    with pytest.raises(ConfigError) as err:
        check_config(
            compose_config("model.minibatch_discrimination=true", "model.mbd_kernels=0", "model.mbd_dim=0")
        )
    assert "model.mbd_kernels must be >= 1, got 0" in str(err.value)
    assert "model.mbd_dim must be >= 1, got 0" in str(err.value)
    # two packed inputs a batch are enough
    check_config(compose_config("model=dcgan", "model.minibatch_discrimination=true", "model.pack=4"))
    check_config(compose_config("model=mlp", "model.minibatch_discrimination=true", "model.mbstd=true"))
    notes = " ".join(inert_settings(compose_config("model.mbd_kernels=50")))
    assert "model.mbd_kernels=50 has no effect with model.minibatch_discrimination=false" in notes
    on = inert_settings(compose_config("model.minibatch_discrimination=true", "model.mbd_kernels=50"))
    assert not any("mbd_kernels" in note for note in on)
