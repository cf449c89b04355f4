"""Reproduce the PacGAN 2-D benchmark (Lin et al. 2018, Table 1) with gan-cli's recipes.

Trains every recipe with several seeds and thread counts through `gan-train`, evaluates each run
with `gan-eval metrics=[modes2d]` (2,500 samples, DESIGN.md protocol) and writes a Markdown table
of mean +/- standard error next to the paper's rows, with the worst run of each recipe (a recipe
is only as good as its worst seed), plus every run's numbers as JSON.

A run's result may depend on its thread count (the summation order of floating-point reductions
changes with it, and a GAN's trajectory amplifies such differences), so every seed is trained
with each of `--threads`.

    python scripts/reproduce_2d_table.py                      # 10 seeds x 1 and 2 threads
    python scripts/reproduce_2d_table.py --jobs 2 --threads 1 # two one-thread runs at a time
    python scripts/reproduce_2d_table.py --recipes ring8_best --seeds 1 -- trainer.steps=500
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import reproduce_common as common

# recipe name -> (data set, row label); each recipe is configs/experiment/<name>.yaml
RECIPES = {
    "ring8": ("ring8", "plain GAN (gan-cli)"),
    "ring8_best": ("ring8", "best recipe (gan-cli)"),
    "grid25": ("grid25", "plain GAN (gan-cli)"),
    "grid25_best": ("grid25", "best recipe (gan-cli)"),
    "ring8_wide": ("ring8", "wide recipe (gan-cli)"),
    "grid25_wide": ("grid25", "wide recipe (gan-cli)"),
}
# Lin et al. 2018, Table 1: (modes, high-quality %, reverse KL); "-" where DESIGN.md does not quote it
PAPER = {
    "ring8": [("GAN (paper)", 6.3, None, None), ("PacGAN4 (paper)", 7.8, 95.9, 0.07)],
    "grid25": [("GAN (paper)", 17.3, None, None), ("PacGAN4 (paper)", 24.8, 93.6, 0.04)],
}
MODES = {"ring8": 8, "grid25": 25}
KEYS = ("modes2d/modes", "modes2d/hq_pct", "modes2d/rkl", "modes2d/spread")
FORMATS = ("{:.2f} ± {:.2f}", "{:.1f} ± {:.1f}", "{:.4f} ± {:.4f}", "{:.2f} ± {:.2f}")


@dataclass
class Run:
    recipe: str
    seed: int
    threads: int
    run_dir: Path


def train_and_eval(run: Run, overrides: list[str]) -> dict[str, float]:
    """One `gan-train` and one `gan-eval` of `run` with its thread count; eval.json is reused when
    it has every metric of the table."""
    train = [f"experiment={run.recipe}", f"trainer.seed={run.seed}", f"trainer.threads={run.threads}"]
    train += overrides
    evaluate = ["metrics=[modes2d]"]
    return common.train_and_eval(run.run_dir, train, evaluate, run.threads, lambda m: set(KEYS) <= m.keys())


def worst(rows: list[dict[str, float]]) -> list[str]:
    """Per column the worst run and which it was: fewest modes, lowest high-quality %, highest
    reverse KL, spread farthest from the data's 1 (NaN, no high-quality sample, worst of all)."""

    def where(r: dict[str, float]) -> str:
        return f" (seed {r['seed']}, {r['threads']} thr)"

    def spread_gap(r: dict[str, float]) -> float:
        s = r["modes2d/spread"]
        return math.inf if s is None or math.isnan(s) else abs(math.log(s))

    picks = (
        min(rows, key=lambda r: r["modes2d/modes"]),
        min(rows, key=lambda r: r["modes2d/hq_pct"]),
        max(rows, key=lambda r: r["modes2d/rkl"]),
        max(rows, key=spread_gap),
    )
    cells = []
    for key, fmt, r in zip(KEYS, ("{:.0f}", "{:.1f}", "{:.4f}", "{:.2f}"), picks, strict=True):
        value = r[key]
        missing = value is None or math.isnan(value)  # spread: null or NaN without HQ samples
        shown = "-" if missing else fmt.format(value)
        cells.append(shown + where(r))
    return cells


def table(results: dict[str, list[dict[str, float]]], jobs: int) -> str:
    """The Markdown table: per data set the paper's rows, then ours (mean +/- s.e. over seeds)."""
    lines = []
    for data in ("ring8", "grid25"):
        ours = [r for r in results if RECIPES[r][0] == data]
        if not ours:
            continue
        lines += [
            f"**{data}** ({MODES[data]} modes; 2,500 samples; high quality = within 3 std of a mode)",
            "",
            "| recipe | runs (seeds x threads) | modes | high-quality % | reverse KL | spread (data: 1) "
            "| train time (s) |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, modes, hq, rkl in PAPER[data]:
            lines.append(
                f"| {label} | | {modes} | {'-' if hq is None else hq} | {'-' if rkl is None else rkl} | - | |"
            )
        for recipe in ours:
            rows = results[recipe]
            cells = []
            for key, fmt in zip(KEYS, FORMATS, strict=True):
                values = [r[key] for r in rows if r[key] is not None]  # spread: null without HQ samples
                cells.append(fmt.format(*common.mean_se(values)) if values else "-")
            times = [r["train_s"] for r in rows]
            seeds = len({r["seed"] for r in rows})
            threads = sorted({r["threads"] for r in rows})
            runs = f"{len(rows)} ({seeds} x {'/'.join(map(str, threads))})"
            label = f"{RECIPES[recipe][1]}: `experiment={recipe}`"
            lines.append(f"| {label} | {runs} | {' | '.join(cells)} | {max(times):.0f} max |")
            lines.append(f"| ... its worst run | | {' | '.join(worst(rows))} | |")
        lines.append("")
    lines.append(
        f"Runs trained {jobs} at a time on {os.cpu_count()} CPU cores, each with the thread count "
        "shown (thr); mean ± standard error over every run; the worst run per column below each "
        "recipe (spread: farthest from 1); train times include runs sharing the cores."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated, of {list(RECIPES)}")
    parser.add_argument("--seeds", type=int, default=10, help="trainer.seed 0..N-1 per recipe")
    parser.add_argument(
        "--threads", default="1,2", help="comma-separated trainer.threads; every seed is trained with each"
    )
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time")
    parser.add_argument(
        "--out", type=Path, default=Path("outputs/2d_table"), help="runs, table.md, runs.json"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    parser.add_argument("overrides", nargs="*", help="extra gan-train overrides for every run (after --)")
    args = parser.parse_args()
    recipes = [r for r in args.recipes.split(",") if r]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        parser.error(f"unknown recipes {unknown}; valid: {list(RECIPES)}")
    try:
        thread_counts = [int(t) for t in args.threads.split(",") if t]
    except ValueError:
        parser.error(f"--threads takes comma-separated integers, got {args.threads!r}")
    if not thread_counts or min(thread_counts) < 1:
        parser.error(f"--threads needs counts >= 1, got {args.threads!r}")
    runs = [
        Run(r, s, t, (args.out / r / f"seed{s}_threads{t}").resolve())
        for r in recipes
        for s in range(args.seeds)
        for t in thread_counts
    ]

    def one(run: Run) -> dict[str, float]:
        metrics = train_and_eval(run, args.overrides)
        spread = metrics["modes2d/spread"]  # null without high-quality samples
        # one write per line: two threads printing at once must not interleave
        sys.stdout.write(
            f"{run.recipe} seed {run.seed} ({run.threads} thr): modes {metrics['modes2d/modes']:.0f}, "
            f"HQ {metrics['modes2d/hq_pct']:.1f} %, rKL {metrics['modes2d/rkl']:.4f}, "
            f"spread {'-' if spread is None else f'{spread:.2f}'}, {metrics['train_s']:.0f} s\n"
        )
        sys.stdout.flush()
        return metrics

    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(one, runs))
    results: dict[str, list[dict[str, float]]] = {r: [] for r in recipes}
    for run, metrics in zip(runs, done, strict=True):
        results[run.recipe].append(
            {k: metrics[k] for k in (*KEYS, "train_s")} | {"seed": run.seed, "threads": run.threads}
        )
    md = table(results, args.jobs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(md)
    (args.out / "runs.json").write_text(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"table": md, "runs": results}, indent=2))
    print(md)


if __name__ == "__main__":
    main()
