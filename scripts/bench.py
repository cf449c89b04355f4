"""Training-speed benchmark: steady-state throughput of named configs, the split of a step, peak
memory, achieved GFLOP/s (counted with torch.utils.flop_counter) and, in the same process, the
machine's own fp32 matrix-multiply rate, so each result is also a fraction of what it can do.

    python scripts/bench.py                       # every case, on the CPU
    python scripts/bench.py --cases dcgan64 --device cuda --precision bf16
    python scripts/bench.py --quick               # seconds: checks that it runs
    python scripts/bench.py --compile             # also with trainer.compile=true
    python scripts/bench.py --cases process47     # a whole gan-train process: its fixed costs

Prints a table and writes JSON (default bench.json).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

CASES: dict[str, list[str]] = {
    "dcgan64": [
        "model=dcgan",
        "data=fake",
        "data.channels=3",
        "data.image_size=64",
        "trainer.batch_size=64",
        "model.g_channels=64",
        "model.d_channels=64",
    ],
    "dcgan32": ["model=dcgan", "data=fake", "data.channels=3", "data.image_size=32", "trainer.batch_size=64"],
    "dcgan32_b128": [
        "model=dcgan",
        "data=fake",
        "data.channels=3",
        "data.image_size=32",
        "trainer.batch_size=128",
    ],
    "cgan32": ["model=cgan", "data=fake", "data.channels=3", "data.image_size=32", "trainer.batch_size=64"],
    "mlp_ring8": ["model=mlp", "data=ring8", "trainer.batch_size=100"],
    # the model=stylegan2 defaults (channel budget 2048 / 128, mapping depth 2, batch 32) on 1x32x32
    # images: lazy R1 every 16 and path length every 4 steps amortised into the step time
    "stylegan2_32": ["model=stylegan2", "data=fake", "data.channels=1", "data.image_size=32"],
    "dcgan_mnist": ["model=dcgan", "data=fake", "data.channels=1", "data.image_size=32"],
    # the quick start's DCGAN (configs/tuned/mnist5k_dcgan_nonsaturating.yaml: 48 / 24 maps, batch 32)
    "dcgan_quickstart": [
        "model=dcgan",
        "data=fake",
        "data.channels=1",
        "data.image_size=32",
        "model.g_channels=48",
        "model.d_channels=24",
    ],
}
# whole gan-train processes (start-up, data, models, the steps, grids, checkpoints, exit): the fixed
# costs of a short job are the wall time less the training loop's own (metrics.jsonl `elapsed`)
PROCESS_CASES: dict[str, list[str]] = {
    "process47": [
        "data=fake",
        "data.channels=3",
        "data.image_size=64",
        "data.size=3000",
        "trainer.steps=47",
        "trainer.log_every=1",
    ],
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(device: torch.device, quick: bool) -> float:
    """The machine's reference: a large fp32 matrix multiply on the same device."""
    n = 1024 if quick else (8192 if device.type == "cuda" else 2048)
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    sync(device)
    reps = 3 if quick else 10
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def build(case: list[str], device: str, precision: str, compile_: bool, data_size: int):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from gan_cli.cli import _setup
    from gan_cli.trainer import Trainer

    _setup()
    over = [
        *case,
        f"trainer.device={device}",
        f"trainer.precision={precision}",
        f"trainer.compile={compile_}",
    ]
    if "data=fake" in case:
        over.append(f"data.size={data_size}")
    configs = Path(__file__).resolve().parents[1] / "configs"
    with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        cfg = OmegaConf.to_object(compose("config", overrides=over))
    return Trainer(cfg, Path(tempfile.mkdtemp()))


def timed(trainer, name: str, totals: dict[str, float]) -> None:
    """Wrap trainer.<name> (or its batches.next) to add its wall time to totals[name]."""
    owner, attr = (trainer.game.batches, "next") if name == "data" else (trainer.game, name)
    inner = getattr(owner, attr)

    def wrapper(*args, **kwargs):
        sync(trainer.device)
        t0 = time.perf_counter()
        out = inner(*args, **kwargs)
        sync(trainer.device)
        totals[name] += time.perf_counter() - t0
        return out

    setattr(owner, attr, wrapper)


def bench_case(name: str, args: argparse.Namespace, reference: float) -> dict:
    trainer = build(CASES[name], args.device, args.precision, args.compile, 2048 if args.quick else 8192)
    device = trainer.device
    warmup, steps = (2, 3) if args.quick else (10, args.steps)
    for _ in range(warmup):
        trainer.train_step()
    try:
        with FlopCounterMode(display=False) as counter:
            trainer.train_step()
        flops = counter.get_total_flops()
    except AssertionError:  # the counter's module hooks fail on stylegan2's second derivatives
        trainer.train_step()
        flops = float("nan")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    # throughput, uninstrumented
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    sync(device)
    step_s = (time.perf_counter() - start) / steps
    # the split of a step (synchronised timers, a separate pass)
    totals = {"data": 0.0, "_d_step": 0.0, "_g_step": 0.0}
    for part in totals:
        timed(trainer, part, totals)
    split_steps = max(2, steps // 2)
    for _ in range(split_steps):
        trainer.train_step()
    # (stylegan2's four phases are one train_step: its D and G split reads 0)
    d_only = max(0.0, totals["_d_step"] - totals["data"])
    # logging, sampling and checkpointing, amortised over the default intervals
    t = trainer.cfg.trainer
    from gan_cli.checkpoint import CheckpointWriter
    from gan_cli.logs import RunLogger

    run = trainer.run_dir
    logger = RunLogger(run, t.steps, trainer.step, progress=False, tensorboard=True)
    writer = CheckpointWriter(run / "checkpoints", t.keep_ckpts)
    t0 = time.perf_counter()
    trainer._log(logger, writer)
    log_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    logger.image(trainer.step, trainer.game.sample_image())
    sample_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    trainer._save(writer, logger)
    ckpt_s = time.perf_counter() - t0
    logger.close()
    overhead = (log_s / t.log_every + sample_s / t.sample_every + ckpt_s / t.ckpt_every) / step_s
    batch = t.batch_size
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gflops = flops / step_s / 1e9
    return {
        "case": name,
        "batch": batch,
        "step_ms": 1000 * step_s,
        "g_steps_per_s": 1 / step_s,
        "images_per_s": batch * trainer.cfg.loss.n_critic / step_s,
        "split_pct": {
            "data": 100 * totals["data"] / split_steps / step_s,
            "d_step": 100 * d_only / split_steps / step_s,
            "g_step": 100 * totals["_g_step"] / split_steps / step_s,
        },
        "logging_overhead_pct": 100 * overhead,
        "event_ms": {"log": 1000 * log_s, "sample": 1000 * sample_s, "checkpoint": 1000 * ckpt_s},
        "gflop_per_step": flops / 1e9,
        "gflops": gflops,
        "fraction_of_matmul": gflops / reference,
        "peak_mem_mb": peak_mb,
    }


def process_case(name: str) -> dict:
    """Run `gan-train <case>` as a new process; its wall time, the training loop's, and the rest."""
    import subprocess
    import sys

    run = Path(tempfile.mkdtemp()) / "run"
    cmd = [sys.executable, "-m", "gan_cli.train", *PROCESS_CASES[name], "trainer.progress=false"]
    start = time.perf_counter()
    subprocess.run([*cmd, f"hydra.run.dir={run}"], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    loop = rows[-1]["elapsed"]
    return {"case": name, "wall_s": wall, "loop_s": loop, "fixed_s": wall - loop}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    every = [*CASES, *PROCESS_CASES]
    parser.add_argument("--cases", default=",".join(every), help=f"comma-separated: {', '.join(every)}")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--compile", action="store_true", help="trainer.compile=true (torch.compile)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default="bench.json")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads; 0 = gan-train's auto choice")
    args = parser.parse_args()
    from gan_cli.cpu import auto_threads

    threads, why = auto_threads(args.threads, 1, 0)
    torch.set_num_threads(threads)
    print(f"CPU threads: {threads} ({why})")
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    reference = matmul_gflops(device, args.quick)
    names = args.cases.split(",")
    processes = [process_case(name) for name in names if name in PROCESS_CASES]
    rows = [bench_case(name, args, reference) for name in names if name not in PROCESS_CASES]
    print(
        f"\ndevice {device}, precision {args.precision}, compile {args.compile}, threads "
        f"{torch.get_num_threads()}, fp32 matmul reference {reference:.1f} GFLOP/s"
    )
    head = (
        f"{'case':13s} {'batch':>5s} {'ms/step':>8s} {'img/s':>8s} {'GFLOP/s':>8s} {'of mm':>6s} "
        f"{'data%':>6s} {'D%':>5s} {'G%':>5s} {'log%':>5s} {'peak MB':>8s}"
    )
    print(head)
    for r in rows:
        s = r["split_pct"]
        print(
            f"{r['case']:13s} {r['batch']:5d} {r['step_ms']:8.1f} {r['images_per_s']:8.0f} "
            f"{r['gflops']:8.1f} "
            f"{100 * r['fraction_of_matmul']:5.0f}% {s['data']:6.2f} {s['d_step']:5.1f} {s['g_step']:5.1f} "
            f"{r['logging_overhead_pct']:5.2f} {r['peak_mem_mb']:8.0f}"
        )
    for r in processes:
        print(
            f"{r['case']:13s} whole process {r['wall_s']:.1f} s = training loop {r['loop_s']:.1f} s "
            f"+ fixed costs {r['fixed_s']:.1f} s (start-up, data, models, grids, checkpoints, exit)"
        )
    out = {
        "processes": processes,
        "device": str(device),
        "precision": args.precision,
        "compile": args.compile,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "matmul_gflops": reference,
        "cases": rows,
    }
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
