"""Scale-out on existing engines: torchrun (gloo on the CPU), Hydra's joblib launcher, and
resumable sweeps."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from tests.conftest import TINY, run_cli


def torchrun(*args: str, cwd, nproc: int = 2) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",  # a free local port, no rendezvous server
            "--nproc-per-node",
            str(nproc),
            "-m",
            "gan_cli.train",
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


def test_torchrun_two_ranks_stay_identical_and_resume_on_one(tmp_path):
    result = torchrun(
        *TINY, "model=dcgan", "trainer.steps=6", "trainer.ckpt_every=3", "hydra.run.dir=run", cwd=tmp_path
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    prints = re.findall(r"rank (\d)/2: weights fingerprint ([0-9a-f]{16})", out)  # lines may interleave
    assert sorted(r for r, _ in prints) == ["0", "1"] and prints[0][1] == prints[1][1], prints
    assert "global batch 16" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # one run directory, written by rank 0
    steps = [json.loads(x)["step"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # once, not once per rank
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 6 and len(state["ranks"]) == 2
    assert not torch.equal(state["ranks"][0]["noise"], state["ranks"][1]["noise"])  # own streams
    single = run_cli("resume=run", "trainer.steps=8", cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["step"] == 8


def test_torchrun_error_on_a_rank_stops_all(tmp_path):
    result = torchrun(*TINY, "trainer.sync_bn=true", cwd=tmp_path)  # no SyncBatchNorm on the CPU
    assert result.returncode != 0
    assert "trainer.sync_bn" in result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("true") is None, reason="needs a POSIX shell")
def test_joblib_sweep_runs_two_jobs_in_parallel(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    result = run_cli(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "loss=nonsaturating,hinge",
        *TINY,
        "model=mlp",
        "trainer.steps=3",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0", "1"):
        lines = (tmp_path / "sweep" / job / "metrics.jsonl").read_text().splitlines()
        assert json.loads(lines[-1])["step"] == 3


def test_resume_auto_skips_finished_and_continues_unfinished(tmp_path):
    command = [
        "-m",
        "loss=nonsaturating,hinge",
        *TINY,
        "model=mlp",
        "trainer.steps=4",
        "trainer.ckpt_every=2",
        "trainer.keep_ckpts=5",
        "resume=auto",
    ]
    first = run_cli(*command, "hydra.sweep.dir=sweeps/first", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    done, cut = tmp_path / "sweeps/first/0", tmp_path / "sweeps/first/1"
    # job 1 "was stopped" at step 2: its last checkpoint is step 2's
    shutil.copy(cut / "checkpoints" / "step_000002.pt", cut / "checkpoints" / "last.pt")
    (cut / "checkpoints" / "step_000004.pt").unlink()
    finished_mtime = (done / "checkpoints" / "last.pt").stat().st_mtime_ns
    again = run_cli(*command, "hydra.sweep.dir=sweeps/again", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert re.search(r"resume=auto: \S*sweeps/first/0 has already finished; skipped\.", again.stdout)
    assert "resume=auto: continuing" in again.stdout
    assert (done / "checkpoints" / "last.pt").stat().st_mtime_ns == finished_mtime
    assert torch.load(cut / "checkpoints" / "last.pt", weights_only=True)["step"] == 4
    steps = [json.loads(x)["step"] for x in (cut / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
