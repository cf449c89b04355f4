"""The benchmarks run (quick mode). Never a timing assertion: speed targets live in the scripts."""

import json
import subprocess
import sys

from omegaconf import OmegaConf

from tests.conftest import REPO


def run_script(name: str, *args: str, cwd) -> dict:
    out = cwd / f"{name}.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / f"{name}.py"), "--quick", "--json", str(out), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


def test_bench_runs(tmp_path):
    report = run_script("bench", "--cases", "dcgan32,mlp_ring8", cwd=tmp_path)
    assert report["matmul_gflops"] > 0
    for case in report["cases"]:
        assert case["images_per_s"] > 0 and case["gflop_per_step"] > 0 and 0 < case["fraction_of_matmul"]
        assert set(case["split_pct"]) == {"data", "d_step", "g_step"}


def test_bench_data_runs(tmp_path):
    report = run_script("bench_data", cwd=tmp_path)
    assert len(report["paths"]) == 3 and report["dcgan32"]["data_share_pct"] >= 0


def test_reproduce_2d_table_runs_seeds_and_writes_the_table(tmp_path):
    out = tmp_path / "table"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "reproduce_2d_table.py"),
            "--recipes",
            "ring8",
            "--seeds",
            "2",
            "--threads",
            "1,2",
            "--out",
            str(out),
            "--",
            "trainer.steps=20",
            "trainer.batch_size=64",
            "trainer.tensorboard=false",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads((out / "runs.json").read_text())["ring8"]
    assert [(r["seed"], r["threads"]) for r in runs] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    for r in runs:
        # the table's numbers are gan-eval's, of that seed's run with that thread count
        run_dir = out / "ring8" / f"seed{r['seed']}_threads{r['threads']}"
        evaluated = json.loads((run_dir / "eval.json").read_text())
        assert r == {**r, **{k: v for k, v in evaluated.items() if k in r}}
        assert OmegaConf.load(run_dir / ".hydra" / "config.yaml").trainer.threads == r["threads"]
        assert 0 <= r["modes2d/modes"] <= 8 and 0 <= r["modes2d/hq_pct"] <= 100
    md = (out / "table.md").read_text()
    mean = sum(r["modes2d/modes"] for r in runs) / 4
    assert "| PacGAN4 (paper) | | 7.8 | 95.9 | 0.07 | - | |" in md
    assert "| reverse KL | spread (data: 1) |" in md
    assert f"| plain GAN (gan-cli): `experiment=ring8` | 4 (2 x 1/2) | {mean:.2f} ± " in md
    # the worst run per column, named by its seed and thread count
    fewest = min(runs, key=lambda r: r["modes2d/modes"])
    lowest = min(runs, key=lambda r: r["modes2d/hq_pct"])
    row = next(line for line in md.splitlines() if line.startswith("| ... its worst run"))
    cells = [c.strip() for c in row.split("|")[3:7]]
    assert cells[0] == f"{fewest['modes2d/modes']:.0f} (seed {fewest['seed']}, {fewest['threads']} thr)"
    assert cells[1] == f"{lowest['modes2d/hq_pct']:.1f} (seed {lowest['seed']}, {lowest['threads']} thr)"
