"""The benchmarks run (quick mode). Never a timing assertion: speed targets live in the scripts."""

import json
import subprocess
import sys

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
