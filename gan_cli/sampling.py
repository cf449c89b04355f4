"""Trained generators: load one from a run, draw latent codes (truncated, interpolated), sample."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import Tensor, nn

from gan_cli.checkpoint import GENERATOR_FORMAT, CheckpointError, nonfinite_tensors
from gan_cli.models import build_models, is_conditional
from gan_cli.schema import DataConfig, LossName, ModelConfig


@dataclass
class LoadedGenerator:
    g: nn.Module  # in eval mode, on its device
    model: ModelConfig
    data: DataConfig
    step: int
    ema: bool
    source: Path

    @property
    def conditional(self) -> bool:
        return is_conditional(self.model)

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def device(self) -> torch.device:
        return next(self.g.parameters()).device


def _typed(schema: type, values: dict[str, Any]) -> Any:
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))


def generator_file(run: str | Path) -> Path:
    """A run directory -> its exported generator (else its last checkpoint); a file -> itself."""
    path = Path(run).expanduser()
    if path.is_dir():
        for name in ("generator.pt", "last.pt"):
            if (path / "checkpoints" / name).is_file():
                return path / "checkpoints" / name
        raise CheckpointError(f"{path}: no checkpoints/generator.pt or checkpoints/last.pt in this folder.")
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory.")
    return path


def generator_from_state(state: dict[str, Any], source: Path, device: torch.device) -> LoadedGenerator:
    """Rebuild G from an exported generator or a full training checkpoint (EMA weights first)."""
    if state.get("format") == GENERATOR_FORMAT:
        model, data, loss = state["model"], state["data"], state["loss"]
        weights, step, ema = state["state_dict"], state["step"], state["ema"]
    else:  # a full training checkpoint
        cfg = state["config"]
        model, data, loss = cfg["model"], cfg["data"], cfg["loss"]["name"]
        ema = state["models"].get("g_ema") is not None
        weights, step = state["models"]["g_ema"] if ema else state["models"]["g"], state["step"]
    bad = nonfinite_tensors(weights)
    if bad:
        raise CheckpointError(
            f"{source}: {len(bad)} of {len(weights)} tensors of the generator's weights are NaN or inf "
            f"({', '.join(bad[:3])}): the run diverged before this file was written, and every sample "
            "would be NaN. Use an earlier checkpoint of the run (checkpoints/step_*.pt)."
        )
    try:
        model_cfg, data_cfg = _typed(ModelConfig, model), _typed(DataConfig, data)
        g, _ = build_models(model_cfg, data_cfg, LossName(loss))
    except (OmegaConfBaseException, ValueError) as e:
        raise CheckpointError(
            f"{source}: its recorded config cannot rebuild a generator ({str(e).splitlines()[0]})."
        ) from e
    try:
        g.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(
            f"{source}: its weights do not fit its own config ({str(e).splitlines()[0]})."
        ) from e
    return LoadedGenerator(g.to(device).eval(), model_cfg, data_cfg, int(step), bool(ema), source)


def load_generator(run: str | Path, device: torch.device) -> LoadedGenerator:
    from gan_cli.checkpoint import FORMAT, GENERATOR_FORMAT, load_checkpoint, require_contents

    path = generator_file(run)
    state = require_contents(load_checkpoint(path, (FORMAT, GENERATOR_FORMAT)), path)
    return generator_from_state(state, path, device)


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between rows of a and b at fractions t (the usual walk for
    Gaussian latents, which keeps codes at a typical norm)."""
    a_n, b_n = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


@torch.no_grad()
def generate(gen: LoadedGenerator, z: Tensor, y: Tensor | None, batch_size: int = 256) -> Tensor:
    """Samples in [-1, 1] (float, on the CPU), generated in batches.

    Raises CheckpointError when any sample is NaN or inf (finite weights can still diverge)."""
    out = []
    for i in range(0, len(z), batch_size):
        zb = z[i : i + batch_size].to(gen.device)
        yb = y[i : i + batch_size].to(gen.device) if y is not None else None
        out.append(gen.g(zb, yb).float().cpu())
    x = torch.cat(out)
    bad = int((~torch.isfinite(x.flatten(1))).any(1).sum())
    if bad:
        raise CheckpointError(
            f"{gen.source}: the generator's output is NaN or inf for {bad} of {len(x)} samples: it "
            "diverged. Use an earlier checkpoint of the run (checkpoints/step_*.pt)."
        )
    return x


def to_uint8(x: Tensor) -> Tensor:
    """[-1, 1] images -> uint8 [0, 255] (same rounding as torchvision's save_image)."""
    return x.add(1).mul(127.5).add(0.5).clamp(0, 255).to(torch.uint8)
