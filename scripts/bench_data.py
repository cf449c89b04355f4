"""Input-pipeline benchmark: batches/s of the preloaded and DataLoader paths on CIFAR-shaped data,
and the share of a DCGAN-32 training step spent waiting for data.

    python scripts/bench_data.py                 # full run (a few minutes on 2 CPU cores)
    python scripts/bench_data.py --quick         # seconds: checks that it runs
    python scripts/bench_data.py --device cuda --json out.json

Prints a table and writes JSON (default: bench_data.json in the current folder).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan_cli.data import make_batches
from gan_cli.schema import DataConfig, DataName, Labels


def write_png_folder(root: Path, n: int) -> None:
    """n random 32x32 RGB PNGs in two class folders (what a user's CIFAR-like folder looks like)."""
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:06d}.png")


def batches_per_second(cfg: DataConfig, batch_size: int, device: torch.device, n: int) -> tuple[float, str]:
    batches, _ = make_batches(cfg, batch_size, seed=0, device=device)
    for _ in range(min(10, n)):  # warm-up: workers start, caches fill
        batches.next()
    sync(device)
    start = time.perf_counter()
    for _ in range(n):
        x, _ = batches.next()
    sync(device)
    return n / (time.perf_counter() - start), type(batches).__name__


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def data_wait_share(device: torch.device, batch_size: int, steps: int) -> dict[str, float]:
    """Train DCGAN-32 on preloaded CIFAR-shaped data; time spent inside batches.next()."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from gan_cli.cli import _setup
    from gan_cli.trainer import Trainer

    _setup()
    configs = Path(__file__).resolve().parents[1] / "configs"
    with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "model=dcgan",
                "data=fake",
                "data.channels=3",
                "data.image_size=32",
                "data.size=50000",
                "data.hflip=true",
                f"trainer.batch_size={batch_size}",
                f"trainer.device={device.type}",
                "trainer.precision=fp32",
            ],
        )
    trainer = Trainer(OmegaConf.to_object(cfg), Path(tempfile.mkdtemp()))
    waited = [0.0]
    fetch = trainer.game.batches.next

    def timed_next():
        sync(device)
        t0 = time.perf_counter()
        out = fetch()
        sync(device)
        waited[0] += time.perf_counter() - t0
        return out

    trainer.game.batches.next = timed_next  # type: ignore[method-assign]
    for _ in range(3):
        trainer.train_step()
    sync(device)
    waited[0] = 0.0
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    sync(device)
    total = time.perf_counter() - start
    return {
        "step_ms": 1000 * total / steps,
        "data_ms": 1000 * waited[0] / steps,
        "data_share_pct": 100 * waited[0] / total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check that it runs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", default="bench_data.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    n_batches = 20 if args.quick else 300
    n_files = 400 if args.quick else 5000
    steps = 3 if args.quick else 40

    results: dict[str, dict] = {}
    preload = DataConfig(
        name=DataName.fake,
        channels=3,
        image_size=32,
        num_classes=10,
        size=2000 if args.quick else 50000,
        hflip=True,
    )
    rate, kind = batches_per_second(preload, args.batch_size, device, n_batches)
    results["preloaded (fake, in memory)"] = {
        "batches_per_s": rate,
        "images_per_s": rate * args.batch_size,
        "server": kind,
    }
    with tempfile.TemporaryDirectory() as tmp:
        write_png_folder(Path(tmp), n_files)
        for label, mb in (
            ("preloaded (PNG folder, decoded once)", 1024),
            (f"DataLoader (PNG folder, {args.workers} workers)", 0),
        ):
            cfg = DataConfig(
                name=DataName.image_folder,
                root=tmp,
                channels=3,
                image_size=32,
                labels=Labels.subfolders,
                num_classes=2,
                hflip=True,
                preload_max_mb=mb,
                cache=False,
                num_workers=args.workers,
            )
            rate, kind = batches_per_second(cfg, args.batch_size, device, n_batches)
            results[label] = {"batches_per_s": rate, "images_per_s": rate * args.batch_size, "server": kind}
    share = data_wait_share(device, args.batch_size, steps)

    print(f"\nInput pipeline, CIFAR-shaped 3x32x32, batch {args.batch_size}, device {device}")
    print(f"{'path':48s} {'batches/s':>12s} {'images/s':>12s}")
    for label, r in results.items():
        print(f"{label:48s} {r['batches_per_s']:12.1f} {r['images_per_s']:12.0f}")
    print(
        f"\nDCGAN-32 step {share['step_ms']:.1f} ms, waiting for data {share['data_ms']:.2f} ms "
        f"= {share['data_share_pct']:.2f} % of the step (preloaded path; target < 2 %)"
    )
    out = {
        "device": str(device),
        "batch_size": args.batch_size,
        "paths": results,
        "dcgan32": share,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
