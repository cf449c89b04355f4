"""End to end: `gan-train` in a subprocess, its run directory, a sweep, and the installed wheel."""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import REPO, TINY, run_cli


def test_gan_train_end_to_end(tmp_path):
    """A real run on the embedded MNIST subset: every artefact of the run directory."""
    result = run_cli(
        "trainer.steps=30",
        "trainer.batch_size=16",
        "model.g_channels=8",
        "model.d_channels=8",
        "trainer.log_every=10",
        "trainer.sample_every=15",
        "trainer.ckpt_every=20",
        "trainer.device=cpu",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "outputs" / "runs").iterdir())
    assert len(runs) == 1
    run = runs[0]
    assert f"Run directory: {run.resolve()}" in result.stdout
    assert (run / ".hydra" / "config.yaml").is_file()
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20, 30]
    assert {"loss/d", "loss/g", "d/real", "d/fake", "grad_norm/d", "grad_norm/g", "diversity"} <= set(
        records[0]
    )
    samples = sorted(p.name for p in (run / "samples").iterdir())
    assert samples == ["real.png", "step_000015.png", "step_000030.png"]
    for name in ("real.png", "step_000030.png"):
        with Image.open(run / "samples" / name) as img:
            assert img.size == (8 * 32 + 9 * 2, 8 * 32 + 9 * 2)  # 64 images, 8 a row, 2 px padding
    with Image.open(run / "samples" / "real.png") as img:  # digits: mostly black, some white
        pixels = torch.tensor(np.asarray(img.convert("L")), dtype=torch.float)
        assert 0.5 < (pixels < 30).float().mean() < 0.95 and (pixels > 200).any()
    assert "Run directory:" in (run / "train.log").read_text()
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["generator.pt", "last.pt", "step_000020.pt", "step_000030.pt"]
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 30 and state["config"]["data"]["name"] == "mnist5k"
    assert list(run.glob("tb/events.out.tfevents.*"))


def test_sweep_runs_each_job_in_its_own_directory(tmp_path):
    result = run_cli(
        "-m", "loss=nonsaturating,hinge", "model=mlp", *TINY, "trainer.steps=2", cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweeps = list((tmp_path / "outputs" / "sweeps").iterdir())
    assert len(sweeps) == 1
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir())
    assert [j.name for j in jobs] == ["0", "1"]
    losses = []
    for job in jobs:
        state = torch.load(job / "checkpoints" / "last.pt", weights_only=True)
        losses.append(state["config"]["loss"]["name"])
        assert len((job / "metrics.jsonl").read_text().splitlines()) == 2
    assert losses == ["nonsaturating", "hinge"]


def test_train_returns_objective_for_sweepers(tmp_path, monkeypatch):
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from gan_cli.cli import _setup, train

    _setup()
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, "model=mlp"], return_hydra_config=True)
        cfg.hydra.runtime.output_dir = str(tmp_path / "run")
        HydraConfig.instance().set_config(cfg)
        job_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        metrics = train(job_cfg)
    assert 0 < metrics["diversity"] and "loss/d" in metrics


@pytest.mark.skipif(os.environ.get("GAN_CLI_SKIP_WHEEL") == "1", reason="wheel test disabled")
def test_wheel_ships_configs(tmp_path):
    """Build the wheel, install it into a fresh venv, run `gan-train --cfg job` elsewhere."""
    dist = tmp_path / "dist"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next(dist.glob("gan_cli-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    # the dependencies come from this interpreter's site-packages (no network, no 5 GB torch copy)
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [py, "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = subprocess.run(
        [venv / "bin" / "gan-train", "--cfg", "job", "model=cgan"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "name: cgan" in out.stdout and "name: mnist5k" in out.stdout
    # the installed package is complete: it trains from another folder
    trained = subprocess.run(
        [
            venv / "bin" / "gan-train",
            "model=mlp",
            "data=ring8",
            "trainer.steps=2",
            "trainer.device=cpu",
            "trainer.progress=false",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    for script in ("gan-sample", "gan-eval", "gan-report"):
        assert (venv / "bin" / script).is_file()
    where = subprocess.run(
        [py, "-c", "import gan_cli; print(gan_cli.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(venv) in where  # the installed wheel, not the source tree


def _trained_run(tmp_path: Path) -> Path:
    from gan_cli.trainer import Trainer
    from tests.conftest import compose_config
    from tests.test_training import fit

    run = tmp_path / "run"
    trainer = Trainer(compose_config("model=mlp", "trainer.steps=2"), run)
    fit(trainer, run)
    return run


def test_cfg_job_of_a_resume_prints_the_config_it_will_use(tmp_path):
    """The reported input: `gan-train resume=RUN --cfg job` printed a fresh composition (model=dcgan,
    trainer.steps=2000), not the run's saved config that resuming uses."""
    run = _trained_run(tmp_path)
    out = run_cli(f"resume={run}", "trainer.steps=7", "--cfg", "job", cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"# resume={run}: the run's saved config")
    assert "  name: mlp" in out.stdout and "steps: 7" in out.stdout and "batch_size: 8" in out.stdout
    assert "name: dcgan" not in out.stdout and "steps: 2000" not in out.stdout
    assert not (tmp_path / "outputs").exists()


def test_resume_into_another_run_folder_is_refused(tmp_path):
    """The reported input: `resume=RUN hydra.run.dir=OTHER` trained in RUN and left OTHER empty."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"not read: the command stops before")
    out = run_cli(f"resume={run}", f"hydra.run.dir={tmp_path / 'other'}", cwd=tmp_path, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"resume={run} continues in the run's own folder {run}" in out.stderr
    assert f"gan-train resume={tmp_path / 'other'}" in out.stderr
    assert not (tmp_path / "other").exists()
