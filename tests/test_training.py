"""Every model x loss pair trains: finite losses, every parameter of G and D changes."""

import copy
import json

import pytest
import torch

from gan_cli.checkpoint import CheckpointWriter
from gan_cli.logs import RunLogger
from gan_cli.schema import ema_decay_at, ema_decay_first_step, inert_settings
from gan_cli.trainer import Trainer
from tests.conftest import compose_config

MODELS = ["mlp", "dcgan", "cgan"]
LOSSES = ["minimax", "nonsaturating", "wgan", "wgan_gp", "hinge", "lsgan"]


def fit(trainer: Trainer, tmp_path) -> dict:
    t = trainer.cfg.trainer
    logger = RunLogger(tmp_path, t.steps, trainer.step, progress=False, tensorboard=t.tensorboard)
    try:
        return trainer.fit(logger, CheckpointWriter(tmp_path / "checkpoints", t.keep_ckpts))
    finally:
        logger.close()


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("model", MODELS)
def test_pair_trains(model, loss, tmp_path):
    cfg = compose_config(f"model={model}", f"loss={loss}", "trainer.steps=2")
    trainer = Trainer(cfg, tmp_path)
    g0 = copy.deepcopy(trainer.game.G.state_dict())
    d0 = copy.deepcopy(trainer.game.D.state_dict())
    fit(trainer, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    for r in records:
        for key in ("loss/d", "loss/g", "d/real", "d/fake", "grad_norm/d", "grad_norm/g", "diversity"):
            assert r[key] is not None and torch.isfinite(torch.tensor(r[key])), (key, r)
    for name, p in trainer.game.G.named_parameters():
        assert not torch.equal(p, g0[name]), f"G.{name} did not change"
    last_bias = [n for n, _ in trainer.game.D.named_parameters() if n.endswith("bias")][-1:]
    for name, p in trainer.game.D.named_parameters():
        if loss in ("wgan", "wgan_gp", "hinge") and name in last_bias:
            # losses linear in the logits (hinge: while every sample is inside the margin) give
            # the output bias exactly zero gradient: E[D(fake)] - E[D(real)] does not depend on it
            continue
        assert not torch.equal(p, d0[name]), f"D.{name} did not change"


def test_wgan_clips_critic(tmp_path):
    cfg = compose_config("model=mlp", "loss=wgan", "trainer.steps=2")
    trainer = Trainer(cfg, tmp_path)
    fit(trainer, tmp_path)
    assert max(p.abs().max().item() for p in trainer.game.D.parameters()) <= 0.01 + 1e-7


def test_n_critic_draws_more_real_batches(tmp_path):
    cfg = compose_config("model=mlp", "loss=wgan_gp", "trainer.steps=2", "data.size=1000")
    trainer = Trainer(cfg, tmp_path)
    fit(trainer, tmp_path)
    assert trainer.game.batches.pos == 2 * 5 * cfg.trainer.batch_size


def test_g_steps_updates_g_again_on_the_same_z(tmp_path):
    """loss.g_steps=2: two Adam steps of G per step, one of D, no extra real batch or noise draw
    (the second G step re-runs G on the first one's z)."""
    runs = {}
    for k in (1, 2):
        cfg = compose_config("model=dcgan", "trainer.steps=3", f"loss.g_steps={k}")
        runs[k] = Trainer(cfg, tmp_path / str(k))
        fit(runs[k], tmp_path / str(k))
    one, two = runs[1].game, runs[2].game
    adam_step = lambda opt: int(next(iter(opt.state_dict()["state"].values()))["step"])  # noqa: E731
    assert (adam_step(one.opt_g), adam_step(one.opt_d)) == (3, 3)
    assert (adam_step(two.opt_g), adam_step(two.opt_d)) == (6, 3)
    assert one.batches.pos == two.batches.pos == 3 * runs[1].cfg.trainer.batch_size
    assert torch.equal(one.noise_gen.get_state(), two.noise_gen.get_state())
    assert not torch.equal(next(one.G.parameters()), next(two.G.parameters()))


def test_g_steps_until_returns_to_one_g_step(tmp_path):
    """loss.g_steps=2 with loss.g_steps_until=2: two G updates at steps 0 and 1, one from step 2 on."""
    cfg = compose_config("model=dcgan", "trainer.steps=5", "loss.g_steps=2", "loss.g_steps_until=2")
    trainer = Trainer(cfg, tmp_path)
    fit(trainer, tmp_path)
    adam_step = lambda opt: int(next(iter(opt.state_dict()["state"].values()))["step"])  # noqa: E731
    assert (adam_step(trainer.game.opt_g), adam_step(trainer.game.opt_d)) == (2 * 2 + 3, 5)
    game = trainer.game
    counts = []
    for game.step in range(4):
        counts.append(game.g_steps_now())
    assert counts == [2, 2, 1, 1]
    notes = " ".join(inert_settings(compose_config("model=dcgan", "loss.g_steps_until=100")))
    assert "loss.g_steps_until=100 has no effect with loss.g_steps=1" in notes


def test_loss_sets_optimizer_defaults():
    wgan = compose_config("loss=wgan")
    assert wgan.optim.name.value == "rmsprop" and wgan.loss.n_critic == 5
    assert wgan.optim.lr_d == pytest.approx(5e-5)
    gp = compose_config("loss=wgan_gp")
    assert list(gp.optim.betas) == [0.0, 0.9] and gp.optim.lr_g == pytest.approx(1e-4)
    assert gp.loss.gp_weight == 10.0
    cmd = compose_config("loss=hinge", "optim.betas=[0.0,0.9]", "optim.lr_d=4e-4")
    assert list(cmd.optim.betas) == [0.0, 0.9] and cmd.optim.lr_d == pytest.approx(4e-4)


def test_separate_learning_rates(tmp_path):
    cfg = compose_config("optim.lr_g=1e-3", "optim.lr_d=3e-4", "optim.betas=[0.0,0.9]")
    trainer = Trainer(cfg, tmp_path)
    assert trainer.game.opt_g.param_groups[0]["lr"] == pytest.approx(1e-3)
    assert trainer.game.opt_d.param_groups[0]["lr"] == pytest.approx(3e-4)
    assert trainer.game.opt_d.param_groups[0]["betas"] == (0.0, 0.9)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cpu(precision, tmp_path):
    cfg = compose_config("model=dcgan", f"trainer.precision={precision}", "trainer.steps=2")
    trainer = Trainer(cfg, tmp_path)
    assert trainer.game.amp_dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert trainer.game.scaler_g.is_enabled() == (precision == "fp16")
    metrics = fit(trainer, tmp_path)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    assert all(p.dtype == torch.float32 for p in trainer.game.G.parameters())  # master weights


@pytest.mark.parametrize(
    "caps, native",
    [
        ({"avx512_bf16": True, "avx512_f": True}, True),  # AVX512-BF16 (AMD Zen 4+, Intel Cooper Lake+)
        ({"amx_bf16": True, "amx_tile": True}, True),  # Intel Sapphire Rapids' AMX
        ({"avx512_f": True, "avx2": True, "avx512_bf16": False}, False),  # AVX-512 without bf16
        ({"avx2": True}, False),
        ({"bf16": True, "sve_bf16": True, "architecture": "arm64"}, False),  # Arm: not measured, fp32
    ],
)
def test_bf16_native_follows_the_cpu(caps, native, monkeypatch):
    from types import MappingProxyType

    from gan_cli.schema import Precision
    from gan_cli.trainer import cpu_has_native_bf16, resolve_precision

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: MappingProxyType(caps))
    cpu = torch.device("cpu")
    assert cpu_has_native_bf16() is native
    assert resolve_precision(Precision.bf16_native, cpu) == (torch.bfloat16 if native else None)
    assert resolve_precision(Precision.auto, cpu) is None  # auto stays fp32 on every CPU
    assert resolve_precision(Precision.bf16, cpu) == torch.bfloat16  # an explicit choice is kept
    assert resolve_precision(Precision.fp32, cpu) is None
    # MPS: fp32 for both hardware-dependent choices, whatever the CPU has
    assert resolve_precision(Precision.bf16_native, torch.device("mps")) is None


@pytest.mark.parametrize("native", [True, False])
def test_bf16_native_on_a_torch_without_get_capabilities(native, monkeypatch):
    from gan_cli.trainer import cpu_has_native_bf16

    monkeypatch.delattr(torch.cpu, "get_capabilities", raising=False)  # torch 2.10
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
    assert cpu_has_native_bf16() is native


@pytest.mark.parametrize("supported", [True, False])
def test_bf16_native_on_cuda_is_auto(supported, monkeypatch):
    from gan_cli.schema import Precision
    from gan_cli.trainer import resolve_precision

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
    cuda = torch.device("cuda", 0)
    expected = torch.bfloat16 if supported else None
    assert resolve_precision(Precision.bf16_native, cuda) == expected
    assert resolve_precision(Precision.auto, cuda) == expected


def test_precision_note_says_what_a_hardware_dependent_choice_resolved_to():
    from gan_cli.schema import Precision
    from gan_cli.trainer import precision_note

    cpu = torch.device("cpu")
    assert (
        precision_note(Precision.bf16_native, torch.bfloat16, cpu)
        == "Precision: bf16 autocast (trainer.precision=bf16_native on cpu)"
    )
    assert (
        precision_note(Precision.bf16_native, None, cpu)
        == "Precision: fp32 (trainer.precision=bf16_native on cpu)"
    )
    assert (
        precision_note(Precision.auto, torch.bfloat16, torch.device("cuda", 0))
        == "Precision: bf16 autocast (trainer.precision=auto on cuda:0)"
    )
    assert precision_note(Precision.fp32, None, cpu) is None  # a fixed choice needs no word
    assert precision_note(Precision.bf16, torch.bfloat16, cpu) is None


def test_a_bf16_native_run_trains_in_what_the_cpu_offers_and_says_so(tmp_path):
    from gan_cli.trainer import cpu_has_native_bf16
    from tests.conftest import TINY, run_cli

    out = run_cli(*TINY, "trainer.precision=bf16_native", "hydra.run.dir=r", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    dtype = "bf16 autocast" if cpu_has_native_bf16() else "fp32"
    assert f"Precision: {dtype} (trainer.precision=bf16_native on cpu)" in out.stdout
    assert (tmp_path / "r" / "checkpoints" / "last.pt").is_file()


def test_ema_follows_decay(tmp_path):
    cfg = compose_config("model=mlp", "trainer.ema_decay=0.9", "trainer.steps=1")
    trainer = Trainer(cfg, tmp_path)
    trainer.step = 100  # past the warm-up, where the decay is min(0.9, 101/110) = 0.9
    before = [p.clone() for p in trainer.game.G_ema.parameters()]
    trainer.train_step()
    for e0, e1, g in zip(before, trainer.game.G_ema.parameters(), trainer.game.G.parameters(), strict=True):
        torch.testing.assert_close(e1, 0.9 * e0 + 0.1 * g)
    pairs = zip(trainer.game.G_ema.parameters(), trainer.game.G.parameters(), strict=True)
    assert not all(torch.equal(e, g) for e, g in pairs)


def test_ema_warmup_values():
    # min(decay, (1 + t) / (10 + t)): 0.1 at the first step, 0.999 from step 8,990 on
    assert ema_decay_at(0.999, 0) == pytest.approx(0.1)
    assert ema_decay_at(0.999, 6999) == pytest.approx(7000 / 7009)
    assert ema_decay_first_step(0.999) == 8990
    assert ema_decay_at(0.999, 8989) < 0.999 == ema_decay_at(0.999, 8990)
    assert ema_decay_first_step(0.9995) == 17990
    assert ema_decay_first_step(0.5) == 8


@pytest.mark.parametrize(
    ("overrides", "noted"),
    [
        (("trainer.ema_decay=0.9995", "trainer.steps=7000"), True),  # reached at step 17,990
        (("trainer.ema_decay=0.9995", "trainer.steps=17991"), False),  # the last step uses it
        (("trainer.ema_decay=0.99", "trainer.steps=7000"), False),
        (("model=stylegan2", "trainer.ema_decay=0.9995", "trainer.ema_kimg=0", "trainer.steps=100"), True),
        # ema_kimg sets the decay: noted by its own rule, not this one
        (("model=stylegan2", "trainer.ema_decay=0.9995", "trainer.ema_kimg=10", "trainer.steps=100"), False),
    ],
)
def test_ema_decay_the_warmup_never_reaches_is_noted(overrides, noted):
    """A decay the warm-up stays below for the whole run does nothing: the note says so."""
    notes = [n for n in inert_settings(compose_config(*overrides)) if "warm-up" in n]
    assert bool(notes) == noted
    if noted:
        assert notes[0].startswith("trainer.ema_decay=0.9995 has no effect with trainer.steps=")
        assert "step 17,990" in notes[0]


def test_fixed_noise_is_fixed(tmp_path):
    cfg = compose_config("trainer.steps=2", "trainer.sample_every=1")
    a = Trainer(cfg, tmp_path / "a")
    z0 = a.game.fixed_z.clone()
    fit(a, tmp_path / "a")
    assert torch.equal(a.game.fixed_z, z0)
    b = Trainer(cfg, tmp_path / "b")
    assert torch.equal(b.game.fixed_z, z0)  # same seed, same noise


def test_seed_reproduces_run(tmp_path):
    cfg = compose_config("model=dcgan", "trainer.steps=3")
    a, b = Trainer(cfg, tmp_path / "a"), Trainer(cfg, tmp_path / "b")
    fit(a, tmp_path / "a")
    fit(b, tmp_path / "b")
    for pa, pb in zip(a.game.G.parameters(), b.game.G.parameters(), strict=True):
        assert torch.equal(pa, pb)


def _bn_stats(state: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    return [v.clone() for k, v in state.items() if k.endswith(("running_mean", "running_var"))]


def test_ema_generator_gets_its_own_batchnorm_statistics(tmp_path):
    cfg = compose_config("model=dcgan", "trainer.steps=4", "trainer.ckpt_every=2", "trainer.ema_decay=0.5")
    trainer = Trainer(cfg, tmp_path)
    fit(trainer, tmp_path)
    saved = torch.load(tmp_path / "checkpoints" / "step_000004.pt", weights_only=True)["models"]
    # the saved statistics are G_ema's own (what its fixed-noise batches give), not the live G's
    trainer.game._ema_stats_step = -1
    trainer.game._ema_own_stats()
    for saved_stat, again in zip(
        _bn_stats(saved["g_ema"]), _bn_stats(trainer.game.G_ema.state_dict()), strict=True
    ):
        torch.testing.assert_close(saved_stat, again)
    pairs = zip(_bn_stats(saved["g_ema"]), _bn_stats(saved["g"]), strict=True)
    assert not all(torch.allclose(a, b) for a, b in pairs)
    tracked = [v for k, v in saved["g_ema"].items() if k.endswith("num_batches_tracked")]
    assert tracked and all(int(v) == cfg.trainer.ema_bn_batches for v in tracked)


def test_ema_statistics_leave_training_untouched(tmp_path):
    """Re-estimating G_ema's statistics (when sampling, evaluating and saving) changes no weight of
    G or D and no random stream: the run is the same as one that keeps G's statistics."""
    runs = []
    for batches in (0, 50):
        overrides = ("trainer.steps=4", "trainer.sample_every=1", "trainer.ckpt_every=2")
        cfg = compose_config("model=dcgan", *overrides, f"trainer.ema_bn_batches={batches}")
        trainer = Trainer(cfg, tmp_path / str(batches))
        fit(trainer, tmp_path / str(batches))
        runs.append(trainer)
    for net in ("G", "D"):
        a, b = (getattr(r.game, net).state_dict() for r in runs)
        assert all(torch.equal(a[k], b[k]) for k in a)
    a, b = (r.game.G_ema.state_dict() for r in runs)
    assert all(
        torch.equal(a[k], b[k]) for k in a if not k.endswith(("running_mean", "running_var", "tracked"))
    )
    assert not all(torch.equal(x, y) for x, y in zip(_bn_stats(a), _bn_stats(b), strict=True))
