"""Exact resume, atomic checkpoints, signals, non-finite losses and untrusted files."""

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gan_cli.checkpoint import CheckpointError, CheckpointWriter, load_checkpoint
from gan_cli.trainer import NonFiniteError, Trainer
from tests.conftest import TINY, compose_config, run_cli
from tests.test_training import fit

PAIRS = [("dcgan", "nonsaturating"), ("cgan", "hinge"), ("mlp", "wgan_gp")]
# extra overrides: G with virtual batch norm (its reference latents travel in the checkpoint); two
# G steps per step on packed D inputs (the Stacked MNIST VEEGAN recipe's game); and back to one G step
# at step 7, after the stop at 5
VARIANTS = [(m, loss, ()) for m, loss in PAIRS] + [
    ("mlp", "lsgan", ("model.g_norm=virtual_batch",)),
    ("dcgan", "nonsaturating", ("loss.g_steps=2", "model.pack=2")),
    ("dcgan", "nonsaturating", ("loss.g_steps=2", "loss.g_steps_until=7")),
]


def assert_same_state(a: Trainer, b: Trainer) -> None:
    for name in ("G", "D", "G_ema"):
        sa, sb = getattr(a.game, name).state_dict(), getattr(b.game, name).state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{name}.{k} differs"
    for name in ("opt_g", "opt_d"):
        sa, sb = getattr(a.game, name).state_dict()["state"], getattr(b.game, name).state_dict()["state"]
        assert sa.keys() == sb.keys()
        for i in sa:
            for k in sa[i]:
                assert torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k])), f"{name}.{i}.{k}"
    assert a.step == b.step
    assert a.game.batches.state_dict()["pos"] == b.game.batches.state_dict()["pos"]
    assert torch.equal(a.game.fixed_z, b.game.fixed_z)


@pytest.mark.parametrize("model,loss,extra", VARIANTS)
def test_stop_and_resume_equals_straight_run(model, loss, extra, tmp_path):
    # 64 items / batch 8 = 8 batches an epoch; k=5 G steps stops mid-epoch (n_critic 5: mid-epoch too)
    over = [f"model={model}", f"loss={loss}", "trainer.log_every=2", *extra]
    straight = Trainer(compose_config(*over, "trainer.steps=9"), tmp_path / "a")
    fit(straight, tmp_path / "a")

    first = Trainer(compose_config(*over, "trainer.steps=5"), tmp_path / "b")
    fit(first, tmp_path / "b")
    assert first.game.batches.pos % 64 != 0  # really mid-epoch
    state = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    resumed = Trainer(compose_config(*over, "trainer.steps=9"), tmp_path / "b")
    resumed.load_state_dict(state, tmp_path)
    assert resumed.step == 5
    fit(resumed, tmp_path / "b")
    assert_same_state(straight, resumed)


def _wait_for(path: Path, lines: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= lines:
            return
        if proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {lines} lines")


def _spawn(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "gan_cli.train", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


LONG = [*TINY, "model=dcgan", "trainer.steps=120", "trainer.log_every=5", "trainer.ckpt_every=1000"]


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_and_resume_completes_exactly(sig, code, tmp_path):
    proc = _spawn([*LONG, "hydra.run.dir=run"], tmp_path)
    _wait_for(tmp_path / "run" / "metrics.jsonl", 3, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert f"gan-train resume={tmp_path / 'run'}" in err or "gan-train resume=run" in err
    stopped = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert 0 < stopped["step"] < 120

    resumed = run_cli("resume=run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resumed from run/checkpoints/last.pt at step {stopped['step']}" in resumed.stdout

    straight = run_cli(*LONG, "hydra.run.dir=straight", cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr[-3000:]
    a = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "straight" / "checkpoints" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 120
    for net in ("g", "d", "g_ema"):
        for k, v in a["models"][net].items():
            assert torch.equal(v, b["models"][net][k]), f"{net}.{k}"
    steps = [json.loads(x)["step"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))  # appended, nothing repeated
    assert [s for s in steps if s % 5 == 0] == list(range(5, 121, 5))  # nothing missing


def test_second_ctrl_c_exits_at_once(tmp_path):
    proc = _spawn([*LONG, "trainer.steps=100000", "hydra.run.dir=run"], tmp_path)
    _wait_for(tmp_path / "run" / "metrics.jsonl", 2, proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    if last.exists():
        load_checkpoint(last)  # whatever is there is complete


SAVER = """
import sys, torch
from pathlib import Path
from gan_cli.checkpoint import CheckpointWriter
writer = CheckpointWriter(Path(sys.argv[1]), keep=2)
big = {"w": torch.randn(2_000_000)}
step = int(sys.argv[2])
print("ready", flush=True)
while True:
    step += 1
    writer.save({"step": step, **big}, step)
"""


def test_sigkill_during_saves_never_corrupts_last(tmp_path):
    ckpts = tmp_path / "checkpoints"
    rng = random.Random(0)
    seen_steps = []
    for _ in range(6):
        start = seen_steps[-1] if seen_steps else 0
        proc = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(ckpts), str(start)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        proc.kill()
        proc.wait()
        if (ckpts / "last.pt").exists():
            state = load_checkpoint(ckpts / "last.pt")  # never truncated or unreadable
            assert state["w"].numel() == 2_000_000
            seen_steps.append(state["step"])
    assert seen_steps, "no checkpoint was ever completed"
    assert len(list(ckpts.glob("step_*.pt"))) <= 2 + 1  # keep 2 (+1 being written at the kill)
    CheckpointWriter(ckpts, keep=2)  # a new writer clears temp files left by the kills
    assert not list(ckpts.glob(".*.tmp"))


def test_keeps_newest_k(tmp_path):
    writer = CheckpointWriter(tmp_path, keep=2)
    for step in (10, 20, 30, 40):
        writer.save({"step": step}, step)
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["last.pt", "step_000030.pt", "step_000040.pt"]
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 40


# ---- bad files --------------------------------------------------------------------------------
class Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _real_checkpoint(tmp_path: Path) -> Path:
    trainer = Trainer(compose_config("model=mlp", "trainer.steps=1"), tmp_path / "src")
    fit(trainer, tmp_path / "src")
    return tmp_path / "src" / "checkpoints" / "last.pt"


def test_bad_files_get_one_paragraph(tmp_path):
    good = _real_checkpoint(tmp_path)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    noise = tmp_path / "noise.pt"
    noise.write_bytes(os.urandom(4096))
    raw_pickle = tmp_path / "raw.pkl"
    raw_pickle.write_bytes(pickle.dumps({"x": Payload(str(tmp_path / "PWNED"))}))
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, foreign)
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "gan-cli-checkpoint", "x": Payload(str(marker))}, evil)
    cases = {
        truncated: "truncated",
        noise: "not a readable checkpoint",
        raw_pickle: "not a readable checkpoint",
        foreign: "not a gan-cli checkpoint",
        evil: "refused to load",
        tmp_path / "missing.pt": "no such file",
    }
    for path, text in cases.items():
        result = run_cli(f"resume={path}", cwd=tmp_path, timeout=120)
        err = result.stderr
        assert result.returncode == 2, (path, err)
        assert str(path) in err and text in err, err
        assert "Traceback" not in err
    assert not marker.exists()  # the pickle's code never ran


def test_checkpoint_of_another_model(tmp_path):
    good = _real_checkpoint(tmp_path)
    other = Trainer(compose_config("model=mlp", "model.g_hidden=[32,32]"), tmp_path / "other")
    with pytest.raises(CheckpointError, match="different model"):
        other.load_state_dict(load_checkpoint(good), good)


def test_resume_refuses_model_and_data_changes(tmp_path):
    first = run_cli(*TINY, "model=dcgan", "trainer.steps=2", "hydra.run.dir=run", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    result = run_cli("resume=run", "model.g_channels=8", "data.image_size=32", "model=cgan", cwd=tmp_path)
    assert result.returncode == 2
    for text in ("model.g_channels", "data.image_size", "model.name", "refusing"):
        assert text in result.stderr, result.stderr
    # run length, logging and sampling may change, and the run's own config is used
    ok = run_cli("resume=run", "trainer.steps=4", "trainer.log_every=2", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr[-2000:]
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 4 and state["config"]["model"]["g_channels"] == 4
    assert state["config"]["data"]["name"] == "fake"


def test_resume_of_a_checkpoint_older_than_a_config_key(tmp_path):
    """A key added to the schema after a run was written takes its default, which is what that
    run did: resuming is not refused over it."""
    first = run_cli(*TINY, "model=dcgan", "trainer.steps=2", "hydra.run.dir=run", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    del state["config"]["model"]["g_activation"], state["config"]["loss"]["top_k"]
    path.unlink()
    torch.save(state, path)
    ok = run_cli("resume=run", "trainer.steps=4", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert torch.load(path, weights_only=True)["step"] == 4


def test_resume_from_one_step_checkpoint(tmp_path):
    run_cli(
        *TINY,
        "trainer.steps=6",
        "trainer.ckpt_every=2",
        "trainer.log_every=1",
        "trainer.keep_ckpts=5",
        "hydra.run.dir=run",
        cwd=tmp_path,
    )
    ok = run_cli("resume=run/checkpoints/step_000002.pt", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr[-2000:]
    steps = [json.loads(x)["step"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # the records after step 2 were replaced, not repeated


# ---- non-finite losses ------------------------------------------------------------------------
def _poison(trainer: Trainer, at_step: int, times: int = 1) -> None:
    """Make the D loss NaN at one step (and the next `times - 1` visits of it)."""
    original = trainer.game.loss
    hits = {"n": 0}

    def d_loss(real, fake):
        out = original.d_loss(real, fake)
        if trainer.step == at_step and hits["n"] < times:
            hits["n"] += 1
            return out * float("nan")
        return out

    trainer.game.loss = type(original)(d_loss, original.g_loss, original.probabilistic)


def test_nonfinite_stops_and_keeps_last_good(tmp_path):
    cfg = compose_config("trainer.steps=20", "trainer.log_every=4", "trainer.ckpt_every=4")
    trainer = Trainer(cfg, tmp_path)
    _poison(trainer, at_step=9)
    with pytest.raises(NonFiniteError, match=r"loss/d( and loss/g)? became NaN or inf at step 10"):
        fit(trainer, tmp_path)
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["step"] == 8
    assert all(torch.isfinite(v).all() for v in state["models"]["g"].values())


def test_nonfinite_rollback_lowers_lr_and_finishes(tmp_path):
    cfg = compose_config(
        "trainer.steps=12", "trainer.log_every=4", "trainer.ckpt_every=4", "trainer.on_nonfinite=rollback"
    )
    trainer = Trainer(cfg, tmp_path)
    _poison(trainer, at_step=9)
    fit(trainer, tmp_path)
    assert trainer.step == 12 and trainer.rollbacks == 1
    assert trainer.game.opt_d.param_groups[0]["lr"] == pytest.approx(cfg.optim.lr_d * 0.5)
    assert all(torch.isfinite(p).all() for p in trainer.game.G.parameters())


def test_nonfinite_skip_drops_the_update(tmp_path):
    cfg = compose_config("trainer.steps=6", "trainer.on_nonfinite=skip")
    trainer = Trainer(cfg, tmp_path)
    _poison(trainer, at_step=2)
    fit(trainer, tmp_path)
    assert all(torch.isfinite(p).all() for p in trainer.game.D.parameters())


def test_generator_export_is_enough_to_sample(tmp_path):
    from omegaconf import OmegaConf

    from gan_cli.models import build_models
    from gan_cli.schema import DataConfig, LossName, ModelConfig

    trainer = Trainer(compose_config("model=cgan", "trainer.steps=2"), tmp_path)
    fit(trainer, tmp_path)
    export = torch.load(tmp_path / "checkpoints" / "generator.pt", weights_only=True)
    model = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), export["model"]))
    data = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DataConfig), export["data"]))
    g, _ = build_models(model, data, LossName(export["loss"]))
    g.load_state_dict(export["state_dict"])
    g.eval()
    z, y = trainer.game.fixed_z[:4], trainer.game.fixed_y[:4]
    assert torch.allclose(g(z, y), trainer.game.generate(z, y), atol=1e-5)


def _composed(*overrides: str):
    from hydra import compose, initialize_config_dir

    from gan_cli.cli import _setup
    from tests.conftest import CONFIGS

    _setup()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("config", overrides=[*TINY, *overrides])


def test_resume_with_a_loss_that_changes_the_auto_norm(tmp_path):
    """The reported input: resuming a batch-norm D with loss=wgan_gp (model.d_norm=auto now means
    layer norm) ended in a state_dict error; it is refused up front, naming model.d_norm and the fix,
    and the fix resumes."""
    from gan_cli.games.gan import config_dict
    from gan_cli.resume import ResumeError, resume_config

    trainer = Trainer(compose_config("trainer.steps=1"), tmp_path)
    fit(trainer, tmp_path)
    last = tmp_path / "checkpoints" / "last.pt"
    saved = config_dict(trainer.cfg)
    with pytest.raises(ResumeError) as err:
        resume_config(_composed("loss=wgan_gp"), saved, last, ["loss=wgan_gp"])
    assert "model.d_norm=auto means layer norm with loss=wgan_gp" in str(err.value)
    assert "built with batch norm" in str(err.value) and "set model.d_norm=batch explicitly" in str(err.value)
    fixed = ["loss=wgan_gp", "model.d_norm=batch"]
    cfg = resume_config(_composed(*fixed), saved, last, fixed)
    assert cfg.model.d_norm.value == "batch" and cfg.loss.name.value == "wgan_gp"
    from omegaconf import OmegaConf

    resumed = Trainer(OmegaConf.to_object(cfg), tmp_path)
    resumed.load_state_dict(load_checkpoint(last), last)  # the saved networks fit
    assert resumed.step == 1
    with pytest.raises(
        ResumeError, match=r"model\.d_norm: checkpoint has 'batch', this command asks for 'layer'"
    ):
        resume_config(_composed("model.d_norm=layer"), saved, last, ["model.d_norm=layer"])


def test_resume_past_its_steps_says_so(tmp_path):
    """The reported input: resuming at step 3 with trainer.steps=1 said "To train longer:
    ... trainer.steps=2", less than the step already reached."""
    from gan_cli.cli import already_done

    text = already_done(3, 1, Path("/r"))
    assert "already at step 3, past trainer.steps=1: nothing to train" in text
    assert text.endswith("To train longer, pass a trainer.steps above 3: gan-train resume=/r trainer.steps=6")
    assert already_done(3, 3, Path("/r")).startswith("The run has already reached trainer.steps=3")


@pytest.mark.slow
def test_gan_train_resumed_past_its_steps(tmp_path):
    first = run_cli(*TINY, "model=mlp", "trainer.steps=3", "hydra.run.dir=run", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    again = run_cli("resume=run", "trainer.steps=1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already at step 3, past trainer.steps=1" in again.stdout
    assert "trainer.steps=2" not in again.stdout and "trainer.steps=6" in again.stdout
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["step"] == 3
