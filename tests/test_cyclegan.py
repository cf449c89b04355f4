"""CycleGAN: its losses against hand-computed values, the image pool, exact resume, translation
with gan-sample and gan-eval, the identity-loss channel check, torchrun, and an end-to-end run."""

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gan_cli.pool import ImagePool
from gan_cli.schema import ConfigError, check_config
from gan_cli.trainer import Trainer
from tests.conftest import compose_config, run_cli
from tests.test_scale import torchrun
from tests.test_training import fit

TINY_CG = [
    "model=cyclegan",
    "data.image_size=16",
    "model.g_channels=4",
    "model.d_channels=4",
    "model.res_blocks=1",
    "model.d_layers=2",
    "trainer.batch_size=4",
    "trainer.steps=3",
    "trainer.device=cpu",
    "trainer.progress=false",
    "trainer.tensorboard=false",
    "trainer.log_every=1",
    "trainer.sample_every=100",
    "trainer.ckpt_every=100",
    "trainer.n_samples=12",
    "trainer.health.diversity_samples=4",
]


def tiny(*over: str):
    return compose_config(*TINY_CG, *over, tiny=False)


class Scale(nn.Module):
    """x -> w * x with one weight: a generator whose outputs are easy to compute by hand."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x):
        return self.w * x


class MeanLogit(nn.Module):
    """A discriminator whose logit is the image's mean (plus a weight that starts at 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x.mean(dim=(1, 2, 3))[:, None] + self.b


def test_losses_against_hand_computed_values(tmp_path):
    trainer = Trainer(tiny("trainer.pool_size=0"), tmp_path)
    game = trainer.game
    game.G_AB, game.G_BA, game.D_A, game.D_B = Scale(2.0), Scale(0.25), MeanLogit(), MeanLogit()
    game.g_params = [game.G_AB.w, game.G_BA.w]
    game.d_params = [game.D_A.b, game.D_B.b]
    game.opt_g = torch.optim.SGD(game.g_params, lr=0.0)
    game.opt_d = torch.optim.SGD(game.d_params, lr=0.0)
    a, b = torch.full((4, 1, 16, 16), 0.1), torch.full((4, 1, 16, 16), 0.2)
    game.batches_a.next = lambda: (a, None)
    game.batches_b.next = lambda: (b, None)
    values = dict(zip(game.fields, game.train_step().tolist(), strict=True))
    # fake_b = 0.2, rec_a = 0.05, fake_a = 0.05, rec_b = 0.1; identity: G_AB(b) = 0.4, G_BA(a) = 0.025
    cycle = 10 * (abs(0.05 - 0.1) + abs(0.1 - 0.2))
    identity = 0.5 * 10 * (abs(0.4 - 0.2) + abs(0.025 - 0.1))
    adversarial = (0.2 - 1) ** 2 + (0.05 - 1) ** 2  # the reference's LSGAN G term: MSE against 1
    assert values["loss/cycle"] == pytest.approx(cycle)
    assert values["loss/identity"] == pytest.approx(identity)
    assert values["loss/g"] == pytest.approx(adversarial + cycle + identity)
    # the reference's D: 0.5 * (MSE(D(real), 1) + MSE(D(fake), 0))
    assert values["loss/d_a"] == pytest.approx(0.5 * ((0.1 - 1) ** 2 + 0.05**2))
    assert values["loss/d_b"] == pytest.approx(0.5 * ((0.2 - 1) ** 2 + 0.2**2))
    assert values["d_a/fake"] == pytest.approx(torch.sigmoid(torch.tensor(0.05)).item())


class MeanClassifier(nn.Module):
    """Two-class logits (10 m, -10 m) of an image's mean m: class 0 for bright images."""

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([10 * m, -10 * m], dim=1)


def test_semantic_loss_against_hand_computed_values(tmp_path):
    over = ("trainer.pool_size=0", "loss.semantic_weight=2", "eval.classifier_epochs=1")
    trainer = Trainer(tiny(*over, f"eval.cache_dir={tmp_path / 'cache'}"), tmp_path)
    game = trainer.game
    # the classifier of domain A was trained on A's labels, cached, and is frozen
    assert type(game.f_a).__name__ == "SmallClassifier" and not game.f_a.training
    assert not any(p.requires_grad for p in game.f_a.parameters())
    assert len(list((tmp_path / "cache" / "classifiers").glob("semantic-*-stroke.pt"))) == 1
    game.G_AB, game.G_BA, game.D_A, game.D_B = Scale(2.0), Scale(0.25), MeanLogit(), MeanLogit()
    game.f_a = MeanClassifier()
    game.g_params = [game.G_AB.w, game.G_BA.w]
    game.d_params = [game.D_A.b, game.D_B.b]
    game.opt_g = torch.optim.SGD(game.g_params, lr=0.0)
    game.opt_d = torch.optim.SGD(game.d_params, lr=0.0)
    a, b = torch.full((4, 1, 16, 16), 0.1), torch.full((4, 1, 16, 16), -0.2)
    game.batches_a.next = lambda: (a, None)
    game.batches_b.next = lambda: (b, None)
    values = dict(zip(game.fields, game.train_step().tolist(), strict=True))
    # f_A: a -> class 0, b -> class 1; fake_b = G_AB(a) = 0.2 (logits 2, -2), fake_a = G_BA(b) =
    # -0.05 (logits -0.5, 0.5); cross-entropy against the source's class, times the weight 2
    ce_ab = float(np.log1p(np.exp(-4.0)))
    ce_ba = float(np.log1p(np.exp(-1.0)))
    assert values["loss/semantic"] == pytest.approx(2 * (ce_ab + ce_ba))
    cycle = 10 * (abs(0.05 - 0.1) + abs(-0.1 + 0.2))
    identity = 0.5 * 10 * (abs(-0.4 + 0.2) + abs(0.025 - 0.1))
    adversarial = (0.2 - 1) ** 2 + (-0.05 - 1) ** 2
    assert values["loss/g"] == pytest.approx(adversarial + cycle + identity + 2 * (ce_ab + ce_ba))


def test_semantic_classifier_trains_with_random_stroke_sharpness():
    from gan_cli.metrics.classifier import _augment, _stroke_augment

    # a soft stroke: intensity ramps linearly from background (-1) to ink (1) across the image
    ramp = torch.linspace(-1, 1, 16).expand(64, 1, 16, 16).contiguous()
    out = _stroke_augment(ramp, torch.Generator().manual_seed(0))
    again = _stroke_augment(ramp, torch.Generator().manual_seed(0))
    assert torch.equal(out, again) and out.shape == ramp.shape
    assert out.min() >= -1 and out.max() <= 1
    plain = _augment(ramp, torch.Generator().manual_seed(0))  # the same draws before the curve
    curved = (out - plain).abs().flatten(1).amax(1) > 1e-6
    # about 70 % of the images get the tone curve, the rest are the evaluation's augmentation
    assert 0.5 < curved.float().mean() < 0.9
    # the curve is steeper than the ramp through its threshold (all but the shallowest, k near 1):
    # most curved images have more pixels near ink or background
    near_ends = lambda x: (x.abs() > 0.8).float().mean(dim=(1, 2, 3))  # noqa: E731
    assert (near_ends(out[curved]) > near_ends(plain[curved])).float().mean() > 0.8
    # and the threshold varies, so strokes come out thinner in some images and thicker in others
    ink = (out[curved] > 0).float().mean(dim=(1, 2, 3))
    assert ink.max() - ink.min() > 0.2


def test_semantic_loss_needs_labels_in_domain_a():
    with pytest.raises(ConfigError, match=r"loss.semantic_weight=1.0 trains a classifier on domain A's"):
        check_config(tiny("loss.semantic_weight=1", "data.a.num_classes=0"))
    check_config(tiny("loss.semantic_weight=1"))


def test_nonsaturating_terms_follow_the_reference_scale(tmp_path):
    trainer = Trainer(tiny("loss=nonsaturating", "trainer.pool_size=0", "loss.identity_weight=0"), tmp_path)
    game = trainer.game
    game.G_AB, game.G_BA, game.D_A, game.D_B = Scale(1.0), Scale(1.0), MeanLogit(), MeanLogit()
    game.g_params, game.d_params = [game.G_AB.w, game.G_BA.w], [game.D_A.b, game.D_B.b]
    game.opt_g, game.opt_d = torch.optim.SGD(game.g_params, lr=0.0), torch.optim.SGD(game.d_params, lr=0.0)
    x = torch.zeros(4, 1, 16, 16)
    game.batches_a.next = game.batches_b.next = lambda: (x, None)
    values = dict(zip(game.fields, game.train_step().tolist(), strict=True))
    log2 = float(np.log(2.0))  # softplus(0)
    assert values["loss/g"] == pytest.approx(2 * log2)  # BCE(D(fake), 1) per direction, cycle 0
    assert values["loss/d_a"] == pytest.approx(0.5 * (log2 + log2))  # 0.5 * (BCE real + BCE fake)


def test_image_pool_stores_the_first_then_swaps_half():
    pool = ImagePool(50, seed=0, device=torch.device("cpu"))
    first = torch.arange(50.0).view(50, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # the first 50 pass through and are stored
    assert torch.equal(pool.images, first)
    new = torch.arange(1000.0, 1400.0).view(400, 1, 1, 1)
    out = pool.query(new)
    from_history = out.flatten() != new.flatten()  # D sees a stored image instead of the new one
    assert 0.42 < from_history.float().mean() < 0.58  # each swapped with probability 1/2
    seen = set(range(50)) | {int(v) for v in new.flatten()}
    assert {int(v) for v in out.flatten()} <= seen
    # what left the pool is not in it any more, and the pool holds 50 distinct images
    assert len(set(pool.images.flatten().tolist())) == 50
    assert not set(out[from_history].flatten().tolist()) & set(pool.images.flatten().tolist())
    # seeded and resumable: a copy from the state continues identically
    again = ImagePool(50, seed=123, device=torch.device("cpu"))
    again.load_state_dict(pool.state_dict())
    more = torch.arange(5000.0, 5064.0).view(64, 1, 1, 1)
    assert torch.equal(pool.query(more), again.query(more))


def _tensors(state, prefix=""):
    if isinstance(state, dict):
        for k, v in state.items():
            yield from _tensors(v, f"{prefix}{k}.")
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            yield from _tensors(v, f"{prefix}{i}.")
    elif torch.is_tensor(state):
        yield prefix[:-1], state


@pytest.mark.parametrize("semantic", [False, True])
def test_stopped_and_resumed_equals_straight(semantic, tmp_path):
    # the schedule decays over a fixed horizon, so the 3-step first part learns as the straight run
    over = [
        "trainer.pool_size=3",
        "trainer.diffaugment=[translation]",
        "trainer.log_every=2",
        "optim.schedule_steps=6",
    ]
    if semantic:  # CyCADA's frozen classifier: the same one (from its cache) after the restart
        over += ["loss.semantic_weight=1", "eval.classifier_epochs=1", f"eval.cache_dir={tmp_path / 'cache'}"]
    straight = Trainer(tiny(*over, "trainer.steps=6"), tmp_path / "a")
    fit(straight, tmp_path / "a")
    first = Trainer(tiny(*over, "trainer.steps=3"), tmp_path / "b")
    fit(first, tmp_path / "b")
    resumed = Trainer(tiny(*over, "trainer.steps=6"), tmp_path / "b")
    resumed.load_state_dict(
        torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True), tmp_path
    )
    fit(resumed, tmp_path / "b")
    a = dict(_tensors(torch.load(tmp_path / "a" / "checkpoints" / "last.pt", weights_only=True)))
    b = dict(_tensors(torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)))
    assert a.keys() == b.keys() and any(k.startswith("pool.a") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_identity_loss_needs_the_same_channels():
    cfg = tiny("data.a.channels=3")
    with pytest.raises(
        ConfigError, match=r"loss.identity_weight=0.5 .*\(data.a.channels=3, data.b.channels=1\)"
    ):
        check_config(cfg)
    check_config(tiny("data.a.channels=3", "loss.identity_weight=0"))


def test_cyclegan_needs_two_domains():
    with pytest.raises(ConfigError, match="model=cyclegan translates between two image sets"):
        check_config(tiny("data=mnist5k"))
    with pytest.raises(ConfigError, match="it needs model=cyclegan"):
        check_config(compose_config("data=digits2mnist", "model=dcgan"))


def test_model_choice_brings_the_reference_defaults_and_explicit_choices_win():
    cfg = compose_config("model=cyclegan", tiny=False)
    assert cfg.loss.name.value == "lsgan" and cfg.data.name.value == "unpaired"
    assert (
        cfg.optim.schedule.value == "linear"
        and cfg.optim.decay_start == 0.5
        and cfg.optim.betas == [0.5, 0.999]
    )
    assert cfg.loss.cycle_weight == 10 and cfg.loss.identity_weight == 0.5 and cfg.trainer.pool_size == 50
    cfg = compose_config("model=cyclegan", "loss=hinge", "optim=adam", tiny=False)
    assert cfg.loss.name.value == "hinge" and cfg.optim.schedule.value == "constant"


@pytest.fixture(scope="module")
def cg_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cg")
    out = run_cli(*TINY_CG, "trainer.steps=4", "trainer.log_every=2", "hydra.run.dir=run", cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    return root / "run"


def test_end_to_end_run_writes_health_grids_and_exports(cg_run):
    records = [json.loads(x) for x in (cg_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    for key in (
        "d_a/real",
        "d_a/fake",
        "d_b/real",
        "d_b/fake",
        "loss/cycle",
        "loss/identity",
        "diversity/a2b",
    ):
        assert key in records[-1]
    with Image.open(cg_run / "samples" / "step_000004.png") as img:  # 6 rows of 2 (n_samples 12)
        assert img.size == (2 * 16 + 3 * 2, 6 * 16 + 7 * 2)
    assert (cg_run / "samples" / "real.png").is_file()
    export = torch.load(cg_run / "checkpoints" / "generator.pt", weights_only=True)
    assert export["game"] == "cyclegan" and set(export["state_dict"]) == {"g_ab", "g_ba"}


def test_gan_sample_translates_a_folder_in_name_order_and_npy(cg_run, tmp_path):
    from gan_cli.sampling import load_run

    images = tmp_path / "in"
    images.mkdir()
    rng = np.random.default_rng(0)
    pixels = {name: rng.integers(0, 256, (16, 16), dtype=np.uint8) for name in ("z", "a", "m")}
    for name, arr in pixels.items():
        Image.fromarray(arr).save(images / f"{name}.png")
    out = run_cli(
        f"run={cg_run}",
        f"input={images}",
        "direction=a2b",
        f"out={tmp_path / 'out'}",
        cwd=tmp_path,
        module="gan_cli.sample_main",
    )
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "m.png", "z.png"]
    np.save(tmp_path / "in.npy", np.stack([pixels["a"], pixels["m"], pixels["z"]]))
    out = run_cli(
        f"run={cg_run}",
        f"input={tmp_path / 'in.npy'}",
        "direction=b2a",
        f"out={tmp_path / 't.npy'}",
        cwd=tmp_path,
        module="gan_cli.sample_main",
    )
    assert out.returncode == 0, out.stderr
    result = np.load(tmp_path / "t.npy")
    assert result.shape == (3, 16, 16, 1) and result.dtype == np.uint8
    tr = load_run(cg_run, torch.device("cpu"))
    x = torch.from_numpy(np.stack([pixels["a"], pixels["m"], pixels["z"]]))[:, None].float() / 127.5 - 1
    expected = tr.translate(x, "b2a").add(1).mul(127.5).add(0.5).clamp(0, 255).to(torch.uint8)
    assert np.array_equal(result, expected.permute(0, 2, 3, 1).numpy())  # in the input's order
    missing = run_cli(
        f"run={cg_run}", f"out={tmp_path / 'g.png'}", cwd=tmp_path, module="gan_cli.sample_main"
    )
    assert missing.returncode == 2 and "input=" in missing.stderr and "Traceback" not in missing.stderr


def test_gan_eval_measures_translation(cg_run, tmp_path):
    out = run_cli(
        f"run={cg_run}",
        "metrics=[classifier]",
        "eval.classifier_epochs=1",
        "eval.real_samples=400",
        f"eval.cache_dir={tmp_path / 'cache'}",
        cwd=tmp_path,
        module="gan_cli.eval_main",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    record = json.loads((cg_run / "eval.json").read_text())
    for direction in ("a2b", "b2a"):
        assert 0 <= record[f"translation/{direction}/acc"] <= 1
        assert 0 <= record[f"translation/{direction}/raw_acc"] <= 1
        assert record[f"translation/{direction}/fd"] >= 0 and record[f"translation/{direction}/cycle_l1"] >= 0


def test_torchrun_two_ranks(tmp_path):
    result = torchrun(*TINY_CG, "trainer.steps=3", "hydra.run.dir=run", cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    prints = re.findall(r"rank (\d)/2: weights fingerprint ([0-9a-f]{16})", out)
    assert sorted(r for r, _ in prints) == ["0", "1"] and prints[0][1] == prints[1][1], prints
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert len(state["ranks"]) == 2 and "pool" in state["ranks"][1]


def test_a_smaller_pool_on_resume_keeps_the_newest_images():
    """The reported input: resuming with a smaller trainer.pool_size than the saved pool crashed
    (or, growing, kept slots it had never filled)."""
    pool = ImagePool(5, seed=0, device=torch.device("cpu"))
    pool.query(torch.arange(5.0).view(5, 1, 1, 1))
    pool.query(torch.arange(10.0, 20.0).view(10, 1, 1, 1))
    saved = pool.state_dict()
    order = saved["stamps"].argsort()
    newest = saved["images"][order[-3:].sort().values]
    small = ImagePool(3, seed=0, device=torch.device("cpu"))
    small.load_state_dict(saved)
    assert small.count == 3 and torch.equal(small.images, newest) and small.seen == 15
    assert sorted(small.stamps.tolist()) == sorted(saved["stamps"][order[-3:]].tolist())
    small.query(torch.full((4, 1, 1, 1), 99.0))  # goes on as a full pool
    off = ImagePool(0, seed=0, device=torch.device("cpu"))
    off.load_state_dict(saved)
    assert off.count == 0 and off.images is None
    larger = ImagePool(8, seed=0, device=torch.device("cpu"))
    larger.load_state_dict(saved)
    assert larger.count == 5 and torch.equal(larger.images[:5], saved["images"])
    new = torch.arange(100.0, 103.0).view(3, 1, 1, 1)
    assert torch.equal(larger.query(new), new) and torch.equal(larger.images[5:], new)  # fills up first
    older = {k: v for k, v in saved.items() if k not in ("stamps", "seen")}  # a checkpoint from before stamps
    small.load_state_dict(older)
    assert torch.equal(small.images, saved["images"][2:])


@pytest.mark.slow
def test_a_cyclegan_run_resumes_with_a_smaller_pool(tmp_path):
    first = Trainer(tiny("trainer.pool_size=8", "trainer.steps=2"), tmp_path)
    fit(first, tmp_path)
    resumed = Trainer(tiny("trainer.pool_size=2", "trainer.steps=3"), tmp_path)
    resumed.load_state_dict(torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True), tmp_path)
    assert resumed.game.pool_a.count == 2 and resumed.game.pool_a.images.shape[0] == 2
    fit(resumed, tmp_path)
    assert resumed.step == 3


def test_unpaired_data_names_the_domain_keys(tmp_path):
    """The reported input: data=unpaired without roots said "set data.root", a key it does not read."""
    with pytest.raises(ConfigError) as err:
        check_config(tiny("data=unpaired"))
    assert "data.a.root and data.b.root are not set" in str(err.value)
    assert "set data.a.root=<folder> data.b.root=<folder>" in str(err.value)
    with pytest.raises(ConfigError, match=r"data\.b\.root is not set"):
        check_config(tiny("data=unpaired", f"data.a.root={tmp_path}"))
    # errors of reading one domain name that domain's keys
    from gan_cli.data import DataError, make_batches

    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    cfg = tiny(
        "data=unpaired", f"data.a.root={tmp_path}", f"data.b.root={tmp_path / 'none'}", "data.channels=1"
    )
    with pytest.raises(
        DataError, match=r"^data\.a: the data set has 3 items, fewer than trainer\.batch_size=4"
    ):
        make_batches(cfg.data.a, 4, 0, torch.device("cpu"), "data.a")
    with pytest.raises(DataError, match=r"^data\.b\.name=image_folder: data\.b\.root=.* is not a folder"):
        make_batches(cfg.data.b, 2, 0, torch.device("cpu"), "data.b")


def test_output_names_are_unique_in_input_order(tmp_path):
    from gan_cli.commands import output_names

    files = [tmp_path / p for p in ("a.jpg", "a.png", "a.jpg.png", "b.bmp", "x/a.png", "y/a.png")]
    assert output_names(files, tmp_path) == ["a.jpg", "a.png", "a.jpg-2", "b", "x/a", "y/a"]


def test_gan_sample_translation_keeps_every_input_and_refuses_noise_settings(cg_run, tmp_path):
    """The reported input: a.jpg and a.png (or x/a.png and y/a.png) wrote one a.png; n= and the like
    were silently ignored."""
    images = tmp_path / "in"
    (images / "x").mkdir(parents=True)
    (images / "y").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "a.png", "x/a.png", "y/a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(images / name)
    out = run_cli(
        f"run={cg_run}",
        f"input={images}",
        f"out={tmp_path / 'out'}/",
        cwd=tmp_path,
        module="gan_cli.sample_main",
    )
    assert out.returncode == 0, out.stderr
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["a.jpg.png", "a.png.png", "b.png", "x/a.png", "y/a.png"]
    assert "5 images translated a2b" in out.stdout
    refused = run_cli(
        f"run={cg_run}",
        f"input={images}",
        "n=10",
        "truncation=0.5",
        f"out={tmp_path / 'o2'}/",
        cwd=tmp_path,
        module="gan_cli.sample_main",
    )
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "n=, truncation=:" in refused.stderr and "translation run" in refused.stderr
    assert not (tmp_path / "o2").exists()
