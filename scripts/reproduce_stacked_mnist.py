"""Reproduce the Stacked MNIST tables of PacGAN (Lin et al. 2018, Tables 2 and 3) with gan-cli's recipes.

Trains every row with several seeds through `gan-train`, evaluates each run with
`gan-eval metrics=[stacked_modes]` (26,000 samples; each channel read by gan-cli's MNIST
classifier) and writes a Markdown table of mean +/- standard error over seeds of the modes covered
(of 1,000) and KL(generated triple histogram || uniform), next to the published rows, plus every
run's numbers as JSON. The worst seed of each row (fewest modes) is printed and tabled.

    python scripts/reproduce_stacked_mnist.py                            # 3 seeds, the default rows
    python scripts/reproduce_stacked_mnist.py --rows small_d --seeds 5 --steps 50000 --jobs 2
    python scripts/reproduce_stacked_mnist.py --rows veegan -- data=stacked_mnist data.root=~/datasets
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import reproduce_common as common

# the stabilisers a recipe may use, switched off: a plain DCGAN in the recipe's setting
PLAIN = ["model.pack=1", "model.mbstd=false", "model.minibatch_discrimination=false", "loss.unroll_steps=0"]
# row -> (setting, recipe, overrides, label); each recipe is configs/experiment/<recipe>.yaml
ROWS = {
    "small_d_dcgan": ("small_d", "stacked_mnist_small_d", PLAIN, "DCGAN (gan-cli)"),
    "small_d": ("small_d", "stacked_mnist_small_d", [], "recipe (gan-cli)"),
    "veegan_dcgan": ("veegan", "stacked_mnist_veegan", PLAIN, "DCGAN (gan-cli)"),
    "veegan": ("veegan", "stacked_mnist_veegan", [], "recipe (gan-cli)"),
}
DEFAULT_ROWS = ("small_d_dcgan", "small_d", "veegan")
SETTINGS = {
    "small_d": "small D (Unrolled GAN paper; PacGAN Table 3: D = 1/4 G)",
    "veegan": "VEEGAN setting (PacGAN Table 2)",
}
# Lin et al. 2018: (row, modes, KL)
PAPER = {
    "small_d": [
        ("DCGAN (paper)", 30.6, 5.99),
        ("unrolled GAN, 10 steps (paper)", 327.2, 4.66),
        ("PacDCGAN4 (paper)", 667.4, 1.81),
        ("PacDCGAN2, D = 1/2 G (paper)", 840.7, 1.00),
    ],
    "veegan": [("DCGAN (paper)", 99.0, 3.40), ("PacDCGAN2 (paper)", 1000, 0.06)],
}
KEYS = ("stacked/modes", "stacked/kl")
SAMPLES = 26000  # the protocol's count


@dataclass
class Run:
    row: str
    seed: int
    run_dir: Path


def train_and_eval(
    run: Run, overrides: list[str], threads: int, samples: int, eval_sets: list[str]
) -> dict[str, float]:
    """One `gan-train` and one `gan-eval` of `run`; eval.json is reused when it holds the table's
    metrics at this sample count."""
    _, recipe, row_overrides, _ = ROWS[run.row]
    train = [f"experiment={recipe}", f"trainer.seed={run.seed}", *row_overrides, *overrides]
    evaluate = ["metrics=[stacked_modes]", f"eval.n_samples={samples}", *eval_sets]

    def reusable(metrics: dict) -> bool:
        return set(KEYS) <= metrics.keys() and metrics.get("n_samples") == samples

    return common.train_and_eval(run.run_dir, train, evaluate, threads, reusable)


def worst(rows: list[dict[str, float]]) -> dict[str, float]:
    """The seed with the fewest modes (the higher KL among equals)."""
    return min(rows, key=lambda r: (r["stacked/modes"], -r["stacked/kl"]))


def _command(row: str, overrides: list[str]) -> str:
    _, recipe, row_overrides, _ = ROWS[row]
    return " ".join([f"experiment={recipe}", *row_overrides, *overrides])


def table(results: dict[str, list[dict[str, float]]], overrides: list[str], samples: int, jobs: int) -> str:
    """The Markdown table: per setting the paper's rows, then ours (mean +/- s.e. over seeds), then
    the real data read by the same classifier (the reference)."""
    lines = []
    for setting, title in SETTINGS.items():
        ours = [r for r in results if ROWS[r][0] == setting]
        if not ours:
            continue
        lines += [
            f"**{title}** (1,000 modes; {samples:,} samples; KL to the uniform histogram)",
            "",
            "| row | seeds | modes | KL | worst seed: modes / KL | train time (s) |",
            "|---|---|---|---|---|---|",
        ]
        lines += [f"| {label} | | {modes} | {kl} | | |" for label, modes, kl in PAPER[setting]]
        for row in ours:
            runs = results[row]
            modes, kl = (common.mean_se([r[k] for r in runs]) for k in KEYS)
            bad = worst(runs)
            label = f"{ROWS[row][3]}: `{_command(row, overrides)}`"
            lines.append(
                f"| {label} | {len(runs)} | {modes[0]:.1f} ± {modes[1]:.1f} | {kl[0]:.2f} ± {kl[1]:.2f} | "
                f"seed {bad['seed']}: {bad['stacked/modes']:.0f} / {bad['stacked/kl']:.2f} | "
                f"{max(r['train_s'] for r in runs):.0f} max |"
            )
        first = results[ours[0]][0]
        accuracy = 100 * first["stacked/classifier_acc"]
        lines.append(
            f"| real data, same classifier (held-out digit accuracy {accuracy:.1f} %) | | "
            f"{first['stacked/real_modes']:.0f} | {first['stacked/real_kl']:.2f} | | |"
        )
        lines.append("")
    lines.append(
        f"Runs trained {jobs} at a time on {os.cpu_count()} CPU cores; mean ± standard error over seeds."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default=",".join(DEFAULT_ROWS), help=f"comma-separated, of {list(ROWS)}")
    parser.add_argument("--seeds", type=int, default=3, help="trainer.seed 0..N-1 per row")
    parser.add_argument("--steps", type=int, default=None, help="trainer.steps (default: the recipe's)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time")
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads per run (default: the CPUs / --jobs)"
    )
    parser.add_argument("--samples", type=int, default=SAMPLES, help="eval.n_samples of gan-eval")
    parser.add_argument(
        "--eval-set", action="append", default=[], metavar="KEY=VALUE", help="another gan-eval setting"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("outputs/stacked_mnist"), help="runs, table.md, runs.json"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    parser.add_argument("overrides", nargs="*", help="extra gan-train overrides for every run (after --)")
    args = parser.parse_args()
    rows = [r for r in args.rows.split(",") if r]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; valid: {list(ROWS)}")
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    overrides = [*([f"trainer.steps={args.steps}"] if args.steps else []), *args.overrides]
    runs = [Run(r, s, (args.out / r / f"seed{s}").resolve()) for r in rows for s in range(args.seeds)]

    def one(run: Run) -> dict[str, float]:
        metrics = train_and_eval(run, overrides, threads, args.samples, args.eval_set)
        # one write per line: two threads printing at once must not interleave
        sys.stdout.write(
            f"{run.row} seed {run.seed}: modes {metrics['stacked/modes']:.0f}, "
            f"KL {metrics['stacked/kl']:.3f}, {metrics['train_s']:.0f} s\n"
        )
        sys.stdout.flush()
        return metrics

    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(one, runs))
    keep = (*KEYS, "stacked/real_modes", "stacked/real_kl", "stacked/classifier_acc", "train_s")
    results: dict[str, list[dict[str, float]]] = {r: [] for r in rows}
    for run, metrics in zip(runs, done, strict=True):
        results[run.row].append({k: metrics[k] for k in keep} | {"seed": run.seed})
    md = table(results, overrides, args.samples, args.jobs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(md)
    (args.out / "runs.json").write_text(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"table": md, "runs": results}, indent=2))
    print(md)
    for row in rows:
        bad = worst(results[row])
        modes, kl = bad["stacked/modes"], bad["stacked/kl"]
        print(f"worst seed of {row}: seed {bad['seed']}, {modes:.0f} modes, KL {kl:.3f}")


if __name__ == "__main__":
    main()
