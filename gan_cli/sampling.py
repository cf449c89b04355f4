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
from gan_cli.models import build_models, build_translators, is_conditional
from gan_cli.schema import DataConfig, DomainConfig, LossName, ModelConfig, ModelName


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


@dataclass
class LoadedTranslator:
    """A trained CycleGAN's two generators: g_ab maps domain A to B, g_ba B to A."""

    g_ab: nn.Module  # in eval mode, on its device
    g_ba: nn.Module
    model: ModelConfig
    data: DataConfig  # data.a and data.b: how each domain's images were read
    step: int
    source: Path

    @property
    def device(self) -> torch.device:
        return next(self.g_ab.parameters()).device

    def domain(self, direction: str) -> tuple[DomainConfig, DomainConfig]:
        """(source, target) domain configs of "a2b" or "b2a"."""
        assert self.data.a is not None and self.data.b is not None
        return (self.data.a, self.data.b) if direction == "a2b" else (self.data.b, self.data.a)

    @torch.no_grad()
    def translate(self, x: Tensor, direction: str, batch_size: int = 256) -> Tensor:
        """[-1, 1] images of the source domain -> the target domain's, float on the CPU, in
        batches. Raises CheckpointError when any output is NaN or inf."""
        net = self.g_ab if direction == "a2b" else self.g_ba
        net.eval()
        out = [net(x[i : i + batch_size].to(self.device)).float().cpu() for i in range(0, len(x), batch_size)]
        y = torch.cat(out) if out else x.new_zeros((0,))
        bad = int((~torch.isfinite(y.flatten(1))).any(1).sum()) if len(y) else 0
        if bad:
            raise CheckpointError(
                f"{self.source}: the {direction} generator's output is NaN or inf for {bad} images."
            )
        return y


def translator_from_state(state: dict[str, Any], source: Path, device: torch.device) -> LoadedTranslator:
    """Rebuild a CycleGAN's generators from its generator.pt or a full training checkpoint."""
    if state.get("format") == GENERATOR_FORMAT:
        model, data, loss, step = state["model"], state["data"], state["loss"], state["step"]
        weights = state["state_dict"]
    else:
        cfg = state["config"]
        model, data, loss, step = cfg["model"], cfg["data"], cfg["loss"]["name"], state["step"]
        weights = {"g_ab": state["models"]["g_ab"], "g_ba": state["models"]["g_ba"]}
    bad = nonfinite_tensors(weights)
    if bad:
        raise CheckpointError(
            f"{source}: {len(bad)} tensors of the generators' weights are NaN or inf ({', '.join(bad[:3])}): "
            "the run diverged before this file was written. Use an earlier checkpoint "
            "(checkpoints/step_*.pt)."
        )
    try:
        model_cfg, data_cfg = _typed(ModelConfig, model), _typed(DataConfig, data)
        g_ab, g_ba, _, _ = build_translators(model_cfg, data_cfg, LossName(loss))
        g_ab.load_state_dict(weights["g_ab"])
        g_ba.load_state_dict(weights["g_ba"])
    except (OmegaConfBaseException, ValueError, RuntimeError, KeyError) as e:
        raise CheckpointError(
            f"{source}: its recorded config and weights do not rebuild two generators "
            f"({str(e).splitlines()[0]})."
        ) from e
    return LoadedTranslator(
        g_ab.to(device).eval(), g_ba.to(device).eval(), model_cfg, data_cfg, int(step), source
    )


def is_translation(state: dict[str, Any]) -> bool:
    """Whether a checkpoint or generator.pt holds a translation model (CycleGAN)."""
    model = state.get("model") or state.get("config", {}).get("model", {})
    return state.get("game") == "cyclegan" or model.get("name") == "cyclegan"


def load_run(run: str | Path, device: torch.device) -> LoadedGenerator | LoadedTranslator:
    """A run's generator (or a translation run's two) from its generator.pt or a checkpoint."""
    from gan_cli.checkpoint import FORMAT, GENERATOR_FORMAT, load_checkpoint, require_contents

    path = generator_file(run)
    state = require_contents(load_checkpoint(path, (FORMAT, GENERATOR_FORMAT)), path)
    if is_translation(state):
        return translator_from_state(state, path, device)
    return generator_from_state(state, path, device)


def load_generator(run: str | Path, device: torch.device) -> LoadedGenerator:
    """A run's generator; a CheckpointError for a translation run (see load_run)."""
    loaded = load_run(run, device)
    if isinstance(loaded, LoadedTranslator):
        raise CheckpointError(
            f"{loaded.source}: a CycleGAN run translates images instead of sampling them: "
            "give it input=PATH direction=a2b|b2a (gan-sample)."
        )
    return loaded


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between rows of a and b at fractions t (the usual walk for
    Gaussian latents, which keeps codes at a typical norm)."""
    a_n, b_n = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


def is_style_based(gen: LoadedGenerator) -> bool:
    """Whether G maps z to w and synthesises from ws (model=stylegan2): truncation and walks in w."""
    return gen.model.name == ModelName.stylegan2


@torch.no_grad()
def generate(
    gen: LoadedGenerator,
    z: Tensor,
    y: Tensor | None,
    batch_size: int = 256,
    psi: float = 1.0,
    noise_seed: int | None = None,
) -> Tensor:
    """Samples in [-1, 1] (float, on the CPU), generated in batches; `psi` < 1 is the truncation
    trick in w space of a style-based G (w_avg + psi (w - w_avg); Karras et al. 2019). A
    style-based G uses its constant noise inputs, or with `noise_seed` fresh per-layer noise drawn
    from that seed (what its metrics use, as the reference's).

    Raises CheckpointError when any sample is NaN or inf (finite weights can still diverge)."""
    out = []
    extra: dict[str, Any] = {}
    if is_style_based(gen):
        extra["truncation_psi"] = psi
        if noise_seed is not None:
            extra["noise_mode"] = "random"
            extra["generator"] = torch.Generator(gen.device).manual_seed(noise_seed)
    for i in range(0, len(z), batch_size):
        zb = z[i : i + batch_size].to(gen.device)
        yb = y[i : i + batch_size].to(gen.device) if y is not None else None
        out.append(gen.g(zb, yb, **extra).float().cpu())
    return _finite(gen, torch.cat(out))


@torch.no_grad()
def mapped(gen: LoadedGenerator, z: Tensor, y: Tensor | None, psi: float = 1.0) -> Tensor:
    """A style-based G's ws (N, num_ws, w_dim) of codes z (N, z_dim), truncated by `psi`."""
    yb = y.to(gen.device) if y is not None else None
    return gen.g.mapping(z.to(gen.device), yb, truncation_psi=psi).float()


@torch.no_grad()
def synthesise(gen: LoadedGenerator, ws: Tensor, batch_size: int = 256) -> Tensor:
    """A style-based G's images (N, C, S, S) in [-1, 1] of ws (N, num_ws, w_dim), with its constant
    noise inputs (the same ws give the same image). Raises CheckpointError on NaN or inf."""
    out = [
        gen.g.synthesis(ws[i : i + batch_size].to(gen.device), "const").float().cpu()
        for i in range(0, len(ws), batch_size)
    ]
    return _finite(gen, torch.cat(out))


def style_mixing_grid(
    gen: LoadedGenerator, rows: Tensor, cols: Tensor, cutoff: int, psi: float = 1.0
) -> Tensor:
    """The style-mixing figure of Karras et al. 2019 (Fig. 3): a (R+1) x (C+1) grid as (N, C, S, S)
    images, row by row. The first row holds the column codes' own images (after a blank corner),
    the first column the row codes'; cell (i, j) takes the coarse styles (ws before layer
    `cutoff`) of row code i and the fine ones (from `cutoff` on) of column code j. `rows` (R, z_dim)
    and `cols` (C, z_dim) are unconditional codes, truncated in w by `psi`."""
    w_rows, w_cols = mapped(gen, rows, None, psi), mapped(gen, cols, None, psi)
    mixed = w_rows[:, None].repeat(1, len(cols), 1, 1)
    mixed[:, :, cutoff:] = w_cols[None, :, cutoff:]
    row_img, col_img = synthesise(gen, w_rows), synthesise(gen, w_cols)
    cells = synthesise(gen, mixed.flatten(0, 1)).view(len(rows), len(cols), *row_img.shape[1:])
    blank = torch.full_like(row_img[:1], -1.0)
    grid = [torch.cat([blank, col_img])]
    grid += [torch.cat([row_img[i : i + 1], cells[i]]) for i in range(len(rows))]
    return torch.cat(grid)


def _finite(gen: LoadedGenerator, x: Tensor) -> Tensor:
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
