"""The Parzen-window log-likelihood (Goodfellow et al. 2014): closed forms, batching, the sigma
search, and the metric end to end through gan_cli.metrics.evaluate and gan-train / gan-eval."""

import json
import math
import re

import pytest
import torch
from torch import nn

from gan_cli.data import mixture_modes
from gan_cli.metrics import EvalError, evaluate
from gan_cli.metrics.parzen import (
    IMAGE_SIGMAS,
    default_sigmas,
    log_likelihood,
    mean_and_se,
    parzen,
    select_sigma,
)
from gan_cli.models import build_models
from gan_cli.sampling import LoadedGenerator
from gan_cli.schema import ConfigError, EvalConfig, check_config
from tests.conftest import TINY, compose_config, run_cli

CPU = torch.device("cpu")


def log_normaliser(n: int, d: int, sigma: float) -> float:
    return -math.log(n) - d / 2 * math.log(2 * math.pi * sigma**2)


# ---- closed forms ------------------------------------------------------------------------------
def test_kernels_on_far_apart_points_give_the_normaliser():
    n, d = 20, 3
    points = 10.0 * torch.arange(n, dtype=torch.float64)[:, None].expand(n, d)  # neighbours 17.3 apart
    sigmas = [4.0, 1.0, 0.1, 0.01]
    ll = log_likelihood(points, points, sigmas).mean(1)
    gaps = [float(ll[i]) - log_normaliser(n, d, s) for i, s in enumerate(sigmas)]
    # each neighbour's kernel adds exp(-300 / (2 sigma^2)): visible at sigma 4, gone from sigma 1 on
    assert gaps[0] == pytest.approx(2 * (n - 1) / n * math.exp(-300 / 32), rel=1e-3)
    assert gaps[1:] == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)


def test_one_kernel_is_the_gaussian_density():
    x = torch.randn(300, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigma = 0.7
    ll = log_likelihood(x, torch.zeros(1, 3), [sigma])[0]
    expected = -x.pow(2).sum(1) / (2 * sigma**2) - 1.5 * math.log(2 * math.pi * sigma**2)
    assert torch.allclose(ll, expected, rtol=0, atol=1e-10)


def test_many_standard_normal_kernels_reach_its_expected_log_density():
    gen = torch.Generator().manual_seed(1)
    kernels, valid, test = (torch.randn(n, 2, generator=gen) for n in (4_000, 500, 2_000))
    result = parzen(kernels, valid, test, default_sigmas(points=True))
    # E[log N(x; 0, I)] = -(d/2) log(2 pi e); the estimate lies a little below (kernel smoothing)
    assert result.ll == pytest.approx(-math.log(2 * math.pi * math.e), abs=0.06)
    exact = float((-test.double().pow(2).sum(1) / 2 - math.log(2 * math.pi)).mean())  # these points'
    assert -0.03 < result.ll - exact < 0
    assert 0.1 < result.sigma < 0.6 and result.se == pytest.approx(1 / math.sqrt(2_000), rel=0.2)


# ---- batching, the sigma search, the standard error ----------------------------------------------
def test_batching_does_not_change_the_numbers():
    gen = torch.Generator().manual_seed(2)
    x, kernels = torch.rand(53, 30, generator=gen), torch.rand(97, 30, generator=gen)
    sigmas = [0.05, 0.3, 1.0]
    d2 = (x.double()[:, None] - kernels.double()[None]).pow(2).sum(-1)  # unbatched, no expansion
    direct = torch.stack(
        [torch.logsumexp(-d2 / (2 * s**2), dim=1) + log_normaliser(97, 30, s) for s in sigmas]
    )
    for chunks in ((1, 40), (7, 13), (53, 97), (1024, 4096)):
        assert torch.allclose(log_likelihood(x, kernels, sigmas, *chunks), direct, rtol=0, atol=1e-9)


def test_sigma_search_picks_the_best_grid_value():
    gen = torch.Generator().manual_seed(3)
    kernels, valid = torch.randn(500, 4, generator=gen), torch.randn(200, 4, generator=gen)
    grid = list(IMAGE_SIGMAS)
    each = [float(log_likelihood(valid, kernels, [s]).mean()) for s in grid]
    sigma, means = select_sigma(valid, kernels, grid)
    assert means == pytest.approx(each, rel=1e-12)
    assert sigma == grid[each.index(max(each))] and grid[0] < sigma < grid[-1]  # an inner optimum
    test = torch.randn(100, 4, generator=gen)
    result = parzen(kernels, valid, test, grid)
    assert result.sigma == sigma
    assert result.ll == pytest.approx(float(log_likelihood(test, kernels, [sigma]).mean()), rel=1e-12)


def test_standard_error_is_std_over_root_n():
    mean, se = mean_and_se(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert mean == 2.5 and se == pytest.approx(math.sqrt(1.25) / 2, rel=1e-12)  # population std


def test_bad_arguments_raise():
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="positive"):
        log_likelihood(x, x, [0.1, 0.0])
    with pytest.raises(ValueError, match="match"):
        log_likelihood(x, torch.zeros(3, 4), [0.1])


# ---- the metric through gan_cli.metrics.evaluate ------------------------------------------------
TINY_RING = (*TINY, "model=mlp", "data=ring8", "data.image_size=0", "data.channels=0")


class MixtureSampler(nn.Module):
    """A stand-in generator that draws from ring8 itself (std 0.01), deterministic in z."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))
        self.register_buffer("modes", mixture_modes("ring8"))

    def forward(self, z, y=None):
        return self.modes[(z[:, 0].abs() * 1e4).long() % 8] + 0.01 * z[:, 1:3]


def _ring_generator(g: nn.Module | None, tmp_path) -> LoadedGenerator:
    cfg = compose_config(*TINY_RING, "data.size=2000")
    g = g or build_models(cfg.model, cfg.data, cfg.loss.name)[0]
    return LoadedGenerator(g.eval(), cfg.model, cfg.data, 0, False, tmp_path)


def test_parzen_metric_on_ring8(tmp_path):
    ev = EvalConfig(n_samples=1500, parzen_valid=200, parzen_test=300, cache_dir=str(tmp_path))
    data_like = evaluate(_ring_generator(MixtureSampler(), tmp_path), ["parzen"], ev, CPU)
    untrained = evaluate(_ring_generator(None, tmp_path), ["parzen"], ev, CPU)
    keys = {"parzen/ll", "parzen/se", "parzen/sigma", "parzen/real_ll", "parzen/real_se", "parzen/real_sigma"}
    assert set(data_like) == keys  # 1,500 samples and 2000 - 500 = 1,500 reference kernels: no note
    assert all(math.isfinite(v) for v in data_like.values())
    grid = default_sigmas(points=True)
    assert data_like["parzen/sigma"] in grid and data_like["parzen/real_sigma"] in grid
    # samples from the data score as the real training items do; an untrained G far lower
    gap = data_like["parzen/ll"] - data_like["parzen/real_ll"]
    assert abs(gap) < 3 * math.hypot(data_like["parzen/se"], data_like["parzen/real_se"])
    assert data_like["parzen/real_ll"] > 2.0  # tight modes: a density far above 1
    assert untrained["parzen/real_ll"] == data_like["parzen/real_ll"]  # the reference is cached
    assert untrained["parzen/ll"] < data_like["parzen/ll"] - 5
    assert len(list(tmp_path.glob("parzen/*.pt"))) == 1


def test_parzen_metric_on_images_is_in_pixels_of_zero_to_one(tmp_path):
    # every sample black (pixel 0): each kernel is the origin, so log p(x) = -||x||^2 / 2 - (d/2)
    # log(2 pi) at sigma 1; data=fake pixels are uniform k/255, E[x_i^2] = 511 / 1530
    cfg = compose_config("data.size=1000")

    class Black(nn.Module):
        def __init__(self):
            super().__init__()
            self.anchor = nn.Parameter(torch.zeros(()))

        def forward(self, z, y=None):
            return -torch.ones(len(z), 1, 16, 16)

    gen = LoadedGenerator(Black(), cfg.model, cfg.data, 0, False, tmp_path)
    ev = EvalConfig(
        n_samples=100, parzen_sigmas=[1.0], parzen_valid=100, parzen_test=300, cache_dir=str(tmp_path)
    )
    out = evaluate(gen, ["parzen"], ev, CPU)
    d = 256
    assert out["parzen/ll"] == pytest.approx(-d * 511 / 1530 / 2 - d / 2 * math.log(2 * math.pi), abs=1.0)
    assert out["parzen/se"] == pytest.approx(math.sqrt(d * (1 / 5 - 1 / 9)) / 2 / math.sqrt(300), rel=0.25)
    assert out["parzen/sigma"] == 1.0 and out["parzen/real_ll"] > out["parzen/ll"]
    assert "note" not in out  # one sigma is no grid; 600 reference kernels >= 100 samples


@pytest.mark.parametrize(
    "settings,expected",
    [
        ({"parzen_sigmas": [0.1, -1.0]}, "eval.parzen_sigmas must list kernel widths > 0"),
        ({"parzen_test": 1}, "eval.parzen_test must be >= 2, got 1"),
        ({"parzen_valid": 0}, "eval.parzen_valid must be >= 1, got 0"),
        ({"parzen_test": 1500, "parzen_valid": 500}, "data=ring8 has only 2000 items"),
    ],
)
def test_parzen_metric_bad_settings(settings, expected, tmp_path):
    ev = EvalConfig(n_samples=100, cache_dir=str(tmp_path), **settings)
    with pytest.raises(EvalError, match=re.escape(expected)):
        evaluate(_ring_generator(MixtureSampler(), tmp_path), ["parzen"], ev, CPU)


def test_train_config_checks_parzen_settings():
    with pytest.raises(ConfigError) as err:
        check_config(compose_config("eval.parzen_sigmas=[0.1,0]", "eval.parzen_test=0"))
    assert "eval.parzen_sigmas must list kernel widths > 0" in str(err.value)
    assert "eval.parzen_test must be >= 2, got 0" in str(err.value)


@pytest.mark.slow  # two subprocesses: about 15 s
def test_parzen_during_training_keeps_the_highest_and_gan_eval_reports_it(tmp_path):
    result = run_cli(
        *TINY_RING,
        "data.size=700",
        "trainer.steps=4",
        "trainer.log_every=2",
        "eval.every=2",
        "eval.metrics=[parzen]",
        "eval.n_samples=300",
        "eval.parzen_valid=100",
        "eval.parzen_test=200",
        "eval.best=parzen/ll",
        "eval.best_mode=max",
        f"eval.cache_dir={tmp_path / 'cache'}",
        "hydra.run.dir=run",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval/parzen/ll" in r]
    assert [r["eval/step"] for r in evals] == [2, 4]
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    assert best["best"] == max(r["eval/parzen/ll"] for r in evals)
    assert len({r["eval/parzen/real_ll"] for r in evals}) == 1
    bad = run_cli(
        "run=run", "metrics=[parzen]", "eval.parzen_sigmas=[-1]", cwd=tmp_path, module="gan_cli.eval_main"
    )
    assert bad.returncode == 2 and "eval.parzen_sigmas" in bad.stderr and "Traceback" not in bad.stderr
