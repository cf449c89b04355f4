"""Shared test helpers: compose the real configs (shrunk to tiny CPU runs) and build trainers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from gan_cli.cli import _setup
from gan_cli.schema import Config

REPO = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest -n N: N workers share the cores, one thread each
    import torch

    torch.set_num_threads(1)
CONFIGS = REPO / "configs"

# a config small enough for a CPU test to take a fraction of a second per step
TINY = [
    "data=fake",
    "data.image_size=16",
    "data.channels=1",
    "data.size=64",
    "model.g_channels=4",
    "model.d_channels=4",
    "model.z_dim=8",
    "model.embed_dim=4",
    "model.g_hidden=[16,16]",
    "model.d_hidden=[16,16]",
    "trainer.batch_size=8",
    "trainer.steps=3",
    "trainer.device=cpu",
    "trainer.progress=false",
    "trainer.tensorboard=false",
    "trainer.log_every=1",
    "trainer.sample_every=100",
    "trainer.ckpt_every=100",
    "trainer.n_samples=8",
    "trainer.health.diversity_samples=8",
]


def compose_config(*overrides: str, tiny: bool = True) -> Config:
    """The typed config that `gan-train <overrides>` would run with."""
    _setup()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("config", overrides=[*(TINY if tiny else []), *overrides])
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


def run_cli(
    *args: str, cwd: Path, timeout: int = 300, env: dict | None = None, module: str = "gan_cli.train"
) -> subprocess.CompletedProcess[str]:
    """Run `gan-train ...` (as `python -m gan_cli.train`) in a subprocess."""
    # tiny models: one thread each avoids oversubscribing a small CI machine
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


@pytest.fixture
def tiny_config():
    return compose_config
