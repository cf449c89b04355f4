"""What gan-train prints and leaves behind is what it says: commands that paste back, paths that
need quoting, no folder from a failed start, train.log, and the CPU threads it takes."""

import os
import re
import shlex
import subprocess
import sys

import pytest

from gan_cli.cpu import auto_threads, available_cpus, parallel_jobs
from gan_cli.shell import override
from tests.conftest import TINY, run_cli


def test_a_path_with_an_equals_sign_is_explained(tmp_path):
    """The reported input: data.root=/data/shoot=2024 got Hydra's grammar error."""
    root = tmp_path / "shoot=2024"
    root.mkdir()
    out = run_cli("data=image_folder", f"data.root={root}", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"data.root={root}" in out.stderr and "quote" in out.stderr
    suggested = re.search(r"quote it for Hydra \(and for the shell\): (.+)$", out.stderr.strip()).group(1)
    (arg,) = shlex.split(suggested)
    shown = run_cli("--cfg", "job", "data=image_folder", arg, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"root: {root}" in shown.stdout


def test_a_comma_outside_a_sweep_is_explained(tmp_path):
    out = run_cli("data=image_folder", "data.root=/data/a,b", cwd=tmp_path)
    assert out.returncode == 2 and "--multirun" in out.stderr and "\"data.root='/data/a,b'\"" in out.stderr


@pytest.mark.parametrize("value", ["/my runs/lr=2e-4", "/it's (v1), [a]#b", "/a/${x}", "plain/path-1.2"])
def test_override_quoting_reads_back_the_same_value(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    (word,) = shlex.split(override("resume", value))
    (parsed,) = OverridesParser.create().parse_overrides([word])
    assert OmegaConf.create({"v": parsed.value()}).v == value


def test_printed_resume_command_pastes_back(tmp_path):
    """The reported input: with a space in the run folder, the printed command failed."""
    run = tmp_path / "my runs" / "lr=2e-4"
    first = run_cli(*TINY, "trainer.steps=2", f"hydra.run.dir='{run}'", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    line = next(x for x in first.stdout.splitlines() if "To train longer:" in x)
    words = shlex.split(line.split("To train longer: ", 1)[1])
    assert words[0] == "gan-train"
    again = run_cli(*words[1:], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "at step 2." in again.stdout and (run / "checkpoints" / "step_000004.pt").is_file()


@pytest.mark.parametrize(
    "over",
    [
        ["trainer.batch_size=0"],
        ["data=image_folder", "data.root=EMPTY"],
        pytest.param(["trainer.device=cuda"], marks=pytest.mark.slow),
    ],
)
def test_a_failed_start_leaves_no_folder(over, tmp_path):
    (tmp_path / "empty").mkdir()
    over = [o.replace("EMPTY", str(tmp_path / "empty")) for o in over]
    out = run_cli(*TINY, *over, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "Run directory" not in out.stdout
    runs = tmp_path / "outputs" / "runs"
    assert not runs.exists() or not any(runs.iterdir())


def test_train_log_holds_what_the_run_printed(tmp_path):
    out = run_cli(*TINY, "trainer.steps=2", "hydra.run.dir=run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    log = (tmp_path / "run" / "train.log").read_text()
    for line in out.stdout.splitlines():
        assert line in log
    assert "Run directory:" in log and "Done: 2 steps" in log


# ---- CPU threads ----------------------------------------------------------------------------------
def test_auto_threads_shares_the_cpus_among_what_gan_cli_started():
    cpus = available_cpus()
    assert auto_threads(3, 8, 2, env={}) == (3, "trainer.threads")
    assert auto_threads(0, 1, 0, env={"OMP_NUM_THREADS": "1"})[0] == 1
    # torchrun's own OMP_NUM_THREADS=1 is a placeholder: the local ranks share the CPUs
    assert auto_threads(0, 2, 0, env={"OMP_NUM_THREADS": "1", "LOCAL_WORLD_SIZE": "2"})[0] == max(
        1, cpus // 2
    )
    assert auto_threads(0, 1, 0, env={})[0] == cpus
    assert auto_threads(0, 1, 1, env={})[0] == max(1, cpus - 1)
    assert auto_threads(0, 4 * cpus, 0, env={})[0] == 1
    assert (
        parallel_jobs({"_target_": "hydra_plugins.hydra_joblib_launcher.JoblibLauncher", "n_jobs": 2}, 8) == 2
    )
    assert parallel_jobs({"_target_": "x.JoblibLauncher", "n_jobs": -1}, 8) == 8
    assert parallel_jobs({"_target_": "x.JoblibLauncher", "n_jobs": -2}, 8) == 7
    assert parallel_jobs({"_target_": "hydra._internal.BasicLauncher"}, 8) == 1
    assert parallel_jobs(None, 8) == 1


def test_a_joblib_sweep_gives_each_job_its_share(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run(
        [sys.executable, "-m", "gan_cli.train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
        + [*TINY, "model=mlp", "trainer.steps=2", "loss=hinge,lsgan", "hydra.sweep.dir=s"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    share = max(1, available_cpus() // 2)
    for job in ("0", "1"):
        log = (tmp_path / "s" / job / "train.log").read_text()
        # gan-cli's share, or joblib's (loky sets OMP_NUM_THREADS = CPUs // n_jobs in its workers)
        assert f"CPU threads: {share} (auto: {available_cpus()} CPUs / 2 processes)" in log or (
            f"CPU threads: {share} (OMP_NUM_THREADS)" in log
        )
