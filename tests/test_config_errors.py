"""Config mistakes fail before any training, naming the key and the valid options."""

import pytest

from tests.conftest import run_cli


@pytest.mark.parametrize(
    "override,expected",
    [
        ("trainer.stepz=10", ["trainer.stepz", "steps", "batch_size"]),  # bad key, valid keys listed
        ("+trainer.foo=1", ["trainer.foo", "steps"]),  # additions the schema does not know
        ("optimiser.lr=1", ["optimiser", "optim", "trainer"]),  # bad top-level key
        ("model=resnet9", ["model", "cgan", "dcgan", "mlp"]),  # bad group choice
        ("loss=wasserstein", ["loss", "hinge", "wgan_gp"]),
        ("trainer.steps=many", ["trainer.steps", "many"]),  # bad type
        ("trainer.precision=fp8", ["trainer.precision", "fp32", "bf16", "fp16"]),  # bad enum value
        ("model.cond=film", ["model.cond", "projection", "concat"]),
        ("trainer.steps=0", ["trainer.steps", ">= 1"]),  # out of range
        ("trainer.ema_bn_batches=-1", ["trainer.ema_bn_batches", ">= 0"]),
        ("optim.betas=[0.5]", ["optim.betas"]),
    ],
)
def test_config_error_names_key(override, expected, tmp_path):
    result = run_cli(override, "trainer.device=cpu", cwd=tmp_path, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    for text in expected:
        assert text in out, f"{text!r} not in:\n{out}"
    assert "Traceback" not in out
    assert not (tmp_path / "outputs" / "runs").exists() or not any(
        (tmp_path / "outputs" / "runs").glob("*/checkpoints")
    )


def test_cfg_job_prints_resolved_config(tmp_path):
    result = run_cli("--cfg", "job", "model=cgan", "loss=wgan_gp", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "name: cgan" in result.stdout and "name: wgan_gp" in result.stdout
    assert "n_critic: 5" in result.stdout
    assert not (tmp_path / "outputs").exists()  # nothing ran


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["trainer.device=cuda"], "no CUDA GPU"),  # this test machine has none
        (["eval.every=5", "eval.metrics=[fid]", "eval.inception_weights=/nope.pth"], "Inception weights"),
        (["eval.every=5", "eval.metrics=[modes2d]"], "modes2d is for the 2-D mixtures"),
    ],
)
def test_start_up_failures_are_one_message_before_training(overrides, expected, tmp_path):
    result = run_cli(*overrides, "hydra.run.dir=run", cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists() or not any(
        (tmp_path / "run" / "checkpoints").iterdir()
    )
