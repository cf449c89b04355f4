"""ADA: the p controller's steps, the pipe's per-sample probability, identities, ranges and
gradients, and ADA in training (logs, exact resume, CycleGAN's two controllers, config errors)."""

import json
import math

import pytest
import torch

from gan_cli.ada import COLOR, GEOM, TRANSFORMS, Ada, augment, pipe_transforms
from gan_cli.schema import ConfigError, check_config, inert_settings
from gan_cli.trainer import Trainer
from tests.conftest import compose_config, run_cli
from tests.test_cyclegan import _tensors, tiny
from tests.test_training import fit


def images(n: int = 64, channels: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def changed(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(N,) whether each sample differs from its input anywhere."""
    return (y != x).flatten(1).any(1)


def controller(**kw) -> Ada:
    # adjustment = batch * interval / (kimg * 1000) = 8 * 4 / 100 = 0.32 per interval
    return Ada(["bgc"], torch.Generator().manual_seed(0), batch_size=8, interval=4, kimg=0.1, **kw)


# ---- the controller ------------------------------------------------------------------------------
def test_p_rises_by_the_documented_step_on_a_d_that_separates_and_stops_at_1():
    ada = controller()
    assert ada.adjustment == pytest.approx(0.32)
    seen = []
    for _ in range(5):
        for step in range(4):
            rt = ada.update(torch.full((8,), 3.0))
            assert float(rt) == 1.0
            if step < 3:  # p moves only at the end of an interval
                seen.append(ada.p)
        seen.append(ada.p)
    assert seen[:4] == [0.0, 0.0, 0.0, pytest.approx(0.32)]
    per_interval = seen[3::4]
    assert per_interval == [pytest.approx(v) for v in (0.32, 0.64, 0.96, 1.0, 1.0)]  # clamped at 1


@pytest.mark.parametrize("logit", [-2.0, 0.0])
def test_p_falls_on_a_d_that_does_not_separate_and_stops_at_0(logit):
    ada = controller(p=0.7)
    ps = []
    for _ in range(4):
        for _ in range(4):
            ada.update(torch.full((8,), logit))
        ps.append(ada.p)
    assert ps == [pytest.approx(v) for v in (0.38, 0.06, 0.0, 0.0)]


def test_rt_is_the_interval_mean_sign_against_the_target():
    ada = controller(target=0.6)
    half = torch.tensor([1.0, 1, 1, 1, 1, 1, -1, -1])  # E[sign] = 0.5 per step
    for _ in range(4):
        ada.update(half)
    assert ada.p == 0.0  # 0.5 < 0.6: p would fall, stays at 0
    ada = controller(target=0.4)
    for _ in range(4):
        ada.update(half)
    assert ada.p == pytest.approx(0.32)


def test_lsgan_boundary_reads_logits_against_one_half():
    ada = controller(boundary=0.5)
    for _ in range(4):
        assert float(ada.update(torch.full((8,), 0.4))) == -1.0  # below LSGAN's midpoint: judged fake
    assert ada.p == 0.0


def test_nan_logits_count_as_undecided():
    ada = controller()
    rt = ada.update(torch.tensor([1.0, 1.0, float("nan"), 1.0]))
    assert float(rt) == 0.75


def test_state_dict_resumes_mid_interval_exactly():
    a = controller(p=0.5)
    for logit in (3.0, -1.0, 3.0, 3.0, 3.0, 3.0):  # one interval and two steps of the next
        a.update(torch.full((8,), logit))
    b = controller()
    b.load_state_dict(a.state_dict())
    assert b.p == a.p and b.state_dict()["steps"] == 2
    for _ in range(2):
        a.update(torch.full((8,), -1.0))
        b.update(torch.full((8,), -1.0))
    assert b.p == a.p and torch.equal(b.state_dict()["p"], a.state_dict()["p"])


# ---- the pipe ------------------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 3])
def test_p0_leaves_images_unchanged_exactly(channels):
    x = images(channels=channels)
    y = augment(x, TRANSFORMS, torch.tensor(0.0), torch.Generator().manual_seed(1))
    assert torch.equal(y, x)


@pytest.mark.parametrize("channels", [1, 3])
def test_p1_changes_every_image(channels):
    x = images(channels=channels)
    y = augment(x, TRANSFORMS, torch.tensor(1.0), torch.Generator().manual_seed(1))
    assert changed(y, x).all()
    assert y.shape == x.shape and torch.isfinite(y).all()


# the fraction of samples a transform changes at probability p: the reference draws flips and
# quarter turns uniformly, identity included; integer shifts of 16-pixel images round to 0 in
# both axes 1/16 of the time
EXPECTED = {"xflip": 0.5, "rotate90": 0.75, "lumaflip": 0.5, "xint": 15 / 16}


@pytest.mark.parametrize("name", TRANSFORMS)
def test_each_transform_hits_samples_independently_with_probability_p(name):
    x = images(n=600)
    gen = torch.Generator().manual_seed(2)
    hit = changed(augment(x, [name], torch.tensor(0.5), gen), x)
    expected = 0.5 * EXPECTED.get(name, 1.0)
    assert abs(hit.float().mean().item() - expected) < 0.07, (name, hit.float().mean())
    # a fresh draw hits another set of samples: per sample, not per batch
    again = changed(augment(x, [name], torch.tensor(0.5), gen), x)
    assert not torch.equal(hit, again)


def test_gradients_reach_every_input_and_untouched_samples_pass_through():
    x = images(n=32).requires_grad_(True)
    w = torch.randn(32, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    y = augment(x, TRANSFORMS, torch.tensor(0.1), torch.Generator().manual_seed(4))
    (y * w).sum().backward()
    grad = x.grad
    assert torch.isfinite(grad).all()
    assert (grad.flatten(1).abs().sum(1) > 0).all()
    same = ~changed(y.detach(), x.detach())
    assert same.any() and torch.equal(grad[same], w[same])  # identity: d y / d x = 1


def test_geometric_transforms_keep_a_constant_image_constant_and_values_in_range():
    gen = torch.Generator().manual_seed(5)
    flat = torch.full((32, 3, 16, 16), 0.3)
    y = augment(flat, GEOM + ("xflip", "rotate90", "xint"), torch.tensor(1.0), gen)
    assert (y - 0.3).abs().max() < 1e-6  # reflection padding: no zero borders
    x = images(n=32)
    y = augment(x, GEOM, torch.tensor(1.0), gen)
    assert y.min() >= -1 - 1e-6 and y.max() <= 1 + 1e-6  # bilinear: convex combinations


def test_pixel_blitting_moves_pixels():
    x = images(n=64)
    y = augment(x, ["xflip"], torch.tensor(1.0), torch.Generator().manual_seed(6))
    flipped = changed(y, x)
    assert 20 < flipped.sum() < 44
    assert torch.allclose(y[flipped], x[flipped].flip(-1), atol=1e-5)
    y = augment(x, ["rotate90"], torch.tensor(1.0), torch.Generator().manual_seed(6))
    for i in range(len(x)):
        errors = [(y[i] - torch.rot90(x[i], k, dims=(1, 2))).abs().max() for k in range(4)]
        assert min(errors) < 1e-5


def test_colour_transforms_keep_grey_grey_and_hue_saturation_keep_luma():
    gen = torch.Generator().manual_seed(7)
    grey = images(n=32, channels=1).expand(-1, 3, -1, -1)
    y = augment(grey, ["hue", "saturation"], torch.tensor(1.0), gen)
    assert (y - grey).abs().max() < 1e-5  # rotations and scalings about the luma axis fix it
    x = images(n=32)
    y = augment(x, ["hue", "saturation"], torch.tensor(1.0), gen)
    assert changed(y, x).all()
    assert torch.allclose(y.mean(1), x.mean(1), atol=1e-5)  # luma (the channel mean) kept


def test_one_channel_images_lumaflip_negates_and_hue_saturation_skip():
    gen = torch.Generator().manual_seed(8)
    x = images(n=64, channels=1)
    y = augment(x, ["lumaflip"], torch.tensor(1.0), gen)
    flipped = changed(y, x)
    assert flipped.any() and torch.allclose(y[flipped], -x[flipped], atol=1e-6)
    assert torch.equal(augment(x, ["hue", "saturation"], torch.tensor(1.0), gen), x)
    y = augment(x, COLOR, torch.tensor(1.0), gen)
    assert y.shape == x.shape and changed(y, x).all()


def test_pipe_names_expand_groups_and_refuse_unknown_ones():
    assert pipe_transforms(["bgc"]) == TRANSFORMS
    assert pipe_transforms(["color", "xflip"]) == ("xflip", *COLOR)
    with pytest.raises(ValueError, match=r"unknown \['flip'\]; valid: blit, geom, color, bg, bgc, xflip"):
        pipe_transforms(["bgc", "flip"])


# ---- in training ---------------------------------------------------------------------------------
# G_ema's BatchNorm re-estimate (50 batches at every grid and checkpoint) is no part of what is tested
FAST = ["model=dcgan", "trainer.ema_bn_batches=0"]
ADA = [
    *FAST,
    "trainer.ada=true",
    "trainer.ada_p=0.5",
    "trainer.ada_kimg=0.05",
    "trainer.ada_interval=3",
]


def test_dcgan_with_ada_logs_p_and_resumes_exactly(tmp_path):
    # adjustment 8 * 3 / 50 = 0.48: p in {0, 0.02, 0.5, 0.98, 1} after each interval; the first part
    # stops 1 step into an interval, so the accumulators cross the checkpoint too
    straight = Trainer(compose_config(*ADA, "trainer.steps=8"), tmp_path / "a")
    fit(straight, tmp_path / "a")
    first = Trainer(compose_config(*ADA, "trainer.steps=4"), tmp_path / "b")
    fit(first, tmp_path / "b")
    assert first.game.ada.state_dict()["steps"] == 1
    resumed = Trainer(compose_config(*ADA, "trainer.steps=8"), tmp_path / "b")
    resumed.load_state_dict(
        torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True), tmp_path
    )
    fit(resumed, tmp_path / "b")
    a = dict(_tensors(torch.load(tmp_path / "a" / "checkpoints" / "last.pt", weights_only=True)))
    b = dict(_tensors(torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)))
    assert a.keys() == b.keys() and "ada.p" in a
    for key in a:
        assert torch.equal(a[key], b[key]), key

    records = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 9))
    ps = [r["ada/p"] for r in records]
    assert ps[:2] == [0.5, 0.5]  # no adjustment before the third D step
    assert all(any(math.isclose(p, v, abs_tol=1e-6) for v in (0.0, 0.02, 0.5, 0.98, 1.0)) for p in ps)
    assert all(-1.0 <= r["ada/rt"] <= 1.0 for r in records)
    resumed_records = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["ada/p"] for r in resumed_records] == ps


def test_ada_switched_on_when_resuming_starts_at_ada_p(tmp_path):
    plain = [*FAST, "trainer.steps=2"]
    fit(Trainer(compose_config(*plain), tmp_path), tmp_path)
    resumed = Trainer(compose_config(*ADA, "trainer.steps=4"), tmp_path)
    resumed.load_state_dict(torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True), tmp_path)
    assert resumed.game.ada.p == 0.5
    fit(resumed, tmp_path)
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 4 and "ada/p" in last


def test_cyclegan_gives_each_discriminator_its_own_p(tmp_path):
    cfg = tiny("trainer.ada=true", "trainer.ada_p=0.5", "trainer.ada_kimg=0.02", "trainer.ada_interval=1")
    trainer = Trainer(cfg, tmp_path)
    assert trainer.game.ada_a is not trainer.game.ada_b
    fit(trainer, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {"ada/p_a", "ada/p_b", "ada/rt_a", "ada/rt_b"} <= records[-1].keys()
    assert records[-1]["ada/p_a"] == trainer.game.ada_a.p and records[-1]["ada/p_b"] == trainer.game.ada_b.p
    # adjustment 4 / 20 = 0.2 a D step: three steps from 0.5
    for key in ("ada/p_a", "ada/p_b"):
        assert any(
            math.isclose(records[-1][key], v, abs_tol=1e-6) for v in (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
        )
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert state["ada"]["a"]["p"].item() == pytest.approx(trainer.game.ada_a.p)


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (
            ["trainer.diffaugment=[translation]"],
            "trainer.ada and trainer.diffaugment both augment D's inputs: choose one "
            "(trainer.diffaugment=[] or trainer.ada=false)",
        ),
        (["data=ring8", "model=mlp"], "trainer.ada augments images, not vector data (data=ring8)"),
        (["loss=wgan_gp"], "which a critic (loss=wgan_gp) does not give a meaning"),
        (["trainer.ada_pipe=[bgc,flip]"], "trainer.ada_pipe: unknown ['flip']; valid: blit, geom"),
        (["trainer.ada_target=1.0"], "trainer.ada_target must be in [0, 1), got 1.0"),
        (["trainer.ada_interval=0"], "trainer.ada_interval must be >= 1, got 0"),
        (["trainer.ada_kimg=0"], "trainer.ada_kimg must be > 0, got 0.0"),
        (["trainer.ada_p=1.5"], "trainer.ada_p must be in [0, 1], got 1.5"),
    ],
)
def test_config_errors_name_the_keys(overrides, expected):
    with pytest.raises(ConfigError) as e:
        check_config(compose_config("trainer.ada=true", *overrides))
    assert expected in str(e.value)


def test_ada_settings_without_ada_are_noted():
    notes = inert_settings(compose_config("trainer.ada_kimg=5"))
    assert "trainer.ada_kimg=5.0 has no effect with trainer.ada=false." in notes


def test_cli_refuses_ada_with_diffaugment_in_one_message(tmp_path):
    result = run_cli("trainer.ada=true", "trainer.diffaugment=[cutout]", "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 2
    assert "trainer.ada and trainer.diffaugment" in result.stderr and "Traceback" not in result.stderr
