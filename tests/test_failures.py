"""Runs that go wrong end in one true paragraph and exit code 2, and lose nothing: divergence
(no NaN state is ever saved), a full disk, damaged checkpoints, a model that does not fit the data."""

import json
import resource
from pathlib import Path

import pytest
import torch

from gan_cli.checkpoint import FORMAT, load_checkpoint
from gan_cli.trainer import NonFiniteError, Trainer
from tests.conftest import TINY, compose_config, run_cli
from tests.test_training import fit


def _all_finite(state) -> bool:
    if isinstance(state, dict):
        return all(_all_finite(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return all(_all_finite(v) for v in state)
    return not (torch.is_tensor(state) and state.is_floating_point()) or bool(torch.isfinite(state).all())


def test_skip_with_a_huge_learning_rate_never_saves_nan_and_fails(tmp_path):
    """The reported input: lsgan, lr 1e12, on_nonfinite=skip, 60 steps, log_every 1. It used to end
    in "Done" with exit 0, NaN checkpoints and a NaN generator.pt."""
    run = tmp_path / "run"
    out = run_cli(
        *TINY,
        "loss=lsgan",
        "optim.lr_g=1e12",
        "optim.lr_d=1e12",
        "trainer.on_nonfinite=skip",
        "trainer.steps=60",
        "trainer.log_every=1",
        "trainer.ckpt_every=10",
        "trainer.keep_ckpts=3",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
    )
    assert out.returncode == 2, out.stdout[-2000:]
    assert "Done" not in out.stdout and "Traceback" not in out.stderr
    assert "updates in a row had a NaN or inf loss or gradient" in out.stderr
    saved = sorted((run / "checkpoints").glob("*.pt"))
    assert saved, "the finite states before the divergence are kept"
    for path in saved:
        assert _all_finite(torch.load(path, weights_only=True)), f"{path.name} holds NaN or inf"
    step = max(int(p.stem[5:]) for p in saved if p.stem.startswith("step_"))
    assert f"step_{step:06d}.pt (step {step}), is intact" in out.stderr


def test_skip_drops_updates_with_nonfinite_gradients(tmp_path):
    """Finite losses, NaN gradients: skip looked only at the losses and let the NaN in."""
    trainer = Trainer(compose_config("trainer.steps=6", "trainer.on_nonfinite=skip"), tmp_path)
    weight = trainer.game.d_params[0]
    poisoned = {"n": 0}

    def hook(grad):
        if trainer.step == 2 and poisoned["n"] == 0:
            poisoned["n"] += 1
            return grad * float("nan")
        return grad

    weight.register_hook(hook)
    fit(trainer, tmp_path)
    assert poisoned["n"] == 1 and trainer.updater.total == 1
    assert all(torch.isfinite(p).all() for p in [*trainer.game.D.parameters(), *trainer.game.D.buffers()])
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["warnings"] for r in records if r["step"] == 3] == [["NON_FINITE"]]


def test_nan_weights_are_caught_at_the_checkpoint(tmp_path):
    """Losses and gradients finite at log time, a BatchNorm statistic NaN at the checkpoint: the
    run stops, the last good checkpoint stays, and the message says which it is."""
    cfg = compose_config("trainer.steps=8", "trainer.log_every=4", "trainer.ckpt_every=4")
    trainer = Trainer(cfg, tmp_path)
    original = trainer.train_step

    def step():
        original()
        if trainer.step == 7:
            next(trainer.game.G.buffers()).fill_(float("nan"))

    trainer.train_step = step
    with pytest.raises(NonFiniteError) as err:
        fit(trainer, tmp_path)
    assert "At step 8" in str(err.value) and "G.net." in str(err.value)
    assert "step_000004.pt (step 4), is intact" in str(err.value)
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 4
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*")) == ["step_000004.pt"]


def test_stop_message_before_any_checkpoint_says_there_is_none(tmp_path):
    cfg = compose_config("trainer.steps=20", "trainer.log_every=2", "trainer.ckpt_every=100")
    trainer = Trainer(cfg, tmp_path)
    original = trainer.game.loss

    def d_loss(real, fake):
        return original.d_loss(real, fake) * float("nan")

    trainer.game.loss = type(original)(d_loss, original.g_loss, original.probabilistic)
    with pytest.raises(NonFiniteError) as err:
        fit(trainer, tmp_path)
    assert "intact" not in str(err.value)
    assert "No checkpoint had been written yet" in str(err.value)
    assert not any((tmp_path / "checkpoints").iterdir())


def _trained(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    out = run_cli(*TINY, "trainer.steps=2", f"hydra.run.dir={run}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    return run


def test_gan_sample_refuses_a_generator_with_nan_weights(tmp_path):
    run = _trained(tmp_path)
    path = run / "checkpoints" / "generator.pt"
    state = torch.load(path, weights_only=True)
    key = next(k for k, v in state["state_dict"].items() if v.is_floating_point())
    state["state_dict"][key] = state["state_dict"][key] * float("nan")
    torch.save(state, path)
    out = run_cli(
        f"run={run}", "n=4", f"out={tmp_path / 'x.png'}", cwd=tmp_path, module="gan_cli.sample_main"
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "NaN or inf" in out.stderr and key in out.stderr
    assert not (tmp_path / "x.png").exists()


def test_gan_sample_refuses_a_generator_whose_samples_are_nan(tmp_path):
    run = _trained(tmp_path)
    path = run / "checkpoints" / "generator.pt"
    state = torch.load(path, weights_only=True)
    key = next(k for k in state["state_dict"] if k.endswith("running_var"))
    state["state_dict"][key] = -torch.ones_like(state["state_dict"][key])  # sqrt of a negative: NaN
    torch.save(state, path)
    out = run_cli(
        f"run={run}", "n=4", f"out={tmp_path / 'x.png'}", cwd=tmp_path, module="gan_cli.sample_main"
    )
    assert out.returncode == 2 and "output is NaN or inf for 4 of 4 samples" in out.stderr


def test_resume_refuses_a_nan_checkpoint(tmp_path):
    run = _trained(tmp_path)
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    key = next(iter(state["models"]["d"]))
    state["models"]["d"][key] = state["models"]["d"][key] * float("nan")
    torch.save(state, run / "checkpoints" / "last.pt")
    out = run_cli(f"resume={run}", "trainer.steps=4", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "NaN or inf" in out.stderr and "earlier checkpoint" in out.stderr


def test_checkpoint_with_the_marker_but_no_config(tmp_path):
    """The reported input: a KeyError traceback."""
    path = tmp_path / "odd.pt"
    torch.save({"format": FORMAT, "step": 3}, path)
    out = run_cli(f"resume={path}", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "lacks config" in out.stderr and str(path) in out.stderr


def _limit_file_size(kib: int):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (kib * 1024, resource.RLIM_INFINITY))

    return limit


def test_a_full_disk_while_saving_is_one_paragraph_and_loses_nothing(tmp_path):
    """The reported input (stand-in for a full disk: `ulimit -f` before a resume)."""
    import subprocess
    import sys

    run = tmp_path / "run"
    big = [*TINY, "model.g_channels=16", "model.d_channels=16", "data.image_size=32"]
    out = run_cli(*big, "trainer.steps=2", f"hydra.run.dir={run}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    size = (run / "checkpoints" / "last.pt").stat().st_size
    before = (run / "checkpoints" / "last.pt").read_bytes()
    resumed = subprocess.run(
        [sys.executable, "-m", "gan_cli.train", f"resume={run}", "trainer.steps=4"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limit_file_size(size // 2048),
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert resumed.returncode == 2, resumed.stderr[-2000:]
    assert "Traceback" not in resumed.stderr
    assert "step_000004.pt: could not be written" in resumed.stderr
    assert "ulimit -f" in resumed.stderr and "step_000002.pt (step 2), is intact" in resumed.stderr
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
    assert not (run / "checkpoints" / "step_000004.pt").exists()


def test_an_output_folder_that_cannot_be_made(tmp_path):
    (tmp_path / "outputs").write_text("a file where the runs would go\n")
    out = run_cli(*TINY, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "is a file, not a folder" in out.stderr and "hydra.run.dir" in out.stderr


@pytest.mark.parametrize("model", ["dcgan", pytest.param("cgan", marks=pytest.mark.slow)])
def test_mnist_at_its_own_28_px(model, tmp_path):
    """The reported input: data.image_size=28 was a 29-line traceback."""
    out = run_cli(
        f"model={model}",
        "data.image_size=28",
        "model.g_channels=4",
        "model.d_channels=4",
        "trainer.steps=2",
        "trainer.batch_size=8",
        "trainer.progress=false",
        "trainer.ema_bn_batches=1",
        "hydra.run.dir=run",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    state = torch.load(tmp_path / "run" / "checkpoints" / "generator.pt", weights_only=True)
    assert state["data"]["image_size"] == 28


def test_a_model_that_does_not_fit_fails_before_the_images_are_read(tmp_path, monkeypatch):
    from gan_cli.errors import ModelConfigError

    called = []
    monkeypatch.setattr("gan_cli.games.gan.make_batches", lambda *a, **k: called.append(1))
    with pytest.raises(ModelConfigError, match="data.image_size that is a multiple of 4"):
        Trainer(compose_config("data=image_folder", f"data.root={tmp_path}", "data.image_size=30"), tmp_path)
    assert not called


@pytest.mark.parametrize(
    "override,key",
    [
        ("trainer.keep_ckpts=-1", "trainer.keep_ckpts"),
        ("data.subset=-5", "data.subset"),
        ("model.g_channels=0", "model.g_channels"),
        ("trainer.rollback_lr_factor=0", "trainer.rollback_lr_factor"),
        ("eval.every=10", "eval.metrics"),
        ("model.g_hidden=[16,0]", "model.g_hidden"),
    ],
)
def test_out_of_range_values_name_their_key(override, key):
    from gan_cli.schema import ConfigError, check_config

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_config(compose_config(override))


def test_skip_on_a_model_without_buffers(tmp_path):
    """The reported input: on_nonfinite=skip on nets without buffers (no BatchNorm, no EMA) crashed
    in torch._foreach_copy_ on an empty list; the skipped update still leaves the weights finite."""
    cfg = compose_config(
        "trainer.steps=4",
        "trainer.on_nonfinite=skip",
        "model.g_norm=none",
        "model.d_norm=none",
        "trainer.ema_decay=0",
    )
    trainer = Trainer(cfg, tmp_path)
    assert not [b for net in trainer.game.modules().values() for b in net.buffers()]
    weight = trainer.game.d_params[0]
    weight.register_hook(lambda grad: grad * float("nan") if trainer.step == 1 else grad)
    fit(trainer, tmp_path)
    assert trainer.step == 4 and trainer.updater.total == 1
    assert all(torch.isfinite(p).all() for p in [*trainer.game.G.parameters(), *trainer.game.D.parameters()])


def test_run_folders_the_system_refuses(tmp_path):
    """/proc lets root pass the permission checks and then refuses the folder; a name or path too
    long for the file system ended in a traceback. Each is one paragraph naming the folder."""
    from gan_cli.cli import check_output_root
    from gan_cli.errors import UserError

    cases = {f"hydra.run.dir={tmp_path / ('a' * 300)}": "has 300 bytes, more than the 255 allowed"}
    cases[f"hydra.run.dir={tmp_path}/{'/'.join(['b' * 200] * 25)}"] = "with the files a run writes below it"
    if Path("/proc/self").is_dir():
        cases["hydra.run.dir=/proc/gan-cli-x"] = "no folder can be made in /proc"
    for arg, text in cases.items():
        with pytest.raises(UserError, match="Cannot create the run folder") as err:
            check_output_root([arg])
        assert text in str(err.value) and "hydra.run.dir=" in str(err.value)
    check_output_root([f"hydra.run.dir={tmp_path / 'fine' / 'run'}"])  # a writable folder passes
    assert not list(tmp_path.glob(".gan-cli-probe-*"))  # the probe folder is gone again
    out = run_cli(*TINY, f"hydra.run.dir={tmp_path / ('c' * 300)}", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "more than the 255 allowed" in out.stderr
