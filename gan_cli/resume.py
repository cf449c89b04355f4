"""Resuming: a run's own config with the allowed overrides, and `resume=auto`'s search for an
earlier run of the same command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gan_cli.errors import UserError
from gan_cli.schema import GROUPS, Config


class ResumeError(UserError, RuntimeError):
    """A resume cannot go ahead; the message says why."""


# keys a resumed run may not change, and why: model.* and data.* fix the networks' shapes and the
# data they learn; the optimizer's kind fixes the shape of its saved state; the seed drew the streams
# the checkpoint continues. Everything else takes effect in the resumed run.
RESUME_FIXED = {
    "model": "the networks' shapes",
    "data": "the data the run learns",
    "optim.name": "the optimizer state saved in the checkpoint",
    "trainer.seed": "the random streams the checkpoint continues",
}
# data keys that change how the same items are found or served, not which items
RESUME_FREE = (
    "data.root",
    "data.download",
    "data.verify",
    "data.num_workers",
    "data.preload_max_mb",
    "data.cache",
)


def _fixed_by(key: str) -> str | None:
    """Why `key` cannot change on resume, or None when it may (also data.a.root and the like)."""
    if key.startswith("data.") and f"data.{key.rsplit('.', 1)[-1]}" in RESUME_FREE:
        return None
    for prefix, reason in RESUME_FIXED.items():
        if key == prefix or key.startswith(prefix + "."):
            return reason
    return None


def _parsed_task_overrides(overrides: list[str] | None = None) -> list[Any]:
    """The command line's overrides, parsed (None: those of the running Hydra job)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if overrides is None:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    return OverridesParser.create().parse_overrides(overrides)


NORM_KEYS = ("model.g_norm", "model.d_norm")


def _norms(cfg: DictConfig) -> dict[str, str]:
    """model.g_norm and model.d_norm as the networks are built (`auto` resolved for the loss)."""
    from gan_cli.models import resolve_norms

    model = OmegaConf.to_object(cfg.model)
    return dict(zip(NORM_KEYS, resolve_norms(model, cfg.loss.name), strict=True))  # type: ignore[arg-type]


def _norm_mismatch(key: str, saved: str, now: str, asked: Any, loss: str) -> str:
    net = "discriminator" if key == "model.d_norm" else "generator"
    if asked == "auto":
        return (
            f"{key}=auto means {now} norm with loss={loss}, but the checkpoint's {net} was built with "
            f"{saved} norm (it fixes the networks' shapes); set {key}={saved} explicitly (the saved "
            "networks' norm) to continue with this loss"
        )
    return f"{key}: checkpoint has {saved!r}, this command asks for {now!r} (it fixes the networks' shapes)"


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def resume_config(
    composed: DictConfig, saved: dict[str, Any], source: Path, overrides: list[str] | None = None
) -> DictConfig:
    """The run's own config, with this command line's `overrides` (None: the running Hydra job's)
    applied where they are allowed.

    Model and data overrides that differ from the checkpoint are refused, all listed at once. The
    norms compare as built: `model.d_norm=auto` that a new loss (wgan_gp) would turn from batch into
    layer norm is refused, and an explicit `model.d_norm=batch` equal to the saved networks' is
    allowed."""
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(Config), saved)
    except OmegaConfBaseException as e:
        raise ResumeError(
            f"{source}: the config recorded in this checkpoint does not fit gan-cli's schema "
            f"({str(e).splitlines()[0]}); it is damaged or from an incompatible version."
        ) from e
    # a key the checkpoint lacks was added after it was written: its default is what that run did
    before = _flatten(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    norms_before = _norms(cfg)
    for o in _parsed_task_overrides(overrides):
        key = o.key_or_group
        if key == "resume" or key.startswith("hydra"):
            continue
        if key in ("experiment", "hparams_search"):
            raise ResumeError(f"resume: {key}= cannot be changed when resuming {source}.")
        if key in GROUPS:  # a group choice: take that whole section as composed now
            cfg[key] = composed[key]
        else:
            OmegaConf.update(cfg, key, OmegaConf.select(composed, key), merge=False)
    now = _flatten(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    norms_now = _norms(cfg)
    mismatches = [
        f"{k}: checkpoint has {before.get(k)!r}, this command asks for {now.get(k)!r} (it fixes {reason})"
        for k in sorted(set(now) | set(before))
        if (reason := _fixed_by(k)) is not None and k not in NORM_KEYS and now.get(k) != before.get(k)
    ]
    mismatches += [
        _norm_mismatch(k, norms_before[k], norms_now[k], now.get(k), str(now.get("loss.name")))
        for k in NORM_KEYS
        if norms_now[k] != norms_before[k]
    ]
    if mismatches:
        raise ResumeError(
            f"resume: refusing to continue {source} with settings a checkpoint cannot carry over:\n  - "
            + "\n  - ".join(mismatches)
            + "\nDrop these overrides (run length, logging, sampling, loss settings, learning rates, "
            "betas and schedules may change and take effect), or start a new run."
        )
    cfg.resume = str(source)
    return cfg


CONTINUED_IN = "CONTINUED_IN.txt"  # in a job folder whose work went on in an earlier folder


def _own_overrides(overrides: list[str]) -> set[str]:
    return {o for o in overrides if not o.startswith(("resume=", "hydra.", "hydra/"))}


def find_previous_run(output_dir: Path, overrides: list[str], multirun: bool) -> Path | None:
    """The newest earlier run, or sweep job, of the same command line (same recorded overrides)
    that has a checkpoint: what `resume=auto` continues."""
    import yaml

    mine = _own_overrides(overrides)
    root = output_dir.parent.parent if multirun else output_dir.parent
    pattern = "*/*/.hydra/overrides.yaml" if multirun else "*/.hydra/overrides.yaml"
    found = []
    for record in root.glob(pattern):
        run = record.parent.parent
        if run.resolve() == output_dir.resolve() or (run / CONTINUED_IN).exists():
            continue
        last = run / "checkpoints" / "last.pt"
        if last.is_file() and _own_overrides(yaml.safe_load(record.read_text()) or []) == mine:
            found.append((last.stat().st_mtime, run))
    return max(found)[1] if found else None


def finished_metrics(run: Path) -> dict[str, float] | None:
    """The last logged metrics of a run that reached its trainer.steps, else None."""
    import json

    from gan_cli.checkpoint import load_state

    state = load_state(run / "checkpoints" / "last.pt")
    if state["step"] < state["config"]["trainer"]["steps"]:
        return None
    lines = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").is_file() else []
    last = json.loads(lines[-1]) if lines else {}
    return {k: v for k, v in last.items() if isinstance(v, (int, float))}
