"""What the reproduce scripts share: one gan-train and one gan-eval per run in subprocesses (with
their thread count), reusing what a run directory already holds, and mean +/- standard error."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def run_cli(cmd: list[str], threads: int) -> None:
    """A gan-cli subprocess; on failure, its own error output ends the script."""
    result = subprocess.run(cmd, env=_env(threads), capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr[-3000:]}")


def train_and_eval(
    run_dir: Path,
    train_overrides: list[str],
    eval_overrides: list[str],
    threads: int,
    reusable: Callable[[dict], bool],
) -> dict[str, float]:
    """`gan-train hydra.run.dir=run_dir ...` then `gan-eval run=run_dir ...`; returns eval.json's
    metrics and the training wall time (`train_s`). A run that already trained (time.json) is not
    trained again, and its eval.json is reused when `reusable(metrics)` says so."""
    time_file, eval_file = run_dir / "time.json", run_dir / "eval.json"
    if not time_file.exists():
        cmd = [
            sys.executable,
            "-m",
            "gan_cli.train",
            f"hydra.run.dir={run_dir}",
            "trainer.progress=false",
            "eval.every=0",
            *train_overrides,
        ]
        start = time.perf_counter()
        run_cli(cmd, threads)
        time_file.write_text(json.dumps({"train_s": time.perf_counter() - start}))
    metrics = json.loads(eval_file.read_text()) if eval_file.exists() else {}
    if not reusable(metrics):
        run_cli([sys.executable, "-m", "gan_cli.eval_main", f"run={run_dir}", *eval_overrides], threads)
        metrics = json.loads(eval_file.read_text())
    return {**metrics, **json.loads(time_file.read_text())}


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)
