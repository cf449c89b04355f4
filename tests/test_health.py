"""Health warnings fire when the game goes wrong, and only then."""

import json

import pytest
import torch
from torch import nn

from gan_cli.health import HealthMonitor, mean_pairwise_distance
from gan_cli.schema import HealthConfig
from gan_cli.trainer import Trainer
from tests.conftest import compose_config
from tests.test_training import fit


def window(monitor: HealthMonitor, d_real: float, d_fake: float, steps: int = 5):
    for i in range(steps):
        monitor.add(i, torch.tensor([0.1, 0.2, d_real, d_fake, 1.0, 1.0]))


def test_monitor_window_means_and_thresholds():
    m = HealthMonitor(HealthConfig(warmup=0), probabilistic=True, device=torch.device("cpu"))
    window(m, 0.995, 0.005)
    s = m.summarise(10, diversity=1.0)
    assert s.metrics["d/real"] == pytest.approx(0.995) and s.metrics["loss/g"] == pytest.approx(0.2)
    assert s.warnings == ["D_OVERPOWERS"]
    window(m, 0.3, 0.2)
    assert m.summarise(20, diversity=0.05).warnings == ["D_FAILING", "G_COLLAPSE"]
    window(m, 0.7, 0.3)
    assert m.summarise(30, diversity=0.9).warnings == []


def test_monitor_nonfinite_names_first_step():
    m = HealthMonitor(HealthConfig(), probabilistic=False, device=torch.device("cpu"))
    m.add(7, torch.tensor([0.1, 0.2, 0.5, 0.5, 1.0, 1.0]))
    m.add(8, torch.tensor([float("nan"), 0.2, 0.5, 0.5, 1.0, 1.0]))
    m.add(9, torch.tensor([float("inf"), 0.2, 0.5, 0.5, 1.0, 1.0]))
    s = m.summarise(10, None)
    assert s.first_nonfinite_step == 8 and s.warnings == ["NON_FINITE"]
    assert s.nonfinite_losses == ["loss/d"]


def test_wasserstein_losses_skip_probability_warnings():
    m = HealthMonitor(HealthConfig(warmup=0), probabilistic=False, device=torch.device("cpu"))
    window(m, 0.2, 0.001)
    assert m.summarise(10, diversity=1.0).warnings == []


def test_pairwise_distance():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert mean_pairwise_distance(x).item() == 5.0
    assert mean_pairwise_distance(torch.ones(6, 3)).item() == 0.0


def warnings_logged(run_dir) -> list[str]:
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [w for r in records for w in r["warnings"]]


def test_overpowering_discriminator_raises_d_overpowers(tmp_path):
    # G barely learns while a fast D learns to separate: D(x) -> 1, D(G(z)) -> 0
    cfg = compose_config(
        "model=mlp",
        "data.size=256",
        "trainer.batch_size=32",
        "trainer.steps=60",
        "optim.lr_g=1e-9",
        "optim.lr_d=1e-2",
        "trainer.log_every=20",
        "trainer.health.warmup=0",
        "model.d_hidden=[64,64]",
    )
    trainer = Trainer(cfg, tmp_path)
    fit(trainer, tmp_path)
    assert "D_OVERPOWERS" in warnings_logged(tmp_path)


class ConstantGenerator(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = shape
        self.bias = nn.Parameter(torch.zeros(shape))

    def forward(self, z, y=None):
        return torch.tanh(self.bias).expand(len(z), *self.shape) + 0 * z.sum()


def test_constant_generator_raises_g_collapse(tmp_path):
    cfg = compose_config(
        "model=dcgan",
        "trainer.steps=4",
        "trainer.log_every=2",
        "trainer.health.warmup=0",
        "trainer.ema_decay=0",
    )
    trainer = Trainer(cfg, tmp_path)
    trainer.game.G = ConstantGenerator((1, 16, 16))
    trainer.game.opt_g = torch.optim.Adam(trainer.game.G.parameters())
    fit(trainer, tmp_path)
    assert "G_COLLAPSE" in warnings_logged(tmp_path)
    assert trainer.game.diversity() < 1e-6


def test_healthy_start_raises_nothing(tmp_path):
    cfg = compose_config("model=dcgan", "trainer.steps=4", "trainer.log_every=2")
    trainer = Trainer(cfg, tmp_path)
    fit(trainer, tmp_path)
    assert warnings_logged(tmp_path) == []  # warm-up keeps early noise quiet
