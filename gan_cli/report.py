"""`gan-report`: one table (Markdown + CSV) and one figure of metric curves for the jobs of a sweep.

Reads only what runs write as they go (`.hydra/`, `metrics.jsonl`, `eval.json`), so it also works
while jobs are still running.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gan_cli.errors import CommandError
from gan_cli.sweep import first_sentence, read_failure

# the health curves shown (those a job logs): the GAN game's, the CycleGAN game's, ADA's p
CURVES = (
    "loss/d",
    "loss/g",
    "d/real",
    "d/fake",
    "diversity",
    "loss/cycle",
    "d_a/real",
    "d_a/fake",
    "d_b/real",
    "d_b/fake",
    "diversity/a2b",
    "diversity/b2a",
    "ada/p",
    "ada/p_a",
    "ada/p_b",
    "loss/r1",
    "loss/pl",
)


@dataclass
class Job:
    path: Path
    overrides: list[str]
    records: list[dict[str, Any]]
    target_steps: int | None
    final_eval: dict[str, Any]
    failure: dict[str, Any] | None = None  # the job's failure.json (sweep.py)
    notes: list[str] = field(default_factory=list)  # what in its files could not be read

    @property
    def step(self) -> int:
        return self.records[-1]["step"] if self.records else 0

    @property
    def status(self) -> str:
        if self.failure is not None:
            return "failed"
        if self.target_steps is not None and self.step >= self.target_steps:
            return "done"
        return "running or stopped"

    @property
    def reason(self) -> str:
        """Why a failed job failed (its error's type and first sentence), else ''."""
        if self.failure is None:
            return ""
        return f"{self.failure.get('type', 'error')}: {first_sentence(str(self.failure.get('error', '')))}"


def _read_jsonl(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    """The step records of a metrics.jsonl. A line that is not one (cut short while being written or
    by a crash, not JSON, not an object with an integer "step") is skipped, and `notes` says which."""
    if not path.is_file():
        return []
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        notes.append(f"{path} cannot be read ({e.strerror}); no curves for this job")
        return []
    if not text.strip():
        notes.append(f"{path} is empty (no step logged yet)")
        return []
    lines = text.splitlines()
    out, skipped = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            last = number == len(lines) and not text.endswith("\n")
            why = "cut short: being written, or the run stopped mid-line" if last else "not JSON"
            skipped.append(f"{number} ({why})")
            continue
        step = record.get("step") if isinstance(record, dict) else None
        if not isinstance(step, int) or isinstance(step, bool):
            skipped.append(f"{number} (not a step record: no integer step)")
            continue
        out.append(record)
    if skipped:
        shown = "; ".join(skipped[:5]) + (f"; and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        notes.append(f"{path}: skipped line{'s' if len(skipped) > 1 else ''} {shown}")
    return out


def _read_structured(path: Path, notes: list[str], kind: type) -> Any:
    """A JSON (.json) or YAML file's contents if they are a `kind` (dict or list), else an empty
    one, with a note when the file exists but cannot be read as one."""
    if not path.is_file():
        return kind()
    try:
        text = path.read_text(errors="replace")
        value = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        notes.append(f"{path} cannot be read ({first_sentence(why)}); ignored")
        return kind()
    if value is None:
        return kind()
    if not isinstance(value, kind):
        notes.append(f"{path} holds a {type(value).__name__}, not a {kind.__name__}; ignored")
        return kind()
    return value


def load_job(path: Path) -> Job:
    hydra = path / ".hydra"
    notes: list[str] = []
    overrides = _read_structured(hydra / "overrides.yaml", notes, list)
    config = _read_structured(hydra / "config.yaml", notes, dict)
    trainer = config.get("trainer")
    target = trainer.get("steps") if isinstance(trainer, dict) else None
    final_eval = _read_structured(path / "eval.json", notes, dict)
    records = _read_jsonl(path / "metrics.jsonl", notes)
    job = Job(path, [str(o) for o in overrides], records, target, final_eval, read_failure(path))
    job.notes = notes
    return job


def find_jobs(folders: list[Path]) -> list[Job]:
    """Every run folder among `folders` and their direct subfolders (a sweep's job folders)."""
    found = []
    for folder in folders:
        candidates = (
            [folder]
            if (folder / "metrics.jsonl").is_file()
            else sorted(
                (
                    p
                    for p in folder.iterdir()
                    if p.is_dir() and ((p / "metrics.jsonl").is_file() or (p / ".hydra").is_dir())
                ),
                key=lambda p: (len(p.name), p.name),
            )
        )
        # a job folder that resume=auto continued elsewhere holds no run of its own
        found.extend(load_job(p) for p in candidates if not (p / "CONTINUED_IN.txt").exists())
    return found


def _eval_history(job: Job) -> dict[str, list[float]]:
    history: dict[str, list[float]] = {}
    for r in job.records:
        for k, v in r.items():
            if k.startswith("eval/") and isinstance(v, (int, float)):
                history.setdefault(k[5:], []).append(float(v))
    return history


def summarise(job: Job, best_mode: dict[str, str]) -> dict[str, Any]:
    last = job.records[-1] if job.records else {}
    row: dict[str, Any] = {
        "job": job.path.name,
        "overrides": " ".join(job.overrides),
        "status": job.status,
        "reason": job.reason or "-",
        "steps": job.step,
        "wall_min": round(last.get("elapsed", float("nan")) / 60, 2),
        "warnings": " ".join(sorted({w for r in job.records for w in r.get("warnings", [])})) or "-",
    }
    for key in CURVES:
        if key in last and last[key] is not None:
            row[key] = round(last[key], 4)
    for metric, values in _eval_history(job).items():
        row[f"final {metric}"] = round(values[-1], 4)
        pick = max if best_mode.get(metric, "min") == "max" else min
        row[f"best {metric}"] = round(pick(values), 4)
    for key, value in job.final_eval.items():
        if isinstance(value, float) and f"final {key}" not in row:
            row[f"eval {key}"] = round(value, 4)
    return row


def _markdown(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float) and math.isnan(v):
            return "-"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _plot(jobs: list[Job], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in CURVES if any(k in r for j in jobs for r in j.records)]
    keys += sorted({k for j in jobs for r in j.records for k in r if k.startswith("eval/")})
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(4 * max(1, len(keys)), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=False):
        for job in jobs:
            pts = [(r["step"], r[key]) for r in job.records if isinstance(r.get(key), (int, float))]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=job.path.name)
        ax.set_title(key)
        ax.set_xlabel("step")
    if axes[0][0].get_legend_handles_labels()[0]:  # a job without curves (nothing logged) has none
        axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(folders: list[Path], out: Path | None = None, best_mode: dict[str, str] | None = None) -> Path:
    """Write report.md, report.csv and report.png for the jobs found; returns the Markdown path."""
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise CommandError(f"no such folder: {', '.join(missing)}.")
    jobs = find_jobs(folders)
    if not jobs:
        raise CommandError(f"no runs in {', '.join(map(str, folders))} (folders with metrics.jsonl).")
    modes = {
        "is": "max",
        "precision": "max",
        "recall": "max",
        "modes2d/modes": "max",
        "modes2d/hq_pct": "max",
        "classifier/cond_acc": "max",
        "parzen/ll": "max",
        "parzen/real_ll": "max",
        "stacked/modes": "max",
        "stacked/real_modes": "max",
        "stacked/classifier_acc": "max",
        **(best_mode or {}),
    }
    for job in jobs:
        for note in job.notes:
            print(f"note: {note}")
    rows = [summarise(j, modes) for j in jobs]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    out = out or (folders[0] if folders[0].is_dir() else folders[0].parent)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(_markdown(rows, columns))
    with open(out / "report.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    _plot(jobs, out / "report.png")
    print(_markdown(rows, columns))
    print(f"written: {out / 'report.md'}, report.csv, report.png")
    return out / "report.md"
