"""Sweeps: one failing job is recorded in its own folder and the others go on.

A job of a multirun that fails (a config error, divergence, a data error, running out of memory,
or a bug) writes `failure.json` into its folder and returns NaN as its objective, for every
launcher (basic, joblib, submitit) and sweeper (Optuna counts a NaN trial as failed). At the end,
`SweepSummary` (a Hydra callback, run by the process that launched the jobs) prints one line and
makes gan-train exit non-zero when any job failed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

FAILURE_FILE = "failure.json"  # in a job folder: {"error": "...", "type": "...", "step": N | null}
failed_jobs = 0  # jobs of the last sweep this process launched that failed; gan-train exits 1 if any


def record_failure(job_dir: Path, error: BaseException, message: str, step: int | None) -> Path:
    """Write the job's failure record (its message, the error's type, the step it reached)."""
    job_dir.mkdir(parents=True, exist_ok=True)
    path = job_dir / FAILURE_FILE
    record = {"error": message, "type": type(error).__name__, "step": step}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def read_failure(job_dir: Path) -> dict[str, Any] | None:
    """A job folder's failure record, or None when it holds none."""
    path = job_dir / FAILURE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return {"error": f"{path} is unreadable", "type": "unknown", "step": None}


def job_folders(sweep_dir: Path) -> list[Path]:
    """The job folders of a sweep (those Hydra wrote a .hydra/ record into), in job order."""
    if not sweep_dir.is_dir():
        return []
    jobs = [p for p in sweep_dir.iterdir() if p.is_dir() and (p / ".hydra").is_dir()]
    return sorted(jobs, key=lambda p: (len(p.name), p.name))


def summary_line(sweep_dir: Path) -> tuple[str, int]:
    """One line on how the sweep's jobs ended, and the number that failed."""
    jobs = job_folders(sweep_dir)
    failures = [(job.name, f) for job in jobs if (f := read_failure(job)) is not None]
    from gan_cli.shell import shell_word

    report = f"gan-report {shell_word(str(sweep_dir))}"
    if not failures:
        return f"Sweep done: {len(jobs)} of {len(jobs)} jobs finished. Compare them with: {report}", 0
    shown = "; ".join(f"job {name}: {f['type']}: {first_sentence(f['error'])}" for name, f in failures[:3])
    more = f"; and {len(failures) - 3} more" if len(failures) > 3 else ""
    line = (
        f"Sweep done: {len(jobs) - len(failures)} of {len(jobs)} jobs finished, {len(failures)} failed "
        f"({shown}{more}). Each failed job's folder holds {FAILURE_FILE} and train.log; {report}"
    )
    return line, len(failures)


def first_sentence(text: str, limit: int = 100) -> str:
    """The first sentence of a message (without its parenthesised asides), at most `limit` long.
    A traceback (a job's bug: a plain Python exception) gives its exception's message."""
    if text.lstrip().startswith("Traceback (most recent call last):"):
        text = _exception_message(text)
    first = " ".join(text.replace("\n  - ", " ").split())
    first = first.split(". ")[0].split(" (")[0].rstrip(".")
    return first if len(first) <= limit else first[: limit - 3] + "..."


def _exception_message(traceback_text: str) -> str:
    """The message of the (last) exception of a formatted traceback: its last unindented line
    `module.Type: message`, without the type (failure.json records the type)."""
    lines = [line for line in traceback_text.strip().splitlines() if line and not line[0].isspace()]
    last = lines[-1] if lines else traceback_text.strip()
    name, sep, message = last.partition(": ")
    plain_name = sep and name.replace(".", "").replace("_", "").isalnum()
    return (message if plain_name else last).strip() or name


class SweepSummary(Callback):
    """Prints the sweep's one-line summary after the last job and remembers how many failed."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        global failed_jobs
        line, failed_jobs = summary_line(Path(str(config.hydra.sweep.dir)))
        print(line, file=sys.stderr if failed_jobs else sys.stdout, flush=True)
