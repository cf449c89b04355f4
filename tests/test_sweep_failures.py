"""One failing job does not end a sweep: it is recorded in its folder, the others run, gan-report
shows why it failed, and the sweep ends with a one-line summary and a non-zero exit code."""

import json
from pathlib import Path

import pytest

from tests.conftest import TINY, run_cli

LAUNCHERS = {
    "basic": [],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "submitit": ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"],
}


def _jobs(sweep: Path) -> dict[str, Path]:
    return {p.name: p for p in sweep.iterdir() if p.is_dir() and (p / ".hydra").is_dir()}


def _failure(job: Path) -> dict | None:
    path = job / "failure.json"
    return json.loads(path.read_text()) if path.is_file() else None


@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_a_diverging_job_fails_alone(launcher, tmp_path):
    """The reported input: optim.lr_g=1e12,2e-4 optim.lr_d=1e12,2e-4 (4 jobs); job 0 diverged and
    ended the sweep, so the healthy 2e-4 job never ran."""
    if launcher != "basic":
        pytest.importorskip(f"hydra_plugins.hydra_{launcher}_launcher")
    out = run_cli(
        "-m",
        *LAUNCHERS[launcher],
        *TINY,
        "loss=lsgan",
        "trainer.steps=6",
        "optim.lr_g=1e12,2e-4",
        "optim.lr_d=1e12,2e-4",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 1, out.stderr[-3000:]
    jobs = _jobs(tmp_path / "sweep")
    assert sorted(jobs) == ["0", "1", "2", "3"]
    healthy = jobs["3"]  # lr_g 2e-4, lr_d 2e-4
    assert _failure(healthy) is None and (healthy / "checkpoints" / "generator.pt").is_file()
    failed = {name for name, job in jobs.items() if _failure(job) is not None}
    assert "0" in failed and "3" not in failed
    for name in failed:
        record = _failure(jobs[name])
        assert record["type"] == "NonFiniteError" and "NaN or inf" in record["error"]
        assert "NaN or inf" in (jobs[name] / "train.log").read_text()
    summary = [line for line in out.stderr.splitlines() if line.startswith("Sweep done:")]
    assert (
        summary == [summary[0]]
        and f"{4 - len(failed)} of 4 jobs finished, {len(failed)} failed" in summary[0]
    )
    assert "job 0: NonFiniteError" in summary[0] and "Traceback" not in out.stderr

    report = run_cli(str(tmp_path / "sweep"), cwd=tmp_path, module="gan_cli.report_main")
    assert report.returncode == 0, report.stderr
    rows = {line.split("|")[1].strip(): line for line in report.stdout.splitlines() if line.startswith("| ")}
    assert "| failed | NonFiniteError: " in rows["0"] and "| done | - |" in rows["3"]


def test_a_config_error_in_one_job_fails_only_that_job(tmp_path):
    """The reported input: model.pack=3,2,1 with a batch of 8 (3 does not divide it)."""
    out = run_cli("-m", *TINY, "trainer.steps=2", "model.pack=3,2,1", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert out.returncode == 1
    jobs = _jobs(tmp_path / "sweep")
    record = _failure(jobs["0"])
    assert record["type"] == "ConfigError" and "model.pack=3 must be >= 1 and divide" in record["error"]
    assert _failure(jobs["1"]) is None and _failure(jobs["2"]) is None
    assert (jobs["2"] / "checkpoints" / "last.pt").is_file()
    assert "2 of 3 jobs finished, 1 failed (job 0: ConfigError: Invalid config: model.pack=3" in out.stderr


def test_a_sweep_without_failures_exits_0_with_its_summary(tmp_path):
    out = run_cli(
        "-m", *TINY, "model=mlp", "trainer.steps=2", "loss=hinge,lsgan", "hydra.sweep.dir=s", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Sweep done: 2 of 2 jobs finished. Compare them with: gan-report " in out.stdout


def test_a_bug_in_a_job_is_summed_up_by_its_exception_message():
    """A job that raised a plain Python exception records its traceback; the sweep's summary and
    gan-report show its message in one line, not "Traceback (most recent call last): File ..."."""
    import traceback

    from gan_cli.sweep import first_sentence

    def failing():
        try:
            raise KeyError("inner")
        except KeyError as e:
            raise ValueError("Array must not contain infs or NaNs. Details follow") from e

    try:
        failing()
    except ValueError as e:
        text = "".join(traceback.format_exception(e))
    assert text.startswith("Traceback") and "\n" in text
    assert first_sentence(text) == "Array must not contain infs or NaNs"
    try:
        raise AssertionError
    except AssertionError as e:
        assert first_sentence("".join(traceback.format_exception(e))) == "AssertionError"
    assert first_sentence("Invalid config:\n  - model.pack=3 must divide. More.") == (
        "Invalid config: model.pack=3 must divide"
    )
