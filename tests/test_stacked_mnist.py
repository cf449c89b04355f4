"""Stacked MNIST: the data set, the stacked_modes metric, the recipes' networks, training with the
metric, exact resume and the reproduce script."""

import json
import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from gan_cli.data import DataError, load_dataset, make_batches
from gan_cli.data.stacked import StackedDigits
from gan_cli.errors import ModelConfigError
from gan_cli.metrics import EvalError, evaluate, preflight
from gan_cli.metrics.features import sample_count
from gan_cli.metrics.keys import check_result_keys
from gan_cli.metrics.stacked import mode_stats
from gan_cli.models import build_models
from gan_cli.sampling import LoadedGenerator
from gan_cli.schema import ConfigError, EvalConfig, check_config
from gan_cli.trainer import Trainer
from tests.conftest import REPO, compose_config
from tests.datasets_on_disk import write_mnist
from tests.test_resume import assert_same_state
from tests.test_training import fit

CPU = torch.device("cpu")
# the small-D recipe at 16 px on a small stacked set: a CPU test takes a fraction of a second a step
SMALL = [
    "experiment=stacked_mnist_small_d",
    "data.image_size=16",
    "data.size=256",
    "trainer.batch_size=16",
    "trainer.device=cpu",
    "trainer.progress=false",
    "trainer.tensorboard=false",
    "trainer.log_every=1",
    "trainer.n_samples=8",
    "trainer.health.diversity_samples=8",
    "trainer.ema_bn_batches=1",
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One CPU thread: the classifier's training and the evaluations are many small convolutions,
    which two threads on a shared 2-core machine run several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- the data set ------------------------------------------------------------------------------
def stacked_set(*overrides: str):
    return load_dataset(compose_config("data=stacked_mnist5k", *overrides, tiny=False).data)


@pytest.fixture(scope="module")
def mnist5k():
    return load_dataset(compose_config("data=mnist5k", tiny=False).data)


def test_items_stack_the_mnist5k_digits_their_labels_name(mnist5k):
    data = stacked_set()
    assert isinstance(data.x, StackedDigits) and data.num_classes == 1000
    assert data.x.shape == (128_000, 3, 32, 32) and len(data.y) == 128_000
    assert data.x.triples.shape == (128_000, 3)  # the set is held as index triples (3 MB) ...
    items = torch.tensor([0, 1, 77, 127_999])
    x = data.x[items]  # ... and built when indexed
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.uint8 and x.max() == 255
    assert x[:, :, :2].max() == 0 and x[:, :, :, -2:].max() == 0  # padded 28 -> 32 as mnist5k
    for i, item in zip(items.tolist(), x, strict=True):
        r, g, b = data.x.triples[i].tolist()
        for channel, digit in enumerate((r, g, b)):
            assert torch.equal(item[channel], mnist5k.x[digit, 0])
        assert data.y[i] == 100 * mnist5k.y[r] + 10 * mnist5k.y[g] + mnist5k.y[b]
    assert torch.equal(data.x[5], data.x[torch.tensor([5])][0])
    counts = torch.bincount(data.y, minlength=1000)
    assert counts.min() > 80 and counts.max() < 180  # 128 expected per mode


def test_the_set_depends_on_data_seed_only():
    a, b = stacked_set(), stacked_set("trainer.seed=7")
    assert torch.equal(a.x.triples, b.x.triples) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x.triples, stacked_set("data.seed=1").x.triples)
    small = stacked_set("data.size=1000")
    assert torch.equal(small.x.triples, a.x.triples[:1000]) and len(small.y) == 1000


def test_28_px_keeps_mnists_size():
    x28 = stacked_set("data.size=50", "data.image_size=28").x[torch.arange(50)]
    x32 = stacked_set("data.size=50").x[torch.arange(50)]
    assert x28.shape == (50, 3, 28, 28) and torch.equal(x32[:, :, 2:30, 2:30], x28)


def test_batches_are_built_per_batch_in_model_range():
    cfg = compose_config("data=stacked_mnist5k", tiny=False)
    batches, classes = make_batches(cfg.data, 64, seed=0, device=CPU)
    assert classes == 1000 and isinstance(batches.x, StackedDigits)  # nothing materialised
    x, y = batches.next()
    assert x.shape == (64, 3, 32, 32) and x.dtype == torch.float32 and x.min() == -1 and x.max() == 1
    assert y.max() < 1000
    subset = stacked_set("data.subset=100")
    assert isinstance(subset.x, StackedDigits) and len(subset.x) == len(subset.y) == 100


def test_stacked_mnist_from_the_mnist_files(tmp_path):
    images, labels = write_mnist(tmp_path, n_train=20)
    over = ("data=stacked_mnist", f"data.root={tmp_path}", "data.size=30", "data.image_size=28")
    data = load_dataset(compose_config(*over, tiny=False).data)
    t = data.x.triples
    assert t.max() < 20 and data.x[torch.arange(30)].shape == (30, 3, 28, 28)
    assert torch.equal(data.x[3][1], torch.from_numpy(images[t[3, 1]]))
    assert data.y[3] == 100 * labels[t[3, 0]] + 10 * labels[t[3, 1]] + labels[t[3, 2]]
    with pytest.raises(DataError) as err:
        load_dataset(compose_config("data=stacked_mnist", f"data.root={tmp_path / 'none'}", tiny=False).data)
    assert str(err.value).startswith(
        "data=stacked_mnist stacks the digits of data=mnist: the data set is not in"
    )
    assert "data.download=true" in str(err.value)


def test_bad_settings_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"data.size must be >= 1, got 0"):
        check_config(compose_config("data=stacked_mnist5k", "data.size=0", tiny=False))
    with pytest.raises(
        ConfigError, match=r"data=stacked_mnist5k stacks three digits .* data.channels must be 3"
    ):
        check_config(compose_config("data=stacked_mnist5k", "data.channels=1", tiny=False))
    from tests.conftest import run_cli

    result = run_cli("data=stacked_mnist5k", "data.size=-5", "hydra.run.dir=run", cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "data.size must be >= 1, got -5" in result.stderr


# ---- the recipes' networks ---------------------------------------------------------------------
def _maps(net: nn.Module, x: torch.Tensor, kinds: tuple[type, ...]) -> list[tuple[int, ...]]:
    """The (C, H, W) outputs of the layers of `kinds` in `net` for input x."""
    shapes = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, o: shapes.append(tuple(o.shape[1:])))
        for m in net.modules()
        if isinstance(m, kinds)
    ]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    return shapes


def test_small_d_recipe_has_the_unrolled_gan_papers_networks():
    cfg = compose_config("experiment=stacked_mnist_small_d", tiny=False)
    g, d = build_models(cfg.model, cfg.data, cfg.loss.name)
    norms = _maps(g, torch.randn(4, 256), (nn.BatchNorm2d,))
    assert norms == [(64, 4, 4), (32, 7, 7), (16, 14, 14), (8, 28, 28)]
    assert g(torch.randn(4, 256)).shape == (4, 3, 28, 28)
    # D a quarter of G's widths, on PacGAN4's packs of 4 stacked images
    acts = _maps(d, torch.randn(8, 3, 28, 28), (nn.LeakyReLU,))
    assert acts == [(2, 14, 14), (4, 7, 7), (8, 4, 4)]


def test_veegan_recipe_has_the_reference_dcgan():
    cfg = compose_config("experiment=stacked_mnist_veegan", tiny=False)
    # the reference code's two G steps per D step, on PacGAN2's packs
    assert cfg.loss.g_steps == 2 and cfg.loss.n_critic == 1 and cfg.model.pack == 2
    g, d = build_models(cfg.model, cfg.data, cfg.loss.name)
    assert _maps(g, torch.rand(2, 100) * 2 - 1, (nn.BatchNorm2d,)) == [
        (512, 2, 2),
        (256, 4, 4),
        (128, 7, 7),
        (64, 14, 14),
    ]
    assert _maps(d, torch.randn(4, 3, 28, 28), (nn.LeakyReLU,)) == [
        (64, 14, 14),
        (128, 7, 7),
        (256, 4, 4),
        (512, 2, 2),
    ]


def test_a_base_size_halving_does_not_reach_is_named():
    cfg = compose_config("model.base_size=3", "data.image_size=28")
    with pytest.raises(
        ModelConfigError,
        match=r"model.base_size=3 is not reached .* valid: 0 \(auto\) or one of 14, 7, 4, 2, 1",
    ):
        build_models(cfg.model, cfg.data, cfg.loss.name)


# ---- the metric --------------------------------------------------------------------------------
class Lookup(nn.Module):
    """A stand-in generator that returns real stacked items (a seeded pick from the codes), or
    always the same one; it records the items it returned."""

    def __init__(self, x: StackedDigits, same: bool):
        super().__init__()
        self.x, self.same, self.picked = x, same, []
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, z, y=None):
        i = (z[:, 0].abs() * 1e6).long() % len(self.x)
        i = torch.zeros_like(i) if self.same else i
        self.picked.append(i)
        return self.x[i].float().mul(2 / 255).sub(1)


@pytest.fixture(scope="module")
def stacked16(tmp_path_factory):
    """The stacked set at 16 px and an evaluation of 2,000 samples whose digit classifier (5 epochs
    on the 5,000 digits) is trained once for the module."""
    cfg = compose_config("data=stacked_mnist5k", "data.image_size=16", tiny=False)
    cache = tmp_path_factory.mktemp("cache")
    ev = EvalConfig(n_samples=2000, classifier_epochs=5, cache_dir=str(cache))
    return cfg, load_dataset(cfg.data), ev, cache


def _evaluate(stacked16, same: bool, tmp_path):
    cfg, data, ev, _ = stacked16
    g = Lookup(data.x, same).eval()
    gen = LoadedGenerator(g, cfg.model, cfg.data, 0, False, tmp_path)
    return evaluate(gen, ["stacked_modes"], ev, CPU), torch.cat(g.picked), data


def test_mode_stats_follow_pacgans_formula():
    assert mode_stats(torch.arange(1000).repeat(3)) == (1000.0, pytest.approx(0.0, abs=1e-12))
    modes, kl = mode_stats(torch.tensor([5, 5, 5, 999]))
    assert modes == 2 and kl == pytest.approx(0.75 * math.log(750) + 0.25 * math.log(250))


def test_real_stacked_data_covers_the_modes_a_sample_of_that_size_can(stacked16, tmp_path):
    out, picked, data = _evaluate(stacked16, False, tmp_path)
    assert len(picked) == 2000
    # what a perfect classifier reads: the items' own labels; 1,000 (1 - 0.999^2000) = 864.8 modes
    # are expected of 2,000 uniform draws
    true_modes, true_kl = mode_stats(data.y[picked])
    assert true_modes == pytest.approx(864.8, abs=20)
    assert true_kl == pytest.approx(0.28, abs=0.03)
    assert out["stacked/classifier_acc"] > 0.9  # held out; reported
    assert out["stacked/modes"] == pytest.approx(true_modes, abs=30)
    assert out["stacked/kl"] == pytest.approx(true_kl, abs=0.06)
    # the reference: 2,000 other real items, read by the same classifier
    assert out["stacked/real_modes"] == pytest.approx(864.8, abs=30)
    assert out["stacked/real_kl"] == pytest.approx(0.28, abs=0.06)
    # the classifier metric's own classifier of the 5,000 digits, cached; the reference cached too
    assert [p.name for p in (stacked16[3] / "classifiers").iterdir()] == [
        p.name for p in (stacked16[3] / "classifiers").glob("mnist5k-(5000, 1, 16, 16)-*-e5-v2.pt")
    ]
    assert len(list((stacked16[3] / "stacked").glob("stacked_mnist5k-(2000, 3, 16, 16)-*.pt"))) == 1


def test_a_generator_of_one_triple_covers_one_mode(stacked16, tmp_path):
    out, _, _ = _evaluate(stacked16, True, tmp_path)
    assert out["stacked/modes"] == 1 and out["stacked/kl"] == pytest.approx(math.log(1000), rel=1e-12)


def test_the_protocols_sample_count_is_the_default():
    assert sample_count(None, ["stacked_modes"]) == 26_000
    assert sample_count(None, ["classifier", "stacked_modes"]) == 26_000
    assert sample_count(None, ["classifier"]) == 10_000 and sample_count(500, ["stacked_modes"]) == 500


def test_preflight_refuses_sets_that_are_not_stacked():
    with pytest.raises(EvalError) as err:
        preflight(["stacked_modes"], "mnist5k", True, EvalConfig())
    assert str(err.value) == (
        "metric stacked_modes counts the digit triples (1,000 modes) of Stacked MNIST, but this run's data "
        "set is data=mnist5k; it is for runs trained on data=stacked_mnist5k or data=stacked_mnist."
    )
    preflight(["stacked_modes"], "stacked_mnist", True, EvalConfig())


def test_metric_keys_are_known_to_eval_best():
    every = ("data=stacked_mnist5k", "eval.every=5", "eval.metrics=[stacked_modes]")
    check_result_keys(compose_config(*every, "eval.best=stacked/modes", "eval.best_mode=max", tiny=False))
    check_result_keys(compose_config(*every, "trainer.objective=eval/stacked/kl", tiny=False))
    with pytest.raises(ConfigError) as err:
        check_result_keys(compose_config(*every, "eval.best=stacked/mode", tiny=False))
    assert (
        "The keys these metrics report: stacked/modes, stacked/kl, stacked/real_modes, stacked/real_kl, "
        in str(err.value)
    )


# ---- training with the metric, gan-report, resume ----------------------------------------------
def test_training_evaluates_stacked_modes_at_the_end(stacked16, tmp_path):
    from gan_cli.report import report

    cache = stacked16[3]
    cfg = compose_config(
        *SMALL,
        "trainer.steps=2",
        "eval.n_samples=200",
        "eval.classifier_epochs=5",
        f"eval.cache_dir={cache}",
        tiny=False,
    )
    assert cfg.eval.every == 2  # the recipe's eval.every follows trainer.steps
    trainer = Trainer(cfg, tmp_path)
    fit(trainer, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    last = records[-1]
    assert last["eval/step"] == 2 and 1 <= last["eval/stacked/modes"] <= 200
    assert 0 <= last["eval/stacked/kl"] <= math.log(1000)
    assert last["eval/stacked/classifier_acc"] > 0.9  # the module's classifier, from the cache
    assert [r for r in records[:-1] if "eval/stacked/modes" in r] == []
    md = report([tmp_path]).read_text()
    assert "final stacked/modes" in md and "best stacked/modes" in md


def test_resume_of_a_stacked_run_equals_the_straight_run(tmp_path):
    # 256 items / batch 16 = 16 batches an epoch; the stop at 5 steps is mid-epoch
    over = [*SMALL, "eval.every=0", "trainer.log_every=2"]
    straight = Trainer(compose_config(*over, "trainer.steps=9", tiny=False), tmp_path / "a")
    fit(straight, tmp_path / "a")
    first = Trainer(compose_config(*over, "trainer.steps=5", tiny=False), tmp_path / "b")
    fit(first, tmp_path / "b")
    assert first.game.batches.pos % 256 != 0
    from gan_cli.checkpoint import load_checkpoint

    resumed = Trainer(compose_config(*over, "trainer.steps=9", tiny=False), tmp_path / "b")
    resumed.load_state_dict(load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt"), tmp_path)
    assert resumed.step == 5
    fit(resumed, tmp_path / "b")
    assert_same_state(straight, resumed)


# ---- the reproduce script ----------------------------------------------------------------------
def test_reproduce_script_trains_seeds_and_tables_them(stacked16, tmp_path):
    out = tmp_path / "table"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "reproduce_stacked_mnist.py"),
            "--rows",
            "small_d_dcgan",
            "--seeds",
            "2",
            "--steps",
            "2",
            "--threads",
            "1",
            "--samples",
            "200",
            "--eval-set",
            "eval.classifier_epochs=5",
            "--eval-set",
            f"eval.cache_dir={stacked16[3]}",
            "--out",
            str(out),
            "--",
            *SMALL[1:],
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads((out / "runs.json").read_text())["small_d_dcgan"]
    assert [r["seed"] for r in runs] == [0, 1]
    for r in runs:  # the table's numbers are gan-eval's, of that seed's run, with no packing
        saved = json.loads((out / "small_d_dcgan" / f"seed{r['seed']}" / "eval.json").read_text())
        assert saved["n_samples"] == 200 and r["stacked/modes"] == saved["stacked/modes"]
        config = (out / "small_d_dcgan" / f"seed{r['seed']}" / ".hydra" / "config.yaml").read_text()
        assert "pack: 1" in config and "steps: 2" in config
    md = (out / "table.md").read_text()
    assert "| PacDCGAN4 (paper) | | 667.4 | 1.81 | | |" in md
    mean = sum(r["stacked/modes"] for r in runs) / 2
    assert "| DCGAN (gan-cli): `experiment=stacked_mnist_small_d model.pack=1 " in md
    assert f"| 2 | {mean:.1f} ± " in md
    bad = min(runs, key=lambda r: (r["stacked/modes"], -r["stacked/kl"]))
    assert (
        f"worst seed of small_d_dcgan: seed {bad['seed']}, {bad['stacked/modes']:.0f} modes" in result.stdout
    )
