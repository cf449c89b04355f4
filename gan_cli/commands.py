"""`gan-sample`, `gan-eval` and `gan-report`: key=value commands on finished (or running) runs.

They take the same `key=value` syntax as `gan-train`, checked against a dataclass schema, but
create no run directory of their own.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gan_cli.schema import EvalConfig, MetricName


class SampleFormat(str, Enum):
    png = "png"
    npy = "npy"


@dataclass
class SampleCommand:
    run: str = "???"  # a run directory, or a checkpoint / generator.pt file
    n: int = 64
    out: str = "samples.png"  # a .png grid, a folder of PNGs, or a .npy file
    format: SampleFormat = SampleFormat.png
    seed: int = 0
    labels: list[int] | None = None  # conditional models: the classes to draw (cycled to n)
    truncation: float = 0.0  # redraw latent components beyond this |value|; 0 = off
    interpolate: int = 0  # > 0: rows of this many steps along slerp walks between random codes
    nrow: int = 0  # images per grid row; 0 = about square (conditional: one row per class)
    device: str = "cpu"
    batch_size: int = 256


@dataclass
class EvalCommand:
    run: str = "???"
    metrics: list[MetricName] = field(default_factory=lambda: [])  # type: ignore[valid-type]
    device: str = "cpu"
    data_root: str | None = None  # where the run's real data set lives now, if it moved
    out: str | None = None  # eval.json path; default: <run>/eval.json
    eval: EvalConfig = field(default_factory=EvalConfig)


class CommandError(RuntimeError):
    pass


def parse(schema: type, argv: list[str], prog: str) -> Any:
    """key=value arguments -> a typed instance of `schema`; `--help` lists the keys."""
    if any(a in ("-h", "--help") for a in argv):
        print(f"usage: {prog} key=value ...\n\nkeys (defaults):")
        for f in fields(schema):
            default = f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
            print(f"  {f.name} = {default!r}")
        sys.exit(0)
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise CommandError(f"arguments are key=value pairs; got {bad[0]!r} (see {prog} --help)")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.from_dotlist(argv))
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            raise CommandError(f"{prog} needs {', '.join(m + '=...' for m in missing)}")
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        valid = ", ".join(f.name for f in fields(schema))
        raise CommandError(
            f"{str(e).splitlines()[0]} (full key: {getattr(e, 'full_key', '?')}). Valid keys: {valid}."
        ) from e


def _run_main(fn: Any, schema: type | None, prog: str) -> None:
    from gan_cli.checkpoint import CheckpointError
    from gan_cli.data import DataError
    from gan_cli.metrics.inception import EvalError

    try:
        fn(parse(schema, sys.argv[1:], prog) if schema else sys.argv[1:])
    except (CommandError, CheckpointError, DataError, EvalError) as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)


# ---- gan-sample ---------------------------------------------------------------------------------
def sample(cmd: SampleCommand) -> Path:
    import numpy as np
    import torch
    from torchvision.utils import save_image

    from gan_cli.latent import sample_latents
    from gan_cli.logs import image_grid, scatter_image
    from gan_cli.sampling import generate, load_generator, slerp, to_uint8

    gen = load_generator(cmd.run, torch.device(cmd.device))
    rng = torch.Generator().manual_seed(cmd.seed)
    z_dim = gen.model.z_dim
    if cmd.interpolate > 0:
        rows = max(1, cmd.n // cmd.interpolate)
        a, b = (sample_latents(gen.model, rows, rng, cmd.truncation) for _ in range(2))
        t = torch.linspace(0, 1, cmd.interpolate).view(1, -1, 1)
        # slerp keeps normal codes at a typical norm; mixture codes walk straight across the gaps
        walk = slerp if gen.model.z_components == 0 else torch.lerp
        z = walk(a[:, None], b[:, None], t).reshape(-1, z_dim)
        nrow = cmd.interpolate
    else:
        z = sample_latents(gen.model, cmd.n, rng, cmd.truncation)
        nrow = cmd.nrow
    y = None
    if gen.conditional:
        if cmd.labels:
            bad = [c for c in cmd.labels if not 0 <= c < gen.num_classes]
            if bad:
                raise CommandError(f"labels {bad} are not classes of this model (0..{gen.num_classes - 1}).")
            y = torch.tensor(cmd.labels).repeat(len(z) // len(cmd.labels) + 1)[: len(z)]
        elif cmd.interpolate > 0:
            y = (torch.arange(len(z)) // cmd.interpolate) % gen.num_classes
        else:
            y = torch.arange(len(z)) % gen.num_classes
            nrow = nrow or gen.num_classes
    elif cmd.labels:
        raise CommandError("labels= is for conditional models; this generator is unconditional.")
    x = generate(gen, z, y, cmd.batch_size)
    out = Path(cmd.out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    is_image = x.dim() == 4
    if cmd.format == SampleFormat.npy or out.suffix == ".npy":
        out = out if out.suffix == ".npy" else out / "samples.npy"
        out.parent.mkdir(parents=True, exist_ok=True)
        arr = to_uint8(x).permute(0, 2, 3, 1).numpy() if is_image else x.numpy().astype(np.float32)
        np.save(out, arr)  # images: uint8 (N, H, W, C), the layout FID tools read
        if y is not None:
            np.save(out.with_name(out.stem + "_labels.npy"), y.numpy())
    elif out.suffix.lower() == ".png":
        if is_image:
            image = image_grid(x, nrow or max(1, round(len(x) ** 0.5)))
        else:
            from gan_cli.data import mixture_modes

            name = gen.data.name.value
            image = scatter_image(x, mixture_modes(name) if name in ("ring8", "grid25") else None)
        save_image(image, out)
    else:
        if not is_image:
            raise CommandError("2-D samples go to a .png scatter or a .npy file, not a folder.")
        out.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(x):
            save_image(img.add(1).div(2).clamp(0, 1), out / f"{i:06d}.png")
    weights = "EMA" if gen.ema else "raw"
    print(f"{len(x)} samples from {gen.source} (step {gen.step}, {weights} weights) -> {out}")
    return out


def sample_main() -> None:
    """Console script `gan-sample`."""
    _run_main(sample, SampleCommand, "gan-sample")


# ---- gan-eval -----------------------------------------------------------------------------------
def format_table(results: dict[str, Any]) -> str:
    lines = [f"{'metric':24s} value", f"{'-' * 24} {'-' * 20}"]
    for key, value in results.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"{key:24s} {shown}")
    return "\n".join(lines)


def evaluate_run(cmd: EvalCommand) -> dict[str, Any]:
    import torch

    from gan_cli.logs import json_safe
    from gan_cli.metrics import evaluate
    from gan_cli.sampling import load_generator

    metrics = [m.value for m in cmd.metrics] or [m.value for m in cmd.eval.metrics]
    if not metrics:
        raise CommandError(
            "name the metrics, e.g. metrics=[modes2d] or metrics=[fid,kid,pr] or metrics=[classifier]"
        )
    device = torch.device(cmd.device)
    gen = load_generator(cmd.run, device)
    if cmd.data_root:
        gen.data.root = cmd.data_root
    results = evaluate(gen, metrics, cmd.eval, device)
    record = {
        "step": gen.step,
        "checkpoint": str(gen.source),
        "ema": gen.ema,
        "n_samples": cmd.eval.n_samples,
        **results,
    }
    run = Path(cmd.run).expanduser()
    out = (
        Path(cmd.out).expanduser()
        if cmd.out
        else (run if run.is_dir() else gen.source.parent.parent) / "eval.json"
    )
    previous = json.loads(out.read_text()) if out.is_file() else {}
    out.write_text(json.dumps(json_safe({**previous, **record}), indent=2) + "\n")
    print(format_table(record))
    if "note" in results:
        print(f"note: {results['note']}")
    print(f"written to {out}")
    return record


def eval_main() -> None:
    """Console script `gan-eval`."""
    _run_main(evaluate_run, EvalCommand, "gan-eval")


# ---- gan-report ---------------------------------------------------------------------------------
def report_main() -> None:
    """Console script `gan-report <sweep folder> [more folders...]`."""
    from gan_cli.report import report

    def run(args: list[str]) -> None:
        if not args or args[0] in ("-h", "--help"):
            print("usage: gan-report <sweep folder or run folders...> [out=<folder>]")
            sys.exit(0 if args else 2)
        out = next((a.split("=", 1)[1] for a in args if a.startswith("out=")), None)
        report([Path(a) for a in args if not a.startswith("out=")], Path(out) if out else None)

    _run_main(run, None, "gan-report")
