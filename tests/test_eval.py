"""Sampling, evaluation metrics (on stand-in features and hand-made points), and gan-report."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from gan_cli.data import load_dataset, mixture_modes
from gan_cli.latent import sample_latents
from gan_cli.metrics import evaluate, features
from gan_cli.metrics.modes2d import modes2d
from gan_cli.sampling import LoadedGenerator, generate, load_generator, slerp
from gan_cli.schema import EvalConfig, ModelConfig
from tests.conftest import TINY, compose_config, run_cli


# ---- Frechet distance and friends on a stand-in feature extractor (the identity) ---------------
def test_frechet_distance_of_a_set_with_itself_is_zero():
    x = torch.randn(5000, 8, generator=torch.Generator().manual_seed(0))
    assert features.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_matches_closed_form_for_gaussians():
    # N(0, I) vs N(mu, s^2 I): ||mu||^2 + d (1 + s^2 - 2 s)
    gen = torch.Generator().manual_seed(1)
    d, n, s = 6, 200_000, 1.5
    mu = torch.tensor([1.0, -2.0, 0.5, 0.0, 0.0, 3.0])
    a = torch.randn(n, d, generator=gen)
    b = mu + s * torch.randn(n, d, generator=gen)
    expected = float(mu.pow(2).sum()) + d * (1 + s**2 - 2 * s)
    assert features.frechet_distance(a, b) == pytest.approx(expected, rel=0.02)


def test_kid_and_precision_recall_behave():
    gen = torch.Generator().manual_seed(2)
    a, b = torch.randn(1500, 8, generator=gen), torch.randn(1500, 8, generator=gen)
    far = b + 10
    assert abs(features.kid(a, b)[0]) < 0.05 < features.kid(a, far)[0]
    p, r = features.precision_recall(a, b)
    assert p > 0.8 and r > 0.8
    assert features.precision_recall(a, far) == (0.0, 0.0)


def test_inception_score_of_confident_uniform_logits():
    logits = torch.full((1000, 10), -20.0)
    logits[torch.arange(1000), torch.arange(1000) % 10] = 20.0  # confident, classes balanced
    assert features.inception_score(logits, splits=1)[0] == pytest.approx(10.0, rel=1e-3)


def test_histogram_kl():
    assert features.histogram_kl(np.array([1.0, 1.0]), np.array([5.0, 5.0])) == pytest.approx(0.0)
    assert features.histogram_kl(np.array([1.0, 0.0]), np.array([1.0, 1.0])) == pytest.approx(
        math.log(2), rel=1e-4
    )


# ---- modes2d on hand-made points -------------------------------------------------------------
def test_modes2d_perfect_generator():
    modes = mixture_modes("ring8")
    pts = modes.repeat(10, 1) + 0.01 * torch.randn(80, 2, generator=torch.Generator().manual_seed(0)).clamp(
        -2, 2
    )
    out = modes2d(pts, modes, std=0.01)
    assert out["modes2d/modes"] == 8.0 and out["modes2d/hq_pct"] == 100.0
    assert out["modes2d/rkl"] == pytest.approx(0.0, abs=1e-9)


def test_modes2d_spread_is_one_for_the_data_and_sees_tight_clusters():
    modes = mixture_modes("grid25")
    which = torch.randint(0, 25, (20_000,), generator=torch.Generator().manual_seed(0))
    noise = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(1))
    data = modes2d(modes[which] + 0.05 * noise, modes, std=0.05)
    assert data["modes2d/spread"] == pytest.approx(1.0, abs=0.02)
    assert data["modes2d/hq_pct"] == pytest.approx(98.9, abs=0.3)  # the data's own score
    tight = modes2d(modes[which] + 0.025 * noise, modes, std=0.05)  # half as wide: scores higher
    assert tight["modes2d/spread"] == pytest.approx(0.5, abs=0.02) and tight["modes2d/hq_pct"] > 99.9


def test_modes2d_collapsed_and_off_mode():
    modes = mixture_modes("grid25")
    one = modes2d(modes[3].repeat(50, 1), modes, std=0.05)
    assert one["modes2d/modes"] == 1 and one["modes2d/rkl"] == pytest.approx(math.log(25))
    half = modes2d(torch.cat([modes[:2], modes[:2] + 1.0]), modes, std=0.05)  # 1.0 is 20 std away
    assert half == {
        "modes2d/modes": 2.0,
        "modes2d/hq_pct": 50.0,
        "modes2d/rkl": pytest.approx(math.log(25 / 2)),
        "modes2d/spread": 0.0,  # the HQ samples sit exactly on their modes
    }
    assert math.isnan(modes2d(modes[:2] + 1.0, modes, std=0.05)["modes2d/spread"])


# ---- the classifier metric on real data with right and with shuffled labels ---------------------
class RealLookup(nn.Module):
    """A stand-in 'generator' that returns real images: of the requested class, or (shuffled) of
    a random other class."""

    def __init__(self, x, y, shuffled: bool):
        super().__init__()
        self.by_class = [x[y == c] for c in range(10)]
        self.shuffled = shuffled
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, z, y):
        pick = (z[:, 0].abs() * 1e4).long()
        cls = (y + 1 + pick % 9) % 10 if self.shuffled else y
        return torch.stack(
            [
                self.by_class[c][p % len(self.by_class[c])]
                for c, p in zip(cls.tolist(), pick.tolist(), strict=True)
            ]
        )


@pytest.fixture(scope="module")
def mnist5k():
    cfg = compose_config("data=mnist5k", "model=cgan", tiny=False)
    data = load_dataset(cfg.data)
    return cfg, data.x.float().mul(2 / 255).sub(1), data.y


@pytest.fixture(scope="module")
def classifier_cache(tmp_path_factory):
    """One cache for the module: the MNIST-5k classifier (5 epochs, 5,000 digits) is trained once."""
    return tmp_path_factory.mktemp("classifier_cache")


def test_classifier_metric_real_vs_shuffled_labels(mnist5k, classifier_cache, tmp_path):
    cfg, x, y = mnist5k
    ev = EvalConfig(n_samples=1000, real_samples=5000, classifier_epochs=5, cache_dir=str(classifier_cache))
    results = {}
    for shuffled in (False, True):
        gen = LoadedGenerator(RealLookup(x, y, shuffled).eval(), cfg.model, cfg.data, 0, False, tmp_path)
        results[shuffled] = evaluate(gen, ["classifier"], ev, torch.device("cpu"))
    right, wrong = results[False], results[True]
    assert right["classifier/acc_real"] > 0.9
    assert right["classifier/cond_acc"] > 0.9 > 0.3 > wrong["classifier/cond_acc"]
    assert right["classifier/kl"] < 0.05  # balanced labels, like the real set
    assert right["classifier/fd"] < 3 * right["classifier/fd_floor"] + 0.05
    assert len(right["classifier/hist"]) == 10 and sum(right["classifier/hist"]) == pytest.approx(1, abs=1e-3)
    assert "biased" in right["note"]  # fewer than 10,000 samples
    assert list(classifier_cache.glob("classifiers/*.pt"))  # trained once, cached


def test_a_run_on_a_subset_is_judged_against_the_whole_set(mnist5k, classifier_cache, tmp_path):
    """data.subset=500: the classifier and the reference statistics come from all of MNIST-5k (as
    the ADA paper's FIDs), not from the 500 images G saw (450 of which once trained a classifier
    to 22 % held-out accuracy). The module's cache holds the whole set's classifier; one keyed by
    the subset would be trained anew on its 450 images and fail the accuracy check."""
    import dataclasses

    from gan_cli.metrics import _real

    cfg, x, y = mnist5k
    few = dataclasses.replace(cfg.data, subset=500)
    gen = LoadedGenerator(RealLookup(x, y, False).eval(), cfg.model, few, 0, False, tmp_path)
    real_x, real_y, fingerprint = _real(gen, 10**6, 0)
    assert len(real_x) == 5000 and fingerprint == _real_of_full(cfg, gen)
    ev = EvalConfig(n_samples=1000, real_samples=5000, classifier_epochs=5, cache_dir=str(classifier_cache))
    out = evaluate(gen, ["classifier"], ev, torch.device("cpu"))
    assert out["classifier/acc_real"] > 0.9 and "say little" not in out["note"]


def _real_of_full(cfg, gen):
    from gan_cli.metrics import _real_of

    return _real_of(cfg.data, 10**6, 0)[2]


def test_a_classifier_that_cannot_read_the_real_set_comes_with_a_note(mnist5k, tmp_path):
    from gan_cli.metrics import _classifier_metrics

    cfg, x, y = mnist5k
    gen = LoadedGenerator(RealLookup(x, y, False).eval(), cfg.model, cfg.data, 0, False, tmp_path)
    noise = torch.randint(
        0, 10, (600,), generator=torch.Generator().manual_seed(0)
    )  # labels that mean nothing
    ev = EvalConfig(classifier_epochs=1, cache_dir=str(tmp_path))
    real = (x[:600].add(1).mul(127.5)).round().to(torch.uint8)
    out = _classifier_metrics(gen, x[600:800], None, real, noise, "noise", ev, tmp_path, torch.device("cpu"))
    assert out["classifier/acc_real"] < 0.3
    assert "held-out accuracy on the real set is" in out["note"] and "say little" in out["note"]


# ---- sampling --------------------------------------------------------------------------------
def test_truncation_and_slerp():
    z = sample_latents(ModelConfig(z_dim=16), 500, torch.Generator().manual_seed(0), truncation=0.5)
    assert z.abs().max() <= 0.5
    a, b = torch.randn(3, 16), torch.randn(3, 16)
    assert torch.allclose(slerp(a, b, torch.zeros(3, 1)), a, atol=1e-5)
    assert torch.allclose(slerp(a, b, torch.ones(3, 1)), b, atol=1e-5)


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cgan")
    result = run_cli(*TINY, "model=cgan", "trainer.steps=2", "hydra.run.dir=run", cwd=root)
    assert result.returncode == 0, result.stderr[-2000:]
    return root / "run"


def test_gan_sample_is_reproducible(cgan_run, tmp_path):
    outs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        result = run_cli(
            f"run={cgan_run}",
            "n=20",
            f"out={tmp_path / name}.npy",
            f"seed={seed}",
            "labels=[3,3,7]",
            cwd=tmp_path,
            module="gan_cli.sample_main",
        )
        assert result.returncode == 0, result.stderr[-2000:]
        outs.append(np.load(tmp_path / f"{name}.npy"))
    assert outs[0].shape == (20, 16, 16, 1) and outs[0].dtype == np.uint8
    assert np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])
    labels = np.load(tmp_path / "a_labels.npy")
    assert labels.tolist()[:6] == [3, 3, 7, 3, 3, 7]


def test_gan_sample_grids(cgan_run, tmp_path):
    from PIL import Image

    grid = run_cli(
        f"run={cgan_run}", "n=30", f"out={tmp_path / 'g.png'}", cwd=tmp_path, module="gan_cli.sample_main"
    )
    assert grid.returncode == 0, grid.stderr[-2000:]
    with Image.open(tmp_path / "g.png") as img:  # one column per class: 10 a row, 3 rows of 16 px
        assert img.size == (10 * 16 + 11 * 2, 3 * 16 + 4 * 2)
    walk = run_cli(
        f"run={cgan_run}",
        "interpolate=5",
        "n=10",
        f"out={tmp_path / 'w.png'}",
        cwd=tmp_path,
        module="gan_cli.sample_main",
    )
    assert walk.returncode == 0, walk.stderr[-2000:]
    with Image.open(tmp_path / "w.png") as img:
        assert img.size == (5 * 16 + 6 * 2, 2 * 16 + 3 * 2)
    files = run_cli(
        f"run={cgan_run}", "n=4", f"out={tmp_path / 'dir'}", cwd=tmp_path, module="gan_cli.sample_main"
    )
    assert files.returncode == 0 and len(list((tmp_path / "dir").glob("*.png"))) == 4


def test_gan_eval_preflight_names_the_weights(cgan_run, tmp_path):
    result = run_cli(
        f"run={cgan_run}",
        "metrics=[fid,kid]",
        f"eval.inception_weights={tmp_path / 'nope.pth'}",
        cwd=tmp_path,
        module="gan_cli.eval_main",
    )
    assert result.returncode == 2
    assert "weights-inception-2015-12-05-6726825d.pth" in result.stderr and "nope.pth" in result.stderr
    bad = run_cli(f"run={cgan_run}", "metricz=[fid]", cwd=tmp_path, module="gan_cli.eval_main")
    assert bad.returncode == 2 and "metricz" in bad.stderr and "Traceback" not in bad.stderr


# ---- evaluation during training, best.pt, and gan-report --------------------------------------
# the tiny run config on 2-D points
TINY_RING = (*TINY, "model=mlp", "data=ring8", "data.image_size=0", "data.channels=0")


def test_eval_during_training_keeps_best(tmp_path):
    result = run_cli(
        *TINY_RING,
        "trainer.steps=6",
        "trainer.log_every=2",
        "eval.every=3",
        "eval.metrics=[modes2d]",
        "eval.best=modes2d/hq_pct",
        "eval.best_mode=max",
        "hydra.run.dir=run",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval/modes2d/modes" in r]
    assert [r["eval/step"] for r in evals] == [3, 6]
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    assert best["best"] == max(r["eval/modes2d/hq_pct"] for r in evals)
    out = run_cli("run=run", "metrics=[modes2d]", cwd=tmp_path, module="gan_cli.eval_main")
    assert out.returncode == 0, out.stderr[-2000:]
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert saved["step"] == 6 and 0 <= saved["modes2d/modes"] <= 8


def test_gan_sample_draws_from_the_runs_mixture_prior(tmp_path):
    result = run_cli(
        *TINY_RING,
        "model.z_dim=2",
        "model.z_components=4",
        "trainer.steps=2",
        "hydra.run.dir=run",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for args in (["out=x.npy"], ["out=w.npy", "interpolate=3"]):
        out = run_cli("run=run", "n=12", "seed=5", *args, cwd=tmp_path, module="gan_cli.sample_main")
        assert out.returncode == 0, out.stderr[-2000:]
    gen = load_generator(tmp_path / "run", torch.device("cpu"))
    z = sample_latents(gen.model, 12, torch.Generator().manual_seed(5))
    assert np.allclose(np.load(tmp_path / "x.npy"), generate(gen, z, None).numpy(), atol=1e-6)
    rng = torch.Generator().manual_seed(5)
    a, b = (sample_latents(gen.model, 4, rng) for _ in range(2))  # a walk: 4 rows of 3 points, a to b
    walk = torch.lerp(a[:, None], b[:, None], torch.linspace(0, 1, 3).view(1, -1, 1)).reshape(-1, 2)
    assert np.allclose(np.load(tmp_path / "w.npy"), generate(gen, walk, None).numpy(), atol=1e-6)


def test_gan_report_on_a_two_job_sweep(tmp_path):
    sweep = run_cli(
        "-m",
        "loss=nonsaturating,hinge",
        *TINY,
        "model=mlp",
        "trainer.steps=4",
        "trainer.log_every=2",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    result = run_cli("sweep", cwd=tmp_path, module="gan_cli.report_main")
    assert result.returncode == 0, result.stderr[-2000:]
    md = (tmp_path / "sweep" / "report.md").read_text().splitlines()
    assert len(md) == 4 and "loss=nonsaturating" in md[2] and "loss=hinge" in md[3]
    header = md[0]
    for column in ("overrides", "status", "steps", "wall_min", "warnings", "loss/d", "diversity"):
        assert column in header
    assert "done" in md[2]
    csv_rows = (tmp_path / "sweep" / "report.csv").read_text().splitlines()
    assert len(csv_rows) == 3
    assert (tmp_path / "sweep" / "report.png").stat().st_size > 1000


# ---- settings and inputs too small to evaluate -----------------------------------------------
class Zeros(nn.Module):
    """A generator of grey images: enough to reach the real set's checks."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, z, y=None):
        return torch.zeros(len(z), 3, 16, 16) + self.anchor


def test_gan_eval_checks_eval_settings_up_front(cgan_run, tmp_path):
    """The reported inputs: eval.batch_size=0, eval.n_samples=-5 and eval.real_samples=2 ended in
    tracebacks (range(), a negative dimension, numpy's LinAlgError in the Frechet distance)."""
    cases = {
        ("eval.batch_size=0", "eval.n_samples=-5"): (
            "Invalid settings: eval.n_samples must be >= 2, got -5; eval.batch_size must be >= 1, got 0."
        ),
        ("eval.real_samples=2",): "eval.real_samples=2: metric classifier needs at least 10 real samples",
    }
    for args, expected in cases.items():
        out = run_cli(
            f"run={cgan_run}", "metrics=[classifier]", *args, cwd=tmp_path, module="gan_cli.eval_main"
        )
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert expected in out.stderr, out.stderr


def test_a_real_set_too_small_for_the_metric(tmp_path):
    from gan_cli.metrics import EvalError

    cfg = compose_config("data.channels=3", "data.size=6", "model=cgan")
    gen = LoadedGenerator(Zeros(), cfg.model, cfg.data, 0, False, tmp_path)
    ev = EvalConfig(n_samples=20, real_samples=1000, classifier_epochs=1, cache_dir=str(tmp_path))
    with pytest.raises(
        EvalError, match=r"^data=fake holds only 6 items: metric classifier needs at least 10 real"
    ):
        evaluate(gen, ["classifier"], ev, torch.device("cpu"))
    assert features.sample_count_problems(["modes2d", "parzen"], 2, 2) == []  # their own counts
    assert features.sample_count_problems(["fid", "kid"], 10, 9) == [
        "eval.real_samples=9: metrics fid, kid need at least 10 real samples (the statistics of each set: "
        "a covariance, neighbours, splits); set eval.real_samples >= 10"
    ]


def test_eval_best_and_objective_must_be_results_of_the_metrics():
    """The reported input: eval.best naming a key the metrics never compute kept no best.pt, silently."""
    from gan_cli.metrics.keys import check_result_keys
    from gan_cli.schema import ConfigError

    every = ("eval.every=5", "eval.metrics=[classifier]")
    with pytest.raises(ConfigError) as err:
        check_result_keys(compose_config(*every, "eval.best=fid"))
    assert "eval.best=fid is not a result of eval.metrics=[classifier]" in str(err.value)
    assert "The keys these metrics report: classifier/acc_real, classifier/kl, classifier/fd" in str(
        err.value
    )
    check_result_keys(compose_config(*every, "eval.best=classifier/fd"))
    check_result_keys(compose_config(*every, "model=cgan", "eval.best=classifier/cond_acc"))
    with pytest.raises(ConfigError, match="eval.best=classifier/cond_acc is not a result"):
        check_result_keys(compose_config(*every, "eval.best=classifier/cond_acc"))  # unconditional
    check_result_keys(compose_config("eval.every=5", "eval.metrics=[parzen]", "eval.best=parzen/ll"))
    with pytest.raises(ConfigError, match=r"trainer.objective=eval/fid is not a result"):
        check_result_keys(compose_config(*every, "trainer.objective=eval/fid"))
    with pytest.raises(
        ConfigError, match=r"trainer.objective=eval/classifier/fd is an evaluation result, but eval"
    ):
        check_result_keys(compose_config("trainer.objective=eval/classifier/fd"))
    check_result_keys(compose_config(*every, "trainer.objective=eval/classifier/fd"))
    cyclegan = ("model=cyclegan", "eval.every=5", "eval.metrics=[classifier]")
    check_result_keys(compose_config(*cyclegan, "eval.best=translation/a2b/fd", tiny=False))
    with pytest.raises(ConfigError, match=r"eval.real_samples=4: metric classifier needs at least 10"):
        check_result_keys(compose_config(*cyclegan, "eval.real_samples=4", tiny=False))


@pytest.mark.slow
def test_a_sweep_objective_that_is_no_metric_gets_a_note(tmp_path):
    out = run_cli(
        "-m", *TINY_RING, "trainer.steps=2", "trainer.objective=nope", "hydra.sweep.dir=s", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "note: trainer.objective=nope is not among this job's final metrics (" in out.stderr
    assert "diversity" in out.stderr.split("trainer.objective=nope")[1]


def test_gan_report_reads_what_a_damaged_metrics_file_holds(tmp_path, capsys):
    """The reported input: a metrics.jsonl with a cut-short last line, a non-JSON line or a line
    that is no step record (a traceback), and an empty one; each line skipped is named."""
    from gan_cli.report import report

    good = [{"step": 2, "loss/d": 1.5, "elapsed": 6.0}, {"step": 4, "loss/d": 1.25, "elapsed": 12.0}]
    lines = [json.dumps(r) for r in good]
    contents = {
        "cut": f"{lines[0]}\n{lines[1]}\n{lines[1][:15]}",
        "garbage": f'{lines[0]}\nnot json at all\n[1, 2]\n{{"loss/d": 3}}\n{lines[1]}\n',
        "empty": "",
    }
    for name, text in contents.items():
        (tmp_path / "s" / name).mkdir(parents=True)
        (tmp_path / "s" / name / "metrics.jsonl").write_text(text)
    (tmp_path / "s" / "cut" / "eval.json").write_text("{not json")
    report([tmp_path / "s"])
    out = capsys.readouterr().out
    assert f"note: {tmp_path / 's' / 'cut' / 'metrics.jsonl'}: skipped line 3 (cut short: " in out
    assert f"note: {tmp_path / 's' / 'cut' / 'eval.json'} cannot be read (" in out
    assert "skipped lines 2 (not JSON); 3 (not a step record: no integer step); 4 (not a step record" in out
    assert f"note: {tmp_path / 's' / 'empty' / 'metrics.jsonl'} is empty (no step logged yet)" in out
    rows = {r.split("|")[1].strip(): r for r in (tmp_path / "s" / "report.md").read_text().splitlines()[2:]}
    assert "| 4 | 0.2 |" in rows["cut"] and "| 4 | 0.2 |" in rows["garbage"] and "| 0 |" in rows["empty"]
