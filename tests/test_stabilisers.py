"""Stabilisers from the literature: each changes what it should and trains with finite losses."""

import math

import pytest
import torch
from torch import nn

from gan_cli.latent import component_means, sample_latents
from gan_cli.losses import mmd2, r1_penalty, smoothed_gan_d
from gan_cli.models import Packed, build_models
from gan_cli.schema import ModelConfig
from gan_cli.trainer import Trainer
from tests.conftest import compose_config
from tests.test_resume import assert_same_state
from tests.test_training import fit


def test_spectral_norm_bounds_largest_singular_value():
    cfg = compose_config("model=dcgan", "model.spectral_norm_d=true", "model.d_channels=8")
    _, d = build_models(cfg.model, cfg.data, cfg.loss.name)
    with torch.no_grad():
        for _ in range(30):  # each training-mode forward runs one power iteration
            d(torch.randn(8, 1, 16, 16))
    layers = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert layers and all(nn.utils.parametrize.is_parametrized(m, "weight") for m in layers)
    for m in layers:
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
        assert sigma <= 1.05, sigma
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())  # auto norm: none under SN


@pytest.mark.parametrize("model,expected", [("mlp", 3 * 16 * 16), ("dcgan", 3)])
def test_packing_widens_d_input(model, expected):
    cfg = compose_config(f"model={model}", "model.pack=3", "trainer.batch_size=9")
    _, d = build_models(cfg.model, cfg.data, cfg.loss.name)
    assert isinstance(d, Packed)
    first = next(m for m in d.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    assert (first.in_features if isinstance(first, nn.Linear) else first.in_channels) == expected
    assert d(torch.randn(9, 1, 16, 16)).shape == (3,)  # one logit per pack


def test_r1_is_zero_for_a_constant_d_and_w2_for_a_linear_one():
    constant = nn.Module()
    constant.b = nn.Parameter(torch.tensor(2.0))
    constant.forward = lambda x, y=None: constant.b.expand(len(x))  # noqa: E731
    assert r1_penalty(constant, torch.randn(5, 3), None).item() == 0.0
    lin = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0, 2.0]]))
    assert r1_penalty(lambda x, y=None: lin(x).view(-1), torch.randn(5, 3), None).item() == pytest.approx(9.0)


def test_one_sided_label_smoothing_by_hand():
    real, fake = torch.tensor([2.0]), torch.tensor([-1.0])
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    expected = 0.9 * sp(-2.0) + 0.1 * sp(2.0) + sp(-1.0)
    assert smoothed_gan_d(real, fake, 0.1).item() == pytest.approx(expected, rel=1e-6)
    assert smoothed_gan_d(real, fake, 0.0).item() == pytest.approx(sp(-2.0) + sp(-1.0), rel=1e-6)


def test_instance_noise_anneals_to_zero(tmp_path):
    trainer = Trainer(
        compose_config("model=mlp", "trainer.instance_noise=0.5", "trainer.instance_noise_steps=10"), tmp_path
    )
    x = torch.zeros(4, 1, 16, 16)
    assert trainer.game.noisy(x, trainer.game.noise_gen).std() > 0.3
    trainer.step = 10
    assert torch.equal(trainer.game.noisy(x, trainer.game.noise_gen), x)


@pytest.mark.parametrize(
    "switch",
    [
        "model.spectral_norm_d=true",
        "model.spectral_norm_g=true",
        "model.pack=2",
        "loss.r1_gamma=10",
        "loss.label_smoothing=0.1",
        "trainer.instance_noise=0.1",
        "model.mbstd=true",
        "optim.schedule=cosine",
        "loss.unroll_steps=2",
        "model.z_components=16",
    ],
)
@pytest.mark.parametrize("model", ["mlp", "dcgan"])
def test_each_stabiliser_trains(model, switch, tmp_path):
    trainer = Trainer(compose_config(f"model={model}", switch, "trainer.steps=3"), tmp_path)
    metrics = fit(trainer, tmp_path)
    assert all(math.isfinite(v) for k, v in metrics.items() if k.startswith("loss/"))


def test_stabilisers_keep_exact_resume(tmp_path):
    over = [
        "model=dcgan",
        "model.spectral_norm_d=true",
        "model.pack=2",
        "loss.r1_gamma=1",
        "trainer.instance_noise=0.1",
        "trainer.instance_noise_steps=4",
        "trainer.diffaugment=[color,translation,cutout]",
        "loss.unroll_steps=1",
        "model.z_components=8",
    ]
    straight = Trainer(compose_config(*over, "trainer.steps=6"), tmp_path / "a")
    fit(straight, tmp_path / "a")
    first = Trainer(compose_config(*over, "trainer.steps=3"), tmp_path / "b")
    fit(first, tmp_path / "b")
    from gan_cli.checkpoint import load_checkpoint

    resumed = Trainer(compose_config(*over, "trainer.steps=6"), tmp_path / "b")
    resumed.load_state_dict(load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt"), tmp_path)
    fit(resumed, tmp_path / "b")
    assert_same_state(straight, resumed)


def test_config_refuses_bad_combinations():
    from gan_cli.schema import ConfigError, check_config

    with pytest.raises(ConfigError, match="model.pack=3 must be >= 1 and divide"):
        check_config(compose_config("model.pack=3"))  # batch 8
    with pytest.raises(ConfigError, match="label_smoothing applies"):
        check_config(compose_config("loss=hinge", "loss.label_smoothing=0.1"))
    with pytest.raises(ConfigError, match="unconditional"):
        check_config(compose_config("model=cgan", "model.pack=2"))
    with pytest.raises(ConfigError, match="model.z_components must be >= 0"):
        check_config(compose_config("model.z_components=-1"))
    with pytest.raises(ConfigError, match="model.z_component_std must be > 0"):
        check_config(compose_config("model.z_components=4", "model.z_component_std=0"))


def test_minibatch_std_feature():
    from gan_cli.models.layers import MinibatchStd

    x = torch.randn(8, 3, 4, 4)
    out = MinibatchStd(group=4)(x)
    assert out.shape == (8, 4, 4, 4)
    same = MinibatchStd(group=4)(torch.ones(8, 3, 4, 4))
    assert same[:, 3].abs().max() < 1e-3  # identical samples: no spread
    cfg = compose_config("model=dcgan", "model.mbstd=true")
    _, d = build_models(cfg.model, cfg.data, cfg.loss.name)
    assert d(torch.randn(8, 1, 16, 16)).shape == (8,)


@pytest.mark.parametrize("schedule,expected", [("constant", 1.0), ("linear", 0.5), ("cosine", 0.5)])
def test_lr_schedules(schedule, expected, tmp_path):
    cfg = compose_config("model=mlp", f"optim.schedule={schedule}", "trainer.steps=4", "optim.lr_g=1e-3")
    trainer = Trainer(cfg, tmp_path)
    for _ in range(2):
        trainer.train_step()
    assert trainer.game.opt_g.param_groups[0]["lr"] == pytest.approx(1e-3 * expected)


def test_warmup_and_schedule_resume_exactly(tmp_path):
    from gan_cli.checkpoint import load_checkpoint

    over = [
        "model=mlp",
        "optim.schedule=cosine",
        "optim.warmup_steps=2",
        "model.mbstd=true",
        "trainer.steps=6",
    ]
    straight = Trainer(compose_config(*over), tmp_path / "a")
    fit(straight, tmp_path / "a")
    first = Trainer(compose_config(*over), tmp_path / "b")
    first._signal = 15  # as if SIGTERM arrived: stops after the first step with a checkpoint
    with pytest.raises(Exception, match="SIGTERM"):
        fit(first, tmp_path / "b")
    resumed = Trainer(compose_config(*over), tmp_path / "b")
    resumed.load_state_dict(load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt"), tmp_path)
    assert resumed.step == 1
    fit(resumed, tmp_path / "b")
    assert_same_state(straight, resumed)
    assert resumed.game.opt_g.param_groups[0]["lr"] == straight.game.opt_g.param_groups[0]["lr"]


def test_diffaugment_changes_what_it_should():
    from gan_cli.augment import color, cutout, diff_augment, translation

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 16, 16) * 2 - 1
    cut = cutout(x, gen)
    zeroed = (cut == 0).all(dim=1).flatten(1).sum(1)
    assert (
        zeroed.max() <= 8 * 8 and zeroed.min() >= 4 * 4
    )  # one half-size square, maybe clipped at the border
    moved = translation(x, gen)
    assert moved.shape == x.shape and not torch.equal(moved, x)
    assert not torch.equal(color(x, gen), x)
    leaf = x.clone().requires_grad_(True)
    diff_augment(leaf, ["color", "translation", "cutout"], gen).sum().backward()
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0  # differentiable: G gets gradients


def test_diffaugment_trains(tmp_path):
    cfg = compose_config("model=dcgan", "trainer.diffaugment=[translation,cutout,color]", "trainer.steps=3")
    metrics = fit(Trainer(cfg, tmp_path), tmp_path)
    assert all(math.isfinite(v) for k, v in metrics.items() if k.startswith("loss/"))


@pytest.mark.parametrize("model", ["mlp", "dcgan", "cgan"])
def test_feature_matching_trains_g_on_d_features(model, tmp_path):
    trainer = Trainer(
        compose_config(f"model={model}", "loss.feature_matching=true", "trainer.steps=3"), tmp_path
    )
    real = torch.randn(8, 1, 16, 16)
    y = torch.arange(8) % 10
    assert trainer.game.D.features(real, y).dim() == 2
    g0 = [p.clone() for p in trainer.game.G.parameters()]
    metrics = fit(trainer, tmp_path)
    assert math.isfinite(metrics["loss/g"]) and metrics["loss/g"] >= 0  # a squared distance
    assert all(not torch.equal(a, b) for a, b in zip(g0, trainer.game.G.parameters(), strict=True))


def test_unrolled_params_match_real_adam_steps():
    """The differentiable surrogate steps are exactly what torch's Adam would do with D's state."""
    from gan_cli.unroll import call_with, unrolled_params

    torch.manual_seed(0)
    d = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    opt = torch.optim.Adam(d.parameters(), lr=1e-2, betas=(0.5, 0.999), weight_decay=1e-3)
    batches = [torch.randn(32, 2) for _ in range(5)]

    def loss_on(out: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(-out).mean()

    for x in batches[:2]:  # some optimizer state to start from
        opt.zero_grad()
        loss_on(d(x)).backward()
        opt.step()
    it = iter(batches[2:])
    params = unrolled_params(d, opt, 3, lambda p: loss_on(call_with(d, p, next(it))))
    for x in batches[2:]:
        opt.zero_grad()
        loss_on(d(x)).backward()
        opt.step()
    for name, p in d.named_parameters():
        torch.testing.assert_close(params[name], p.detach(), rtol=1e-5, atol=1e-6)


def test_unrolling_changes_g_gradient_through_d_reaction(tmp_path):
    over = ["model=mlp", "data=ring8", "trainer.batch_size=64", "trainer.steps=2"]
    plain = Trainer(compose_config(*over), tmp_path / "a")
    unrolled = Trainer(compose_config(*over, "loss.unroll_steps=3"), tmp_path / "b")
    d_before = [p.clone() for p in unrolled.game.D.parameters()]
    fake = unrolled.game.G(unrolled.game._sample_z(64), None)
    g_stats = [b.clone() for b in unrolled.game.G.buffers()]
    logits = unrolled.game._unrolled_logits(fake, None)
    # the real D is untouched by the surrogate steps, and G's loss depends on D's reaction
    assert all(torch.equal(a, b) for a, b in zip(d_before, unrolled.game.D.parameters(), strict=True))
    # the surrogate batches leave G's BatchNorm statistics as they were
    assert g_stats and all(torch.equal(a, b) for a, b in zip(g_stats, unrolled.game.G.buffers(), strict=True))
    assert not torch.allclose(logits, unrolled.game.D(fake))
    (g_grad,) = torch.autograd.grad(
        unrolled.game.loss.g_loss(logits), [next(unrolled.game.G.parameters())], retain_graph=True
    )
    assert torch.isfinite(g_grad).all() and g_grad.abs().sum() > 0
    for trainer, path in ((plain, tmp_path / "a"), (unrolled, tmp_path / "b")):
        metrics = fit(trainer, path)
        assert all(math.isfinite(v) for k, v in metrics.items() if k.startswith("loss/"))
    assert not torch.equal(next(plain.game.G.parameters()), next(unrolled.game.G.parameters()))


def test_unrolling_refuses_what_it_cannot_unroll():
    from gan_cli.schema import ConfigError, check_config

    with pytest.raises(ConfigError, match="loss.unroll_steps needs optim.name=adam"):
        check_config(compose_config("loss.unroll_steps=2", "optim.name=rmsprop"))
    with pytest.raises(ConfigError, match="loss.unroll_steps applies to"):
        check_config(compose_config("loss=wgan_gp", "loss.unroll_steps=2"))


def test_top_k_refuses_fractions_outside_0_1_and_feature_matching():
    from gan_cli.schema import ConfigError, check_config

    for bad in ("loss.top_k=0", "loss.top_k=1.5", "loss.top_k_steps=-1"):
        with pytest.raises(ConfigError, match=r"loss.top_k must be in \(0, 1\]"):
            check_config(compose_config(bad))
    with pytest.raises(ConfigError, match="loss.top_k ranks samples"):
        check_config(compose_config("loss.top_k=0.5", "loss.feature_matching=true"))


def test_top_k_keeps_the_best_rated_fraction_annealed(tmp_path):
    trainer = Trainer(compose_config("model=mlp", "loss.top_k=0.5", "loss.top_k_steps=10"), tmp_path)
    logits = torch.tensor([0.3, -2.0, 1.5, 0.0, -0.5, 2.0, 1.0, -1.0])
    assert torch.equal(trainer.game._top_k(logits), logits)  # step 0: the whole batch
    trainer.step = 5
    assert len(trainer.game._top_k(logits)) == 6  # halfway: 75 %
    trainer.step = 10
    kept = trainer.game._top_k(logits)
    assert sorted(kept.tolist()) == pytest.approx([0.3, 1.0, 1.5, 2.0])
    # the dropped samples give G no gradient
    fake = torch.randn(8, 1, 16, 16, requires_grad=True)
    scores = trainer.game.D(fake)
    trainer.game.loss.g_loss(trainer.game._top_k(scores)).backward()
    worst = scores.detach().argsort()[:4]
    assert fake.grad[worst].abs().sum() == 0 and fake.grad.abs().sum() > 0
    trainer = Trainer(compose_config("model=mlp", "loss.top_k=0.5", "trainer.steps=3"), tmp_path / "run")
    metrics = fit(trainer, tmp_path / "run")
    assert math.isfinite(metrics["loss/g"])


def test_normal_prior_draws_exactly_what_randn_draws():
    # the default prior leaves every existing recipe's random stream (and its results) unchanged
    z = sample_latents(ModelConfig(z_dim=5), 7, torch.Generator().manual_seed(3))
    assert torch.equal(z, torch.randn(7, 5, generator=torch.Generator().manual_seed(3)))


def test_mixture_prior_clusters_on_fixed_means_in_equal_shares():
    model = ModelConfig(z_dim=2, z_components=10, z_component_std=0.02)
    means = component_means(2, 10)
    assert means.shape == (10, 2) and means.abs().max() <= 1
    assert torch.equal(means, component_means(2, 10).clone())  # fixed: the same in every call
    assert torch.cdist(means, means).add(torch.eye(10) * 9).min() > 0.1  # spread out, no near pairs
    z = sample_latents(model, 20_000, torch.Generator().manual_seed(0))
    dist, nearest = torch.cdist(z, means).min(dim=1)
    assert dist.max() < 6 * 0.02  # every code sits in one component
    share = torch.bincount(nearest, minlength=10) / len(z)
    assert share.min() > 0.09 and share.max() < 0.11
    offset = z - means[nearest]
    assert offset.std().item() == pytest.approx(0.02, rel=0.05)
    truncated = sample_latents(model, 2000, torch.Generator().manual_seed(1), truncation=0.5)
    t_dist = torch.cdist(truncated, means).min(dim=1).values
    assert t_dist.max() <= 0.5 * 0.02 * math.sqrt(2) + 1e-6  # truncation bounds the offset


def test_trainer_draws_its_noise_from_the_mixture_prior(tmp_path):
    cfg = compose_config("model=mlp", "data=ring8", "model.z_dim=2", "model.z_components=4")
    trainer = Trainer(cfg, tmp_path)
    means = component_means(2, 4)
    for z in (trainer.game.fixed_z, trainer.game._sample_z(64)):
        assert torch.cdist(z, means).min(dim=1).values.max() < 6 * 0.03


@pytest.mark.parametrize("bandwidths, expected", [([], [0.01, 0.02, 0.04, 0.08]), ([0.3], [0.3])])
def test_mmd_term_is_added_to_g_loss(bandwidths, expected, tmp_path):
    """loss/g = the loss variant's G loss + loss.mmd_weight x MMD^2(G's batch, the real batch),
    with bandwidths data.std x (1, 2, 4, 8) unless given."""
    cfg = compose_config(
        "model=mlp", "data=ring8", "loss=lsgan", "loss.mmd_weight=2.5", f"loss.mmd_bandwidths={bandwidths}"
    )
    game = Trainer(cfg, tmp_path).game
    assert game.mmd_bandwidths() == pytest.approx(expected)
    real = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    fake = game.G(torch.randn(8, cfg.model.z_dim, generator=torch.Generator().manual_seed(1)))
    game._last_real = real
    with torch.no_grad():
        want = game.loss.g_loss(game.D(fake.detach(), None).float()) + 2.5 * mmd2(fake, real, expected)
    loss_g, _, _ = game._g_step(fake, None)
    assert loss_g.item() == pytest.approx(want.item(), rel=1e-5)
