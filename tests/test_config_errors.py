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
        ("loss.g_steps=0", ["loss.g_steps must be >= 1, got 0"]),
        ("loss.g_steps_until=-1", ["loss.g_steps_until must be >= 0 (0: loss.g_steps to the end), got -1"]),
        ("trainer.ema_bn_batches=-1", ["trainer.ema_bn_batches", ">= 0"]),
        ("optim.betas=[0.5]", ["optim.betas"]),
        ("loss.mmd_bandwidths=[0.1,-1]", ["loss.mmd_bandwidths must all be > 0"]),
        ("loss.mmd_weight=1", ["loss.mmd_weight=1.0 needs kernel bandwidths", "data=mnist5k"]),
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
        (["eval.every=5", "eval.metrics=[stacked_modes]"], "stacked_modes counts the digit triples"),
    ],
)
def test_start_up_failures_are_one_message_before_training(overrides, expected, tmp_path):
    result = run_cli(*overrides, "hydra.run.dir=run", cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists() or not any(
        (tmp_path / "run" / "checkpoints").iterdir()
    )


@pytest.mark.parametrize(
    "args,expected",
    [
        (
            ["trainer.device=tpu"],
            "trainer.device=tpu: Invalid value 'tpu', expected one of [auto, cpu, cuda, mps].",
        ),
        (["model=foo"], "model=foo: no such option. Valid options for model: cgan, cyclegan, dcgan, mlp"),
        # an optional group: Hydra alone would skip an unknown option without a word
        (["tuned=foo"], "tuned=foo: no such option. Valid options for tuned: mnist5k_dcgan_nonsaturating"),
        (["trainer.steps=null"], "trainer.steps=null: field 'steps' is not Optional."),
        (["trainer.steps=${nope}"], "trainer.steps: Interpolation key 'nope' not found."),
        # Hydra's own reports (a config folder of the user's: options are Hydra's to find)
        (
            ["--config-dir", "{tmp}", "model=foo"],
            "In 'config': Could not find 'model/foo'. Valid options: cgan",
        ),
        (["data.a.root=x"], "The config cannot be composed from these arguments (AssertionError"),
    ],
)
def test_hydras_errors_are_one_paragraph_with_exit_code_2(args, expected, tmp_path):
    """The reported input: Hydra's own errors ended with exit code 1, its multi-line report and a
    hint at HYDRA_FULL_ERROR."""
    result = run_cli(
        *[a.replace("{tmp}", str(tmp_path)) for a in args], "hydra.run.dir=run", cwd=tmp_path, timeout=120
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("Error: ") and expected in result.stderr, result.stderr
    assert "HYDRA_FULL_ERROR" not in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_a_bad_value_in_a_sweep_fails_before_the_first_job(tmp_path):
    """The reported input: `-m trainer.device=cpu,tpu` ran the cpu job, then ended the sweep in
    Hydra's report. Every value of a sweep is checked before any job starts."""
    result = run_cli("-m", "trainer.device=cpu,tpu", "model=mlp,foo", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "trainer.device=tpu: Invalid value 'tpu'" in result.stderr
    assert (
        "(in the sweep trainer.device=cpu,tpu; every value is checked before the first job)" in result.stderr
    )
    assert not (tmp_path / "sweep").exists()
    from gan_cli.cli import check_overrides
    from gan_cli.errors import UserError

    with pytest.raises(UserError, match=r"model=foo: no such option \(in the sweep model=mlp,foo"):
        check_overrides(["-m", "model=mlp,foo"])
    with pytest.raises(
        UserError, match=r"trainer.steps=abc: Value 'abc' of type 'str' could not be converted"
    ):
        check_overrides(["-m", "trainer.steps=1,abc"])
    check_overrides(["-m", "trainer.steps=range(1,4)", "optim.lr_g=interval(0.1,0.2)", "loss=hinge,lsgan"])
