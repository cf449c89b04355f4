"""Latent priors (model.z_prior): their laws, their composition with the mixture prior, and that
the choice reaches every place a z comes from (training, grids, resume, gan-sample, gan-eval)."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from gan_cli.latent import component_means, interpolate, sample_latents
from gan_cli.schema import ConfigError, ModelConfig, ZPrior, check_config, inert_settings
from gan_cli.trainer import Trainer
from tests.conftest import compose_config
from tests.test_resume import assert_same_state
from tests.test_training import fit

N = 200_000  # codes per law check: the standard error of a variance is about 0.3 % of it


def draw(n: int = N, seed: int = 0, truncation: float = 0.0, **model) -> torch.Tensor:
    return sample_latents(ModelConfig(**model), n, torch.Generator().manual_seed(seed), truncation)


def truncated_normal_variance(t: float) -> float:
    """Var of N(0, 1) conditioned on |z| <= t: 1 - 2 t phi(t) / (2 Phi(t) - 1)."""
    phi = math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    return 1 - 2 * t * phi / math.erf(t / math.sqrt(2))


# ---- the laws ----------------------------------------------------------------------------------
def test_uniform_codes_lie_in_the_cube_with_its_mean_and_variance():
    z = draw(z_dim=4, z_prior="uniform")
    assert z.shape == (N, 4) and z.dtype == torch.float32
    assert z.min() >= -1 and z.max() <= 1
    assert z.min() < -0.999 and z.max() > 0.999  # the whole cube, not a part of it
    assert z.mean(0).abs().max() < 0.005  # sd of a mean: 0.577 / sqrt(N) = 0.0013
    assert z.var(0).tolist() == pytest.approx([1 / 3] * 4, rel=0.01)


@pytest.mark.parametrize("bound", [1.0, 2.0])
def test_truncated_codes_stay_within_the_bound_with_the_truncated_normal_variance(bound):
    z = draw(z_dim=4, z_prior="truncated", z_truncation=bound)
    assert z.abs().max() <= bound
    assert z.abs().max() > 0.99 * bound  # cut at the bound, not below it
    assert z.mean(0).abs().max() < 0.01
    # 0.2911 at 1, 0.7737 at 2: far from the normal's 1, so a missing cut would fail
    assert z.var(0).tolist() == pytest.approx([truncated_normal_variance(bound)] * 4, rel=0.015)


def test_normal_prior_is_todays_stream_bit_for_bit():
    # runs from before z_prior existed keep their noise: plain randn, and the mixture's and the
    # truncation trick's draws in the order they always had
    z = draw(7, seed=3, z_dim=5)
    assert torch.equal(z, torch.randn(7, 5, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(draw(7, seed=3, z_dim=5, z_prior="normal"), z)

    gen = torch.Generator().manual_seed(4)
    which = torch.randint(0, 6, (50,), generator=gen)
    old_mixture = component_means(3, 6)[which] + 0.03 * torch.randn(50, 3, generator=gen)
    assert torch.equal(draw(50, seed=4, z_dim=3, z_components=6), old_mixture)

    gen = torch.Generator().manual_seed(5)
    old_truncated = torch.randn(300, 4, generator=gen)
    while (bad := old_truncated.abs() > 0.7).any():
        old_truncated[bad] = torch.randn(int(bad.sum()), generator=gen)
    assert torch.equal(draw(300, seed=5, z_dim=4, truncation=0.7), old_truncated)


# ---- composition with the mixture prior --------------------------------------------------------
@pytest.mark.parametrize(
    "prior,bound,variance",
    [("uniform", 1.0, 1 / 3), ("truncated", 1.5, truncated_normal_variance(1.5)), ("normal", None, 1.0)],
)
def test_the_prior_shapes_each_mixture_components_offset(prior, bound, variance):
    std = 0.02
    z = draw(z_dim=2, z_components=8, z_component_std=std, z_prior=prior, z_truncation=1.5)
    means = component_means(2, 8)
    nearest = torch.cdist(z, means).argmin(dim=1)
    share = torch.bincount(nearest, minlength=8) / len(z)
    assert share.min() > 0.115 and share.max() < 0.135  # equal shares of 1/8
    offset = (z - means[nearest]) / std
    if bound is not None:
        assert offset.abs().max() <= bound + 1e-4  # float rounding of mean + std * offset
    assert offset.var(0).tolist() == pytest.approx([variance] * 2, rel=0.02)


# ---- the truncation trick under each prior ------------------------------------------------------
def test_truncation_under_uniform_and_truncated_priors():
    shrunk = draw(z_dim=2, z_prior="uniform", truncation=0.5)
    assert shrunk.abs().max() <= 0.5 and shrunk.var(0).tolist() == pytest.approx([0.25 / 3] * 2, rel=0.01)
    tighter = draw(z_dim=2, z_prior="truncated", z_truncation=2.0, truncation=1.0)
    assert tighter.var(0).tolist() == pytest.approx([truncated_normal_variance(1.0)] * 2, rel=0.015)
    with pytest.raises(ValueError, match=r"truncation=1 does nothing under this run's uniform prior"):
        draw(4, z_dim=2, z_prior="uniform", truncation=1.0)
    with pytest.raises(ValueError, match=r"already cut at model.z_truncation=2"):
        draw(4, z_dim=2, z_prior="truncated", truncation=2.5)


def test_walks_are_straight_in_the_uniform_cube_and_spherical_for_normal_codes():
    a, b = draw(3, seed=1, z_dim=16, z_prior="uniform"), draw(3, seed=2, z_dim=16, z_prior="uniform")
    half = torch.tensor([[0.5]])
    assert torch.allclose(interpolate(ModelConfig(z_prior=ZPrior.uniform), a, b, half), (a + b) / 2)
    a, b = draw(3, seed=1, z_dim=16), draw(3, seed=2, z_dim=16)
    mid = interpolate(ModelConfig(), a, b, half)
    # slerp: about the norm of its ends, where the straight midpoint of two normal codes falls short
    assert (mid.norm(dim=1) > 0.9 * torch.minimum(a.norm(dim=1), b.norm(dim=1))).all()


# ---- config checks ------------------------------------------------------------------------------
def test_config_checks_of_the_prior_keys():
    with pytest.raises(ConfigError, match=r"model.z_truncation must be > 0 .*got 0.0"):
        check_config(compose_config("model.z_prior=truncated", "model.z_truncation=0"))
    with pytest.raises(Exception, match=r"model.z_prior=gaussian") as err:
        compose_config("model.z_prior=gaussian")
    assert "expected one of [normal, uniform, truncated]" in str(err.value.__cause__)
    assert "full_key: model.z_prior" in str(err.value.__cause__)
    notes = inert_settings(compose_config("model.z_truncation=1.5"))
    assert "model.z_truncation=1.5 has no effect with model.z_prior=normal" in " ".join(notes)
    assert not any("z_truncation" in n for n in inert_settings(compose_config("model.z_prior=truncated")))


def test_resume_refuses_a_different_prior(monkeypatch):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from gan_cli import resume
    from gan_cli.games.gan import config_dict
    from gan_cli.resume import ResumeError, resume_config

    saved = config_dict(compose_config("model.z_prior=uniform"))
    composed = OmegaConf.structured(compose_config("model.z_prior=normal"))
    overrides = OverridesParser.create().parse_overrides(["model.z_prior=normal"])
    monkeypatch.setattr(resume, "_parsed_task_overrides", lambda *_: overrides)  # as on a command line
    with pytest.raises(
        ResumeError, match=r"model.z_prior: checkpoint has 'uniform', this command asks for 'normal'"
    ):
        resume_config(composed, saved, "run")


# ---- every z of the tool comes from the prior ------------------------------------------------------
@pytest.fixture(scope="module")
def uniform_run(tmp_path_factory):
    """A 2-step dcgan run with a uniform prior, its checkpoint and exported generator (2 batches
    re-estimate the EMA generator's BatchNorm statistics instead of 50: the cost of this test)."""
    root = tmp_path_factory.mktemp("uniform")
    cfg = compose_config(
        "model=dcgan", "model.z_prior=uniform", "trainer.steps=2", "trainer.ema_bn_batches=2"
    )
    trainer = Trainer(cfg, root)
    fit(trainer, root)
    return trainer, root


def test_the_prior_reaches_training_noise_and_the_fixed_noise_grid(uniform_run):
    trainer, root = uniform_run
    model, seed = trainer.cfg.model, trainer.cfg.trainer.seed
    fixed = sample_latents(model, trainer.cfg.trainer.n_samples, torch.Generator().manual_seed(seed + 2))
    assert torch.equal(trainer.game.fixed_z, fixed)
    assert fixed.abs().max() <= 1 and fixed.var().item() == pytest.approx(1 / 3, rel=0.3)
    from gan_cli.checkpoint import load_checkpoint

    assert torch.equal(load_checkpoint(root / "checkpoints" / "last.pt")["noise"]["z"], fixed)
    z = trainer.game._sample_z(4000)
    assert z.abs().max() <= 1 and z.var().item() == pytest.approx(1 / 3, rel=0.05)


def test_the_prior_reaches_gan_sample_and_gan_eval(uniform_run, tmp_path, monkeypatch):
    from gan_cli import metrics, sampling
    from gan_cli.commands import CommandError, SampleCommand, sample

    _, root = uniform_run
    seen = []
    real_generate = sampling.generate

    def spy(gen, z, y, batch_size=256, *args, **kwargs):
        seen.append(z)
        return real_generate(gen, z, y, batch_size, *args, **kwargs)

    monkeypatch.setattr(sampling, "generate", spy)
    monkeypatch.setattr(metrics, "generate", spy)
    model = ModelConfig(z_dim=8, z_prior=ZPrior.uniform)  # the run's z_dim (TINY)

    sample(SampleCommand(run=str(root), n=6, out=str(tmp_path / "a.npy"), seed=3))
    assert torch.equal(seen[-1], sample_latents(model, 6, torch.Generator().manual_seed(3)))
    sample(SampleCommand(run=str(root), n=6, out=str(tmp_path / "b.npy"), truncation=0.5))
    assert seen[-1].abs().max() <= 0.5
    sample(SampleCommand(run=str(root), n=6, out=str(tmp_path / "c.npy"), interpolate=3))
    walks = seen[-1].view(2, 3, 8)  # straight lines inside the cube: the middle is the mean of the ends
    assert torch.allclose(walks[:, 1], (walks[:, 0] + walks[:, 2]) / 2, atol=1e-6)
    assert walks.abs().max() <= 1
    with pytest.raises(CommandError, match=r"truncation=1 does nothing under this run's uniform prior"):
        sample(SampleCommand(run=str(root), n=6, out=str(tmp_path / "d.npy"), truncation=1.0))

    gen = sampling.load_generator(root, torch.device("cpu"))
    metrics._fake(gen, 10, 7, 10)  # gan-eval's generated samples
    assert torch.equal(seen[-1], sample_latents(model, 10, torch.Generator().manual_seed(7)))


def test_uniform_prior_resumes_exactly(tmp_path):
    over = ["model=dcgan", "model.z_prior=uniform", "trainer.log_every=2", "trainer.ema_bn_batches=2"]
    straight = Trainer(compose_config(*over, "trainer.steps=4"), tmp_path / "a")
    fit(straight, tmp_path / "a")
    first = Trainer(compose_config(*over, "trainer.steps=2"), tmp_path / "b")
    fit(first, tmp_path / "b")
    from gan_cli.checkpoint import load_checkpoint

    resumed = Trainer(compose_config(*over, "trainer.steps=4"), tmp_path / "b")
    resumed.load_state_dict(load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt"), tmp_path)
    assert resumed.step == 2
    fit(resumed, tmp_path / "b")
    assert_same_state(straight, resumed)
    assert straight.game.fixed_z.abs().max() <= 1  # the uniform prior was in force
