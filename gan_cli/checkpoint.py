"""Training state <-> file: atomic saves, `weights_only` loads, and finding a run's checkpoints.

A checkpoint is a plain dict of tensors and Python primitives (see `Trainer.state_dict`), so it
loads with `torch.load(weights_only=True)`, which cannot execute code.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gan_cli.errors import UserError

FORMAT = "gan-cli-checkpoint"
GENERATOR_FORMAT = "gan-cli-generator"  # checkpoints/generator.pt: G's weights and configs only
FORMAT_VERSION = 1
STEP_FILE = re.compile(r"^step_(\d+)\.pt$")
# what each kind of file must hold, and of which type, to be used at all
REQUIRED: dict[str, dict[str, type | tuple[type, ...]]] = {
    FORMAT: {"step": int, "config": dict, "models": dict, "optim": dict, "noise": dict, "rng": dict},
    GENERATOR_FORMAT: {"step": int, "model": dict, "data": dict, "loss": str, "state_dict": dict},
}


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, unreadable, unsafe or foreign; the message names the file."""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_atomic(obj: Any, path: Path) -> None:
    """Write to a temp file in the same folder, flush + fsync, then rename over `path`.

    A reader (or a crash at any moment) sees either the old complete file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch.save reports a failed write as a RuntimeError
        raise CheckpointError(f"{path}: could not be written ({_write_failure(e, path.parent)}).") from e
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _write_failure(e: BaseException, folder: Path) -> str:
    """Why a write failed, in words: the OS's reason (torch.save only says its write failed), the
    free space left there, and a file-size limit (ulimit -f) where one is set."""
    import resource
    import shutil

    if isinstance(e, OSError) and e.strerror:
        reason = e.strerror
    else:
        reason = f"the write failed: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"
    try:
        free = shutil.disk_usage(folder).free
        reason += f"; {free / 2**20:,.0f} MiB free on that disk" + (" (full)" if free < 2**20 else "")
    except OSError:
        pass
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        reason += f"; this process may not write files larger than {limit / 2**10:,.0f} KiB (ulimit -f)"
    return reason


def cached(path: Path, compute: Callable[[], Any], valid: Callable[[Any], bool] = lambda _: True) -> Any:
    """The value stored at `path` (loaded weights_only) when it is there and `valid`, else
    `compute()`, stored atomically for next time. A damaged or stale cache is rebuilt, never
    trusted; a folder we cannot write to only costs the recomputation."""
    if path.is_file():
        try:
            value = torch.load(path, map_location="cpu", weights_only=True)
            if valid(value):
                return value
        except Exception:  # noqa: BLE001 - any unreadable cache file is rebuilt
            pass
    value = compute()
    try:
        save_atomic(value, path)
    except CheckpointError as e:
        print(f"note: could not cache {path} ({e}); it will be computed again next time.")
    return value


def link_atomic(src: Path, dst: Path) -> None:
    """Make `dst` an atomic alias of the finished file `src` (a hard link, else a copy)."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
        os.replace(tmp, dst)
    except OSError:
        tmp.unlink(missing_ok=True)
        save_atomic(torch.load(src, map_location="cpu", weights_only=True), dst)
    _fsync_dir(dst.parent)


def load_checkpoint(path: str | os.PathLike[str], formats: tuple[str, ...] = (FORMAT,)) -> dict[str, Any]:
    """Load and check a gan-cli file of one of `formats`; every failure is a CheckpointError
    naming the file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory.")
    if not path.is_file():
        raise CheckpointError(f"{path}: is not a file.")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path}: is not a readable checkpoint. It is not a complete PyTorch archive: the file is "
            "truncated (a copy or save cut short), corrupt, or something else (random bytes, a raw "
            "pickle). Nothing in it was executed. Use another checkpoint of the run, e.g. an older "
            "checkpoints/step_*.pt."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = [ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln or "Unsupported" in ln]
        raise CheckpointError(
            f"{path}: refused to load. The file holds Python objects other than tensors and plain "
            "data, which a gan-cli checkpoint never does; loading them could run code, so nothing in "
            f"it was executed. Only load checkpoints you trust. ({'; '.join(detail) or 'weights_only'})"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise CheckpointError(
            f"{path}: is not a readable checkpoint; it is truncated or corrupt "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'})."
        ) from e
    if not isinstance(obj, dict) or obj.get("format") not in formats:
        raise CheckpointError(
            f"{path}: is a PyTorch file but not a gan-cli checkpoint (no '{FORMAT}' marker)."
        )
    if obj.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: was written by a newer gan-cli (format {obj['format_version']}); "
            f"this one reads format {FORMAT_VERSION}. Upgrade gan-cli."
        )
    return obj


def require_contents(obj: dict[str, Any], path: Path) -> dict[str, Any]:
    """`obj` itself when it holds what its format needs (REQUIRED), else a CheckpointError naming
    what is missing."""
    missing = [k for k, kind in REQUIRED[obj["format"]].items() if not isinstance(obj.get(k), kind)]
    if missing:
        raise CheckpointError(
            f"{path}: carries the {obj['format']!r} marker but lacks {', '.join(missing)} (or holds "
            "something else there): it is damaged or was not written by gan-cli. Use another "
            "checkpoint of the run, e.g. an older checkpoints/step_*.pt."
        )
    return obj


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A whole training state (a checkpoint to resume), checked for everything resuming reads."""
    return require_contents(load_checkpoint(path), Path(path))


def nonfinite_tensors(state: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors of a (nested) state dict that hold NaN or inf."""
    bad = []
    for name, value in state.items():
        if isinstance(value, dict):
            bad += [f"{name}.{n}" for n in nonfinite_tensors(value)]
        elif torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all():
            bad.append(str(name))
    return bad


def step_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of `step_*.pt` files, oldest first."""
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := STEP_FILE.match(p.name))]
    return sorted(found)


def resolve_resume(target: str | os.PathLike[str]) -> tuple[Path, Path]:
    """A run directory or a checkpoint file -> (checkpoint file, run directory)."""
    path = Path(target).expanduser()
    if path.is_dir():
        ckpt_dir = path / "checkpoints"
        last = ckpt_dir / "last.pt"
        if last.is_file():
            return last, path
        steps = step_checkpoints(ckpt_dir)
        if steps:
            return steps[-1][1], path
        raise CheckpointError(f"{path}: a directory without checkpoints/last.pt or step_*.pt to resume.")
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory to resume from.")
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return path, run_dir


class CheckpointWriter:
    """Writes `checkpoints/step_XXXXXX.pt`, points `last.pt` at it, keeps the newest `keep`
    step files (0: only last.pt)."""

    def __init__(self, ckpt_dir: Path, keep: int) -> None:
        self.dir = ckpt_dir
        self.keep = keep
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        for stale in ckpt_dir.glob(".*.tmp"):  # left by a process killed mid-save
            stale.unlink(missing_ok=True)

    def last_good(self) -> str:
        """One true sentence on what this folder holds to go back to, for stop messages."""
        steps = step_checkpoints(self.dir)
        if steps:
            step, path = steps[-1]
            return f"The last good checkpoint, {path} (step {step}), is intact."
        if (self.dir / "last.pt").is_file():
            return f"The last good checkpoint, {self.dir / 'last.pt'}, is intact."
        return f"No checkpoint had been written yet ({self.dir} holds none): there is nothing to resume from."

    def save_as(self, state: dict[str, Any], name: str) -> Path:
        """A checkpoint under a fixed name (best.pt), outside the rotation."""
        path = self.dir / name
        save_atomic({"format": FORMAT, "format_version": FORMAT_VERSION, **state}, path)
        return path

    def save(self, state: dict[str, Any], step: int) -> Path:
        """Write step_XXXXXX.pt, point last.pt at it, rotate; a failed write (a full disk) is a
        CheckpointError that says what is intact."""
        path = self.dir / f"step_{step:06d}.pt"
        before = self.last_good()
        try:
            save_atomic({"format": FORMAT, "format_version": FORMAT_VERSION, **state}, path)
            link_atomic(path, self.dir / "last.pt")
        except CheckpointError as e:
            intact = before[0].lower() + before[1:]
            raise CheckpointError(f"{e} Nothing was lost: {intact} Free some space, then resume.") from e
        steps = step_checkpoints(self.dir)
        for _, old in steps[: -self.keep] if self.keep > 0 else steps:
            old.unlink(missing_ok=True)
        return path


def network_weights(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The networks' weights of a training checkpoint or an exported generator.pt, by the
    checkpoint's lower-case names (g, d, g_ema; g_ab, g_ba, d_a, d_b). An exported GAN generator
    holds the EMA weights where the run had them: they start both G and its EMA."""
    if state.get("format") == GENERATOR_FORMAT:
        weights = state["state_dict"]
        if weights and all(isinstance(v, dict) for v in weights.values()):  # a translator's g_ab, g_ba
            return dict(weights)
        return {"g": weights, "g_ema": weights}
    return {k: v for k, v in state.get("models", {}).items() if v is not None}


def load_init_weights(source: str) -> tuple[dict[str, dict[str, Any]], Path]:
    """init_from=: a run directory (its checkpoints/last.pt, which has D too, else generator.pt), a
    training checkpoint or a generator.pt -> (network weights by name, the file). Raises
    CheckpointError for a missing, corrupt, foreign or diverged file."""
    path = Path(source).expanduser()
    if path.is_dir():
        found = [
            path / "checkpoints" / n
            for n in ("last.pt", "generator.pt")
            if (path / "checkpoints" / n).is_file()
        ]
        if not found:
            raise CheckpointError(
                f"{path}: no checkpoints/last.pt or checkpoints/generator.pt in this folder."
            )
        path = found[0]
    state = require_contents(load_checkpoint(path, (FORMAT, GENERATOR_FORMAT)), path)
    weights = network_weights(state)
    bad = nonfinite_tensors(weights)
    if bad:
        raise CheckpointError(
            f"{path}: {len(bad)} tensors of its weights are NaN or inf ({', '.join(bad[:3])}); "
            "start from an earlier checkpoint of that run (checkpoints/step_*.pt)."
        )
    return weights, path
