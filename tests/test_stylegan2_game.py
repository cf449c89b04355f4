"""The StyleGAN2 game: lazy R1 and path length on the right steps and scaled, Adam adjusted for
the lazy intervals, style mixing, the EMA's half-life, exact resume, bf16, config checks."""

from __future__ import annotations

import math

import pytest
import torch

from gan_cli.checkpoint import load_checkpoint
from gan_cli.games.stylegan2 import StyleGAN2, ema_beta, lazy_ratio
from gan_cli.schema import ConfigError, check_config, inert_settings
from gan_cli.trainer import Trainer
from tests.conftest import compose_config
from tests.test_training import fit

# a StyleGAN2 small enough for a fraction of a second per step: 8 px, 8 channels, 8-d z and w
SG2 = [
    "model=stylegan2",
    "data.image_size=8",
    "model.w_dim=8",
    "model.channel_base=64",
    "model.channel_max=8",
    "trainer.batch_size=8",
    "trainer.ema_kimg=0.01",
]


def sg2(*over: str, tmp_path=None, steps: int = 3) -> Trainer:
    cfg = compose_config(*SG2, f"trainer.steps={steps}", *over)
    return Trainer(cfg, tmp_path)


def test_model_choice_brings_the_reference_optimizer_and_game(tmp_path):
    cfg = compose_config("model=stylegan2")
    assert cfg.optim.lr_g == cfg.optim.lr_d == 0.0025 and list(cfg.optim.betas) == [0.0, 0.99]
    assert cfg.loss.name.value == "nonsaturating" and cfg.loss.r1_interval == 16 and cfg.loss.pl_weight == 2
    assert cfg.trainer.ema_kimg == 10 and cfg.trainer.ema_rampup == 0.05
    assert compose_config("model=stylegan2", "loss=hinge").loss.name.value == "hinge"  # explicit wins
    t = sg2(tmp_path=tmp_path)
    assert isinstance(t.game, StyleGAN2)
    assert t.game.fields[-3:] == ("loss/r1", "loss/pl", "pl_mean")


def test_lazy_intervals_scale_adams_rate_and_betas(tmp_path):
    assert lazy_ratio(16) == 16 / 17 and lazy_ratio(4) == 0.8
    t = sg2("loss.r1_gamma=1", "loss.pl_weight=2", tmp_path=tmp_path)
    d, g = t.game.opt_d.param_groups[0], t.game.opt_g.param_groups[0]
    assert d["lr"] == pytest.approx(0.0025 * 16 / 17) and g["lr"] == pytest.approx(0.0025 * 0.8)
    assert d["betas"] == (0.0, pytest.approx(0.99 ** (16 / 17)))
    assert g["betas"] == (0.0, pytest.approx(0.99**0.8))
    # as the reference: the intervals scale Adam whether or not the regulariser's weight is 0
    off = sg2("loss.r1_gamma=0", "loss.pl_weight=0", tmp_path=tmp_path / "off")
    assert off.game.opt_d.param_groups[0]["lr"] == pytest.approx(0.0025 * 16 / 17)
    assert off.game.opt_g.param_groups[0]["betas"] == (0.0, pytest.approx(0.99**0.8))


def _adam_steps(opt: torch.optim.Optimizer) -> int:
    return int(next(iter(opt.state.values()))["step"])


def test_lazy_regularisers_run_on_their_steps_as_extra_updates(tmp_path):
    # 5 steps; R1 every 2 D steps (steps 0, 2, 4), path length every 3 G steps (steps 0, 3)
    t = sg2("loss.r1_gamma=1", "loss.r1_interval=2", "loss.pl_interval=3", tmp_path=tmp_path, steps=5)
    fit(t, tmp_path)
    assert _adam_steps(t.game.opt_d) == 5 + 3
    assert _adam_steps(t.game.opt_g) == 5 + 2
    off = sg2("loss.r1_gamma=0", "loss.pl_weight=0", tmp_path=tmp_path / "off", steps=5)
    fit(off, tmp_path / "off")
    assert _adam_steps(off.game.opt_d) == _adam_steps(off.game.opt_g) == 5


def test_r1_penalty_is_weighted_gamma_over_two_times_the_interval(tmp_path):
    t = sg2("loss.r1_gamma=3", "loss.r1_interval=4", tmp_path=tmp_path)
    game = t.game
    real, _ = game.batches.next()
    x = real.detach().clone().requires_grad_(True)
    (grads,) = torch.autograd.grad(game.D(x).sum(), x)
    expected = grads.square().sum(dim=(1, 2, 3)).mean()
    seen = []
    game.update = lambda params, opt, scaler, loss: seen.append(loss.detach()) or torch.zeros(())
    penalty = game._r1_step(real, None)
    assert penalty == pytest.approx(float(expected), rel=1e-5)
    assert float(seen[0]) == pytest.approx(float(expected) * 3 / 2 * 4, rel=1e-5)


def test_path_length_penalty_follows_its_definition(tmp_path):
    t = sg2(
        "loss.pl_weight=2",
        "loss.pl_interval=4",
        "loss.pl_decay=0.5",
        "loss.style_mixing=0",
        tmp_path=tmp_path,
    )
    game = t.game
    state = game.noise_gen.get_state()
    seen = []
    game.update = lambda params, opt, scaler, loss: seen.append(loss.detach()) or torch.zeros(())
    penalty = game._path_length_step(4, None)
    # the same draws again, by hand: lengths ||J^T y|| with y ~ N(0, I) / sqrt(H W)
    game.noise_gen.set_state(state)
    from gan_cli.latent import sample_latents

    z = sample_latents(game.cfg.model, 4, game.noise_gen)
    ws = game.G.mapping(z, None, update_w_avg=False)
    img = game.G.synthesis(ws, "random", game.noise_gen)
    y = torch.randn(img.shape, generator=game.noise_gen) / math.sqrt(8 * 8)
    (g,) = torch.autograd.grad((img * y).sum(), ws)
    lengths = g.square().sum(2).mean(1).sqrt()
    mean = 0.5 * lengths.mean()  # lerp from 0 halfway (pl_decay 0.5)
    assert float(game.pl_mean) == pytest.approx(float(mean), rel=1e-4)
    assert float(penalty) == pytest.approx(float((lengths - mean).square().mean()), rel=1e-4)
    assert float(seen[0]) == pytest.approx(float(penalty) * 2 * 4, rel=1e-5)


def test_style_mixing_takes_the_later_layers_from_a_second_code(tmp_path):
    game = sg2("loss.style_mixing=1", tmp_path=tmp_path).game
    z = torch.randn(4, 8)
    torch.manual_seed(0)
    _, ws = game._run_g(z, None)
    own = game.G.mapping(z, None, update_w_avg=False)
    same = (ws == own).all(dim=2).all(dim=0)  # per layer
    cutoff = int(same.long().argmin())
    assert 1 <= cutoff < ws.shape[1]
    assert same[:cutoff].all() and not same[cutoff:].any()
    game = sg2("loss.style_mixing=0", tmp_path=tmp_path / "none").game
    _, ws = game._run_g(z, None)
    assert torch.equal(ws, game.G.mapping(z, None, update_w_avg=False))


def test_ema_half_life_and_ramp():
    # after half_life images the EMA weight of the start has halved
    beta = ema_beta(10, 0, 10**6, 32)
    assert beta ** (10_000 / 32) == pytest.approx(0.5)
    # the ramp: 0.05 x 3,200 images seen = 160 images of half-life
    assert ema_beta(10, 0.05, 3200, 32) == pytest.approx(0.5 ** (32 / 160))


def test_stopped_and_resumed_equals_straight_with_ada_w_avg_and_path_length(tmp_path):
    over = [
        "loss.r1_gamma=1",
        "loss.r1_interval=2",
        "loss.pl_interval=2",
        "trainer.ada=true",
        "trainer.ada_interval=1",
        "trainer.ada_kimg=0.01",
        "trainer.ada_p=0.3",
        "trainer.log_every=2",
    ]
    straight = sg2(*over, tmp_path=tmp_path / "a", steps=7)
    fit(straight, tmp_path / "a")
    first = sg2(*over, tmp_path=tmp_path / "b", steps=3)
    fit(first, tmp_path / "b")
    resumed = sg2(*over, tmp_path=tmp_path / "b", steps=7)
    resumed.load_state_dict(load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt"), tmp_path)
    fit(resumed, tmp_path / "b")
    a, b = straight.state_dict(gather=False), resumed.state_dict(gather=False)
    for net in ("g", "d", "g_ema"):
        for k, v in a["models"][net].items():
            assert torch.equal(v, b["models"][net][k]), f"{net}.{k}"
    assert torch.equal(straight.game.G.mapping.w_avg, resumed.game.G.mapping.w_avg)
    assert float(straight.game.G.mapping.w_avg.abs().sum()) > 0
    assert torch.equal(straight.game.pl_mean, resumed.game.pl_mean) and float(straight.game.pl_mean) > 0
    assert straight.game.ada.p == resumed.game.ada.p and straight.game.ada.p != 0.3
    for k, v in a["optim"]["d"]["state"].items():
        assert torch.equal(v["exp_avg"], b["optim"]["d"]["state"][k]["exp_avg"])


def test_bf16_autocast_trains_with_finite_losses(tmp_path):
    t = sg2("trainer.precision=bf16", "loss.r1_interval=1", "loss.pl_interval=1", tmp_path=tmp_path, steps=3)
    summary = fit(t, tmp_path)
    for key in ("loss/d", "loss/g", "loss/r1", "loss/pl"):
        assert math.isfinite(summary[key]), key


def test_conditional_variant_takes_labels_into_mapping_and_d(tmp_path):
    t = sg2("model.cond=projection", tmp_path=tmp_path, steps=2)
    assert t.game.G.mapping.embed is not None and t.game.D.mapping is not None
    fit(t, tmp_path)
    assert t.game.fixed_y is not None  # one grid row per class
    with pytest.raises(ConfigError, match="model.cond=concat"):
        check_config(compose_config(*SG2, "model.cond=concat"))


@pytest.mark.parametrize(
    "override,text",
    [
        ("data.image_size=12", "power of two >= 8"),
        ("loss=wgan_gp", "loss.gp_weight"),
        ("model.pack=2", "model.pack"),
        ("loss.n_critic=2", "one D step per G step"),
        ("loss.g_steps=2", "one G step per D step"),
        ("trainer.precision=fp16", "no fp16 overflow guards"),
        ("trainer.compile=true", "trainer.compile"),
        ("loss.label_smoothing=0.1", "loss.label_smoothing"),
    ],
)
def test_options_the_game_does_not_have_are_refused(override, text):
    with pytest.raises(ConfigError, match=text):
        check_config(compose_config(*SG2, override))


def test_fine_tuning_starts_from_a_run_and_refuses_another_architecture(tmp_path):
    from gan_cli.checkpoint import CheckpointError, load_init_weights

    base = sg2(tmp_path=tmp_path / "base", steps=2)
    fit(base, tmp_path / "base")
    # the run's last.pt: G, D and G_ema all start from it, the optimizers and step fresh
    weights, path = load_init_weights(str(tmp_path / "base"))
    assert path.name == "last.pt"
    tuned = sg2("data.channels=1", tmp_path=tmp_path / "tuned")
    assert tuned.game.init_from(weights) == ["G", "D", "G_ema"]
    for name in ("G", "D", "G_ema"):
        a, b = getattr(base.game, name).state_dict(), getattr(tuned.game, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert tuned.step == 0 and not tuned.game.opt_g.state
    # generator.pt: the EMA weights start G and G_ema, D stays fresh
    weights, _ = load_init_weights(str(tmp_path / "base" / "checkpoints" / "generator.pt"))
    assert sg2(tmp_path=tmp_path / "g").game.init_from(weights) == ["G", "G_ema"]
    # another architecture: the mismatched tensors and their shapes are named
    wider = sg2("model.channel_max=16", "model.channel_base=128", tmp_path=tmp_path / "wide")
    with pytest.raises(
        CheckpointError, match=r"its G does not fit .*\(8, 8, 3, 3\) in the file, \(16, 16, 3, 3\) here"
    ):
        wider.game.init_from(load_init_weights(str(tmp_path / "base"))[0])


@pytest.mark.slow  # subprocess training runs; the API-level tests above stay in the default run
def test_fine_tuning_works_for_every_model_from_the_command_line(tmp_path):
    from tests.conftest import TINY, run_cli

    common = [*TINY, "model=dcgan", "trainer.steps=2"]
    first = run_cli(*common, f"hydra.run.dir={tmp_path / 'a'}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    tuned = run_cli(
        *common,
        "data.size=32",
        f"init_from={tmp_path / 'a'}",
        f"hydra.run.dir={tmp_path / 'b'}",
        cwd=tmp_path,
    )
    assert tuned.returncode == 0, tuned.stderr
    assert f"Fine-tuning: G, D, G_ema start from {tmp_path / 'a' / 'checkpoints' / 'last.pt'}" in tuned.stdout
    bad = run_cli(
        *common,
        "model.g_channels=8",
        f"init_from={tmp_path / 'a'}",
        f"hydra.run.dir={tmp_path / 'c'}",
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "its G does not fit the G this config builds" in bad.stderr + bad.stdout
    missing = run_cli(*common, f"init_from={tmp_path / 'nowhere'}", cwd=tmp_path)
    assert (
        missing.returncode == 2
        and "no such run, checkpoint or generator.pt" in missing.stderr + missing.stdout
    )


@pytest.fixture(scope="module")
def sg2_run(tmp_path_factory):
    from tests.conftest import TINY, run_cli

    path = tmp_path_factory.mktemp("sg2")
    done = run_cli(*TINY, *SG2, "trainer.steps=2", f"hydra.run.dir={path / 'run'}", cwd=path)
    assert done.returncode == 0, done.stderr
    return path / "run"


def test_gan_sample_truncates_in_w_walks_in_w_and_draws_the_style_mixing_grid(sg2_run, tmp_path):
    import numpy as np

    from gan_cli.commands import SampleCommand, sample
    from gan_cli.sampling import load_generator, mapped, synthesise

    gen = load_generator(sg2_run, torch.device("cpu"))
    # psi = 0: every sample is w_avg's image (constant noise: identical images)
    sample(SampleCommand(run=str(sg2_run), n=6, psi=0.0, out=str(tmp_path / "avg.npy")))
    avg = np.load(tmp_path / "avg.npy")
    assert (avg == avg[:1]).all()
    w_avg_image = synthesise(gen, gen.g.mapping.w_avg.expand(1, gen.g.num_ws, -1))
    assert np.array_equal(
        avg[0], ((w_avg_image[0].permute(1, 2, 0) + 1) * 127.5 + 0.5).clamp(0, 255).byte().numpy()
    )
    # psi = 1 is plain sampling; the same seed gives the same samples
    sample(SampleCommand(run=str(sg2_run), n=6, out=str(tmp_path / "a.npy")))
    sample(SampleCommand(run=str(sg2_run), n=6, psi=1.0, out=str(tmp_path / "b.npy")))
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    # walks in w: each row's ends are its two codes' images, the middle the image of the mean w
    sample(SampleCommand(run=str(sg2_run), n=10, interpolate=5, out=str(tmp_path / "walk.npy")))
    walk = np.load(tmp_path / "walk.npy")
    assert walk.shape == (10, 8, 8, 1)
    from gan_cli.latent import sample_latents

    rng = torch.Generator().manual_seed(0)
    a, b = (sample_latents(gen.model, 2, rng) for _ in range(2))
    mid = synthesise(gen, (mapped(gen, a, None) + mapped(gen, b, None)) / 2)
    as_uint8 = ((mid.permute(0, 2, 3, 1) + 1) * 127.5 + 0.5).clamp(0, 255).byte().numpy()
    assert np.array_equal(walk[2], as_uint8[0]) and np.array_equal(walk[7], as_uint8[1])
    # the style-mixing grid: (K+1) x (K+1) cells, blank corner
    sample(SampleCommand(run=str(sg2_run), style_mix=3, out=str(tmp_path / "mix.npy")))
    mix = np.load(tmp_path / "mix.npy")
    assert mix.shape == (16, 8, 8, 1) and (mix[0] == 0).all()
    from gan_cli.errors import CommandError
    from gan_cli.sampling import style_mixing_grid

    grid = style_mixing_grid(gen, a, b, 2)
    assert torch.allclose(  # batched differently: equal up to float rounding
        grid[4],  # row 1 (code a[0]): [a[0]'s image, a[0] x b[0], a[0] x b[1]]
        synthesise(gen, torch.cat([mapped(gen, a, None)[:1, :2], mapped(gen, b, None)[:1, 2:]], 1))[0],
        atol=1e-5,
    )
    with pytest.raises(CommandError, match="mix_cutoff must be a layer between 1 and"):
        sample(SampleCommand(run=str(sg2_run), style_mix=2, mix_cutoff=99, out=str(tmp_path / "x.png")))


@pytest.mark.slow  # subprocess training runs; the API-level tests above stay in the default run
def test_w_space_options_are_refused_for_other_models(tmp_path):
    from gan_cli.commands import SampleCommand, sample
    from gan_cli.errors import CommandError
    from tests.conftest import TINY, run_cli

    done = run_cli(*TINY, "model=dcgan", "trainer.steps=1", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with pytest.raises(CommandError, match=r"psi=: w space is a style-based generator's \(model=stylegan2\)"):
        sample(SampleCommand(run=str(tmp_path / "run"), psi=0.7, out=str(tmp_path / "x.png")))


def test_minibatch_std_group_follows_the_config(tmp_path):
    """model.mbstd_group sets D's minibatch-std groups (the reference's cifar config: 32); other
    models name it among the settings that do nothing in their run."""
    t = sg2("model.mbstd_group=8", tmp_path=tmp_path)
    assert t.game.D.epilogue.mbstd.group == 8
    assert sg2(tmp_path=tmp_path / "default").game.D.epilogue.mbstd.group == 4
    assert compose_config("experiment=stylegan2_cifar10").model.mbstd_group == 32
    notes = inert_settings(compose_config("model=dcgan", "model.mbstd_group=8"))
    assert any(n.startswith("model.mbstd_group") and "stylegan2's" in n for n in notes), notes


def test_g_output_follows_the_config_and_old_files_keep_the_linear_output(tmp_path):
    """model.g_output: the reference's linear sum or tanh; a generator file written before the key
    existed rebuilds with the linear output it was trained with; other models name it inert."""
    from gan_cli.sampling import generator_from_state

    assert compose_config("model=stylegan2").model.g_output.value == "tanh"
    assert compose_config("experiment=stylegan2_cifar10").model.g_output.value == "linear"
    t = sg2("model.g_output=linear", tmp_path=tmp_path / "linear", steps=1)
    assert t.game.G.synthesis.output == "linear"
    t = sg2("model.g_output=tanh", tmp_path=tmp_path / "tanh", steps=1)
    assert t.game.G.synthesis.output == "tanh"
    fit(t, tmp_path / "tanh")
    state = torch.load(tmp_path / "tanh" / "checkpoints" / "generator.pt", weights_only=True)
    assert state["model"]["g_output"] == "tanh"
    assert generator_from_state(state, tmp_path, torch.device("cpu")).g.synthesis.output == "tanh"
    del state["model"]["g_output"]  # as a file of an earlier version
    assert generator_from_state(state, tmp_path, torch.device("cpu")).g.synthesis.output == "linear"
    notes = inert_settings(compose_config("model=dcgan", "model.g_output=tanh"))
    assert any(n.startswith("model.g_output") and "stylegan2's" in n for n in notes), notes
    from gan_cli.cli import check_overrides
    from gan_cli.errors import UserError

    with pytest.raises(UserError, match=r"model.g_output=sigmoid: .*expected one of \[linear, tanh\]"):
        check_overrides(["model=stylegan2", "model.g_output=sigmoid"])
