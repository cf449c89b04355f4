"""Quality against wall time of one training command: the quick start's measured curve.

Trains once with a checkpoint every `--every` steps, notes when each checkpoint appeared (seconds
since the process started, start-up included), then scores every checkpoint with
`gan-eval metrics=[classifier]` at equal sample counts. Run it alone: wall time is the point.

    python scripts/quickstart_curve.py --every 500 --out curve_new.json
    python scripts/quickstart_curve.py --every 500 --out curve_old.json -- trainer.steps=2000 ...

Prints a Markdown table (step, seconds, FD, FD / floor, class shares) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def train(overrides: list[str], every: int, run_dir: Path) -> tuple[float, dict[int, float]]:
    """Run gan-train; returns its wall time and, per checkpoint step, when the file appeared."""
    cmd = [
        "gan-train",
        *overrides,
        f"trainer.ckpt_every={every}",
        "trainer.keep_ckpts=1000",
        "trainer.progress=false",
        f"hydra.run.dir={run_dir}",
    ]
    start = time.time()
    subprocess.run(cmd, check=True)
    wall = time.time() - start
    seen = {
        int(p.stem.split("_")[1]): p.stat().st_mtime - start
        for p in (run_dir / "checkpoints").glob("step_*.pt")
    }
    return wall, dict(sorted(seen.items()))


def score(checkpoint: Path, n_samples: int) -> dict[str, object]:
    out = checkpoint.with_suffix(".eval.json")
    subprocess.run(
        [
            "gan-eval",
            f"run={checkpoint}",
            "metrics=[classifier]",
            f"eval.n_samples={n_samples}",
            f"out={out}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--every", type=int, default=500, help="checkpoint (and score) every N steps")
    parser.add_argument("--n-samples", type=int, default=10000, help="generated samples per score")
    parser.add_argument("--out", default="curve.json")
    parser.add_argument("--run-dir", default=None, help="keep the run here (default: a temporary folder)")
    parser.add_argument("overrides", nargs="*", help="gan-train overrides (after --)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(args.run_dir or Path(tmp) / "run")
        wall, seen = train(args.overrides, args.every, run_dir)
        rows = []
        for step, seconds in seen.items():
            result = score(run_dir / "checkpoints" / f"step_{step:06d}.pt", args.n_samples)
            flat = result.get("metrics", result)
            fd, floor = flat["classifier/fd"], flat["classifier/fd_floor"]
            rows.append(
                {
                    "step": step,
                    "seconds": round(seconds, 1),
                    "fd": fd,
                    "fd_floor": floor,
                    "ratio": fd / floor,
                    "hist": flat["classifier/hist"],
                }
            )
    Path(args.out).write_text(
        json.dumps({"overrides": args.overrides, "wall_s": wall, "rows": rows}, indent=1)
    )
    print(f"`gan-train {' '.join(args.overrides)}`: {wall:.0f} s in all\n")
    print("| step | s | classifier FD | FD / floor | classes (min-max %) |")
    print("|---:|---:|---:|---:|---|")
    for r in rows:
        shares = [100 * h for h in r["hist"]]
        print(
            f"| {r['step']} | {r['seconds']:.0f} | {r['fd']:.3f} | {r['ratio']:.1f} | "
            f"{min(shares):.1f}-{max(shares):.1f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
