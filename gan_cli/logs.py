"""Where a run reports: the terminal (tqdm), TensorBoard, metrics.jsonl and sample PNGs."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm


def _truncate_jsonl(path: Path, last_step: int) -> None:
    """Drop records after `last_step`, so a resumed run neither repeats nor skips a step."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= last_step:
                kept.append(line)
        except json.JSONDecodeError:  # a line cut short by a crash
            continue
    path.write_text("".join(k + "\n" for k in kept))


def json_safe(values: dict[str, Any]) -> dict[str, Any]:
    """NaN and inf become null: standard JSON, which other tools can read."""
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in values.items()}


class RunLogger:
    def __init__(
        self, run_dir: Path, total_steps: int, start_step: int, progress: bool, tensorboard: bool
    ) -> None:
        self.run_dir = run_dir
        self.samples_dir = run_dir / "samples"
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = run_dir / "metrics.jsonl"
        _truncate_jsonl(self.jsonl_path, start_step)
        self.jsonl = open(self.jsonl_path, "a")  # noqa: SIM115 - closed in close()
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # slow import, only when used

            # purge_step drops events a previous attempt logged after the resumed step
            self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=start_step or None)
        self.bar = tqdm(
            total=total_steps,
            initial=start_step,
            disable=not progress,
            dynamic_ncols=True,
            unit="step",
            desc="train",
        )

    def advance(self, steps: int = 1) -> None:
        self.bar.update(steps)

    def rewind(self, step: int) -> None:
        """Forget records after `step` (the run went back to an earlier checkpoint)."""
        self.jsonl.close()
        _truncate_jsonl(self.jsonl_path, step)
        self.jsonl = open(self.jsonl_path, "a")  # noqa: SIM115

    def metrics(self, step: int, values: dict[str, Any], warnings: list[str]) -> None:
        record = {"step": step, **json_safe(values), "warnings": warnings}
        self.jsonl.write(json.dumps(record) + "\n")
        self.jsonl.flush()
        if self.tb is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.tb.add_scalar(key, value, step)
        short = {"D(x)": "d/real", "D(G(z))": "d/fake", "Ld": "loss/d", "Lg": "loss/g", "p": "ada/p"}
        self.bar.set_postfix({k: f"{values[v]:.3f}" for k, v in short.items() if v in values})

    def warn(self, step: int, name: str, text: str) -> None:
        self.message(f"[step {step}] {name}: {text}")
        if self.tb is not None:
            self.tb.add_text("warnings", f"**{name}** (step {step}): {text}", step)

    def message(self, text: str) -> None:
        self.bar.write(text)

    def image(self, step: int, image: Tensor, name: str = "samples") -> Path:
        """Save a (C, H, W) float image in [0, 1] as PNG and to TensorBoard."""
        path = self.samples_dir / f"step_{step:06d}.png"
        save_png(image, path)
        if self.tb is not None:
            self.tb.add_image(name, image.clamp(0, 1), step)
        return path

    def real_images(self, image: Tensor) -> Path:
        """samples/real.png (and TensorBoard's `real`): what the model learns from."""
        path = self.samples_dir / "real.png"
        save_png(image, path)
        if self.tb is not None:
            self.tb.add_image("real", image.clamp(0, 1), 0)
        return path

    def close(self) -> None:
        self.bar.close()
        self.jsonl.close()
        if self.tb is not None:
            self.tb.close()


class NullLogger(RunLogger):
    """What ranks other than 0 log to under torchrun: nothing."""

    def __init__(self) -> None:  # noqa: D107 - deliberately opens no file, writer or bar
        pass

    def advance(self, steps: int = 1) -> None:
        pass

    def rewind(self, step: int) -> None:
        pass

    def metrics(self, step: int, values: dict[str, Any], warnings: list[str]) -> None:
        pass

    def warn(self, step: int, name: str, text: str) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def image(self, step: int, image: Tensor, name: str = "samples") -> Path:
        return Path(os.devnull)

    def real_images(self, image: Tensor) -> Path:
        return Path(os.devnull)

    def close(self) -> None:
        pass


# Grids and PNGs are tiled and rounded here, as torchvision.utils' make_grid and save_image do (the
# same pixels, the same files: tests/test_fixed_costs.py), because importing torchvision imports
# torch._dynamo (1.5 s on a 2-core CPU, longer than a short job's training); Pillow writes the PNG.
GRID_PADDING = 2


def image_grid(samples: Tensor, nrow: int) -> Tensor:
    """[-1, 1] NCHW samples (C = 1 or 3) -> one (3, H', W') RGB grid in [0, 1], `nrow` images per
    row and ceil(N / nrow) rows, 2 black pixels around and between them (one image: that image
    alone, unpadded). Values outside [-1, 1] are clipped."""
    x = samples.detach().float().cpu().clamp(-1, 1).add(1).div(2)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    n, c, h, w = x.shape
    if n == 1:
        return x[0].clone()
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    p = GRID_PADDING
    grid = x.new_zeros(c, rows * (h + p) + p, cols * (w + p) + p)
    for i in range(n):
        top, left = (i // cols) * (h + p) + p, (i % cols) * (w + p) + p
        grid[:, top : top + h, left : left + w] = x[i]
    return grid


def save_png(image: Tensor, path: Path) -> None:
    """Write a (C, H, W) float image in [0, 1] (C = 1 or 3; grey is written as RGB) as an 8-bit PNG,
    each value v stored as floor(255 v + 0.5) clipped to [0, 255]. Raises OSError when the file
    cannot be written."""
    from PIL import Image

    x = image.detach().float().cpu()
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    pixels = x.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(path, format="PNG")


def scatter_image(points: Tensor, modes: Tensor | None, size: int = 256) -> Tensor:
    """2-D samples (grey dots) over the true modes (red crosses) as a (3, size, size) image."""
    pts = points.detach().float().cpu()
    ref = torch.cat([pts, modes]) if modes is not None else pts
    lo, hi = ref.min(0).values, ref.max(0).values
    span = (hi - lo).max().clamp_min(1e-6) * 1.1
    centre = (hi + lo) / 2

    def to_pixels(p: Tensor) -> Tensor:
        return ((p - centre) / span * (size - 1) + (size - 1) / 2).round().long().clamp(0, size - 1)

    img = torch.ones(3, size, size)
    px = to_pixels(pts)
    img[:, size - 1 - px[:, 1], px[:, 0]] = 0.25
    if modes is not None:
        for x, y in to_pixels(modes).tolist():
            for d in range(-3, 4):
                for cx, cy in ((x + d, y), (x, y + d)):
                    if 0 <= cx < size and 0 <= cy < size:
                        img[:, size - 1 - cy, cx] = torch.tensor([1.0, 0.0, 0.0])
    return img
