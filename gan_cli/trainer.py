"""The training loop: steps, log windows, checkpoints, signals, evaluation, rollback and torchrun,
around a game (games/) whose networks, losses and state it does not know.

The loop does no I/O of its own beyond calling `RunLogger` and `CheckpointWriter`.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gan_cli import __version__, distributed
from gan_cli.checkpoint import CheckpointError, CheckpointWriter, load_checkpoint, nonfinite_tensors
from gan_cli.data.common import progress_bars
from gan_cli.distributed import DistInfo
from gan_cli.errors import Interrupted
from gan_cli.games import Game, Setup, game_class
from gan_cli.games.gan import config_dict
from gan_cli.health import HealthMonitor
from gan_cli.logs import RunLogger
from gan_cli.optim import NonFiniteError, Updater
from gan_cli.schema import Config, ConfigError, Device, OnNonFinite, Precision

__all__ = [
    "Interrupted",
    "NonFiniteError",
    "RolledBack",
    "Trainer",
    "cpu_has_native_bf16",
    "precision_note",
    "resolve_device",
    "resolve_precision",
]


class RolledBack(Exception):  # noqa: N818 - control flow, not an error
    """The run went back to its last checkpoint (trainer.on_nonfinite=rollback); the loop goes on."""


def resolve_device(name: Device) -> torch.device:
    if name == Device.auto:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == Device.cuda and not torch.cuda.is_available():
        raise ConfigError("trainer.device=cuda, but no CUDA GPU is available; use trainer.device=cpu or auto")
    if name == Device.mps and not torch.backends.mps.is_available():
        raise ConfigError("trainer.device=mps, but MPS is not available; use trainer.device=cpu or auto")
    return torch.device(name.value)


def cpu_has_native_bf16() -> bool:
    """Whether this x86 CPU has bf16 arithmetic instructions (AVX512-BF16, as in AMD Zen 4+ and
    Intel Cooper Lake+, or AMX-BF16, Intel Sapphire Rapids+), where oneDNN's bf16 convolutions and
    matmuls run faster than fp32 (1.4x for the quick start's DCGAN on an AMD EPYC) instead of
    through conversions. Other CPUs (Arm included: not measured here) count as without."""
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    if get_capabilities is None:  # torch < 2.11: the private probe those versions have
        return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
    caps = get_capabilities()
    return bool(caps.get("avx512_bf16")) or bool(caps.get("amx_bf16"))


def resolve_precision(p: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of trainer.precision on `device`, or None for plain fp32. `auto`: bf16 on
    a CUDA GPU that supports it; `bf16_native`: also on a CPU with bf16 instructions
    (cpu_has_native_bf16); on MPS both are fp32."""
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if p == Precision.auto:
        return torch.bfloat16 if cuda_bf16 else None
    if p == Precision.bf16_native:
        cpu_bf16 = device.type == "cpu" and cpu_has_native_bf16()
        return torch.bfloat16 if cuda_bf16 or cpu_bf16 else None
    return {Precision.fp32: None, Precision.bf16: torch.bfloat16, Precision.fp16: torch.float16}[p]


def precision_note(p: Precision, amp_dtype: torch.dtype | None, device: torch.device) -> str | None:
    """The start-up line that says what a hardware-dependent trainer.precision (auto, bf16_native)
    resolved to on this machine, e.g. `Precision: bf16 autocast (trainer.precision=bf16_native on
    cpu)`; None for a fixed choice."""
    if p not in (Precision.auto, Precision.bf16_native):
        return None
    dtype = "bf16 autocast" if amp_dtype == torch.bfloat16 else "fp32"
    return f"Precision: {dtype} (trainer.precision={p.value} on {device})"


class Trainer:
    """Runs `cfg`'s game for trainer.steps steps, writing logs, grids and checkpoints."""

    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        choices: dict[str, str] | None = None,
        dist_info: DistInfo | None = None,
    ) -> None:
        self.cfg = cfg
        t = cfg.trainer
        self.run_dir = run_dir
        self.choices = choices or {}
        self.dist = dist_info or DistInfo()
        self.device = resolve_device(t.device)
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
        amp_dtype = resolve_precision(t.precision, self.device)
        random.seed(t.seed)
        np.random.seed(t.seed)
        torch.manual_seed(t.seed)
        self.updater = Updater(cfg, self.dist, self.device)
        # rank 0 draws the streams of a single process; other ranks draw their own data and noise
        stream_seed = t.seed + 104_729 * self.dist.rank
        with progress_bars(t.progress):  # reading the data sets shows bars as training does
            self.game: Game = game_class(cfg)(
                Setup(cfg, self.device, self.dist, self.updater, amp_dtype, stream_seed)
            )
        game = self.game
        self.health = HealthMonitor(
            t.health,
            game.probabilistic,
            self.device,
            watch_grads=amp_dtype != torch.float16,
            fields=game.fields,
            discriminators=game.discriminators,
        )
        # on_nonfinite=skip: the step's starting buffers (BatchNorm statistics), restored when it skips;
        # nets with instance or no normalisation may have none (train_step then copies nothing)
        self._buffers = [b for net in game.modules().values() for b in net.buffers()]
        self._backup = [b.clone() for b in self._buffers] if self.updater.skip else []
        self.step = 0
        self.rollbacks = 0
        self._signal: int | None = None
        self.last_summary: dict[str, float] = {}
        self.elapsed = 0.0  # wall-clock seconds of training, summed over resumes
        self.best: float | None = None  # best value of eval.best so far
        self._pending_eval: dict[str, Any] = {}
        self._active_warnings: set[str] = set()  # warnings of the previous window, printed once

    @property
    def step(self) -> int:
        """G steps done (the game sees the same count)."""
        return self._step

    @step.setter
    def step(self, value: int) -> None:
        self._step = value
        self.game.step = value

    # ---- the loop -------------------------------------------------------------------------
    def fit(self, logger: RunLogger, writer: CheckpointWriter) -> dict[str, float]:
        """Train until `trainer.steps`; returns the last window's metrics."""
        t = self.cfg.trainer
        every = self.cfg.eval.every
        self.updater.last_good = writer.last_good
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        started = time.perf_counter() - self.elapsed
        try:
            while self.step < t.steps:
                try:
                    self.train_step()
                    logger.advance()
                    self.elapsed = time.perf_counter() - started
                    done = self.step == t.steps
                    if every and (self.step % every == 0 or done) and self.dist.main:
                        self._evaluate(logger, writer)
                    if self.step % t.log_every == 0 or done:
                        self._log(logger, writer)
                    if (self.step % t.sample_every == 0 or done) and self.dist.main:
                        logger.image(self.step, self.game.sample_image())
                    if self.step % t.ckpt_every == 0 or done:
                        self._save(writer, logger)
                    stop = self._signal is not None
                    if self.dist.enabled:  # every rank stops at the same step
                        stop = distributed.any_rank(stop)
                    if stop:
                        path = self._save(writer, logger)
                        raise Interrupted(self._signal or signal.SIGTERM, path, writer.last_good())
                except RolledBack:
                    continue
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
        return self.last_summary

    def train_step(self) -> None:
        """One step of the game, its health values added to the window."""
        guard = self.updater.skip and bool(self._buffers)
        if guard:  # a skipped update must not leave NaN in BatchNorm statistics either
            torch._foreach_copy_(self._backup, self._buffers)
            skipped = self.updater.total
        values = self.game.train_step()
        if guard and self.updater.total != skipped:
            torch._foreach_copy_(self._buffers, self._backup)
        self.health.add(self.step, values)
        self.step += 1

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: leave now; saves are atomic
        self._signal = signum

    def _log(self, logger: RunLogger, writer: CheckpointWriter) -> None:
        """Write one window of health metrics (or stop, or roll back, on a NaN or inf)."""
        if self.dist.enabled:  # the window's means over all ranks
            self.health.acc = distributed.all_reduce_mean(self.health.acc, self.dist.world)
        summary = self.health.summarise(self.step, self.game.window_metrics())
        if summary.first_nonfinite_step >= 0 and self.cfg.trainer.on_nonfinite != OnNonFinite.skip:
            names = " and ".join(summary.nonfinite_losses)
            self._diverged(
                logger, writer, f"{names} became NaN or inf at step {summary.first_nonfinite_step + 1}"
            )
        record = {**summary.metrics, **self.game.log_values(), "elapsed": round(self.elapsed, 3)}
        logger.metrics(self.step, {**record, **self._pending_eval}, summary.warnings)
        self.last_summary = {**summary.metrics, **self._pending_eval}
        self._pending_eval = {}
        for name in summary.warnings:
            if name not in self._active_warnings:
                logger.warn(self.step, name, self.health.explain(name))
        self._active_warnings = set(summary.warnings)

    def _evaluate(self, logger: RunLogger, writer: CheckpointWriter) -> None:
        """Run eval.metrics on the game; keep checkpoints/best.pt by eval.best."""
        if self.health.nonfinite()[0] >= 0 and self.cfg.trainer.on_nonfinite != OnNonFinite.skip:
            return  # diverged: the log that follows stops or rolls back
        # evaluation never moves the training streams, and shows bars only as training does
        with torch.random.fork_rng(devices=[]), progress_bars(self.cfg.trainer.progress):
            results = self.game.evaluate([m.value for m in self.cfg.eval.metrics], self.run_dir)
        numbers = {f"eval/{k}": v for k, v in results.items() if isinstance(v, (int, float))}
        self._pending_eval = {"eval/step": self.step, **numbers}
        logger.message(
            f"[step {self.step}] eval: " + ", ".join(f"{k[5:]}={v:.4g}" for k, v in numbers.items())
        )
        key = self.cfg.eval.best
        if key and isinstance(results.get(key), (int, float)):
            value = float(results[key])
            better = self.best is None or (
                value > self.best if self.cfg.eval.best_mode.value == "max" else value < self.best
            )
            if better and self.nonfinite_state() is None:
                self.best = value
                writer.save_as(self.state_dict(gather=False), "best.pt")
                logger.message(f"[step {self.step}] new best {key}={value:.4g}: checkpoints/best.pt")

    # ---- divergence -----------------------------------------------------------------------
    def _diverged(self, logger: RunLogger, writer: CheckpointWriter, what: str) -> None:
        """A NaN or inf in the losses, gradients, weights or samples: roll back (raising RolledBack)
        under trainer.on_nonfinite=rollback, else stop with NonFiniteError. Checkpoints stay as
        they were."""
        mode = self.cfg.trainer.on_nonfinite
        if mode == OnNonFinite.rollback:
            self._rollback(logger, writer, what)
        advice = (
            "Lower the learning rates or try trainer.precision=fp32."
            if mode == OnNonFinite.skip
            else "Lower the learning rates, try trainer.precision=fp32, or set "
            "trainer.on_nonfinite=rollback|skip."
        )
        raise NonFiniteError(f"{what} (trainer.on_nonfinite={mode.value}). {writer.last_good()} {advice}")

    def _rollback(self, logger: RunLogger, writer: CheckpointWriter, what: str) -> None:
        last = writer.dir / "last.pt"
        if self.rollbacks >= 3 or not last.is_file():
            why = "3 rollbacks already" if self.rollbacks >= 3 else "no checkpoint was written yet"
            raise NonFiniteError(f"{what}; cannot roll back ({why}). {writer.last_good()}")
        rollbacks = self.rollbacks + 1
        self.load_state_dict(load_checkpoint(last), last)
        self.rollbacks = rollbacks
        self.game.apply_optim_config(self.rollbacks)  # the learning rates scaled once more
        factor = self.cfg.trainer.rollback_lr_factor
        logger.rewind(self.step)
        logger.warn(
            self.step,
            "NON_FINITE",
            f"{what}: rolled back to step {self.step} and scaled the learning rates by {factor}.",
        )
        raise RolledBack

    @torch.no_grad()
    def nonfinite_state(self) -> str | None:
        """What in the training state is NaN or inf (weights, buffers, optimizer moments, or the
        generators' samples of the fixed inputs), or None when all of it is finite. Read at every
        checkpoint, so that no diverged state is ever saved."""
        named: list[tuple[str, Tensor]] = []
        for prefix, net in self.game.modules().items():
            named += [(f"{prefix}.{n}", t) for n, t in [*net.named_parameters(), *net.named_buffers()]]
        for i, opt in enumerate(self.game.optimizers()):
            named += [
                (f"optimizer {i}", t) for st in opt.state.values() for t in st.values() if torch.is_tensor(t)
            ]
        named = [(n, t) for n, t in named if t.is_floating_point()]
        # one fused max-|x| per tensor: NaN and inf survive it, and it is one kernel for all of them
        peaks = torch._foreach_norm([t.detach() for _, t in named], float("inf")) if named else []
        finite = torch.isfinite(torch.stack([p.float() for p in peaks])).tolist() if named else []
        bad = [n for (n, _), ok in zip(named, finite, strict=True) if not ok]
        if bad:
            shown = ", ".join(dict.fromkeys(bad[:5]))
            return f"{len(bad)} of {len(named)} tensors of the training state are NaN or inf ({shown})"
        if not self.game.samples_finite():
            return "the generator's samples of the fixed inputs are NaN or inf"
        return None

    # ---- state ----------------------------------------------------------------------------
    def _save(self, writer: CheckpointWriter, logger: RunLogger) -> Path | None:
        """Checkpoint the state (and export the generators); None, with nothing written, when it
        is not finite."""
        if self.health.nonfinite()[0] >= 0 and self.cfg.trainer.on_nonfinite != OnNonFinite.skip:
            return None  # the next log window stops or rolls back; a diverged state is never saved
        problem = self.nonfinite_state()
        if self.dist.enabled and distributed.any_rank(problem is not None):  # every rank decides alike
            problem = problem or "the training state of another rank is NaN or inf"
        if problem is not None:
            self._diverged(logger, writer, f"At step {self.step}, {problem}")
        state = self.state_dict()  # a collective call under torchrun: every rank comes here
        if not self.dist.main:
            return writer.dir / f"step_{self.step:06d}.pt"
        path = writer.save(state, self.step)
        self.game.export(writer.dir / "generator.pt")
        return path

    def state_dict(self, gather: bool = True) -> dict[str, Any]:
        """The whole training state: the loop's counters and RNGs, and the game's part; with
        `gather` (a collective call under torchrun) every rank's data and noise streams, else
        only this rank's."""
        game = self.game.state_dict()
        mine = self.game.streams()
        return {
            "version": __version__,
            "game": self.cfg.model.name.value,
            "step": self.step,
            "config": config_dict(self.cfg),
            "choices": dict(self.choices),
            **game,
            # every rank's data and noise streams, so a run resumes on the same number of ranks
            # exactly; rank 0's are also the game's top-level ones a single process continues with
            "ranks": distributed.gather(mine, self.dist.world) if gather and self.dist.enabled else [mine],
            "rng": {
                "python": random.getstate(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                **game.get("rng", {}),
            },
            "health": self.health.state_dict(),
            "rollbacks": self.rollbacks,
            "elapsed": self.elapsed,
            "best": self.best,
            "best_key": self.cfg.eval.best,
        }

    def load_state_dict(self, state: dict[str, Any], source: Path) -> None:
        bad = nonfinite_tensors(state["models"]) + nonfinite_tensors({"optim": state["optim"]})
        if bad:
            raise CheckpointError(
                f"{source}: {len(bad)} tensors of this training state are NaN or inf "
                f"({', '.join(bad[:3])}): the run had diverged when it was written (an older gan-cli "
                "saved such states). Resume from an earlier checkpoint (checkpoints/step_*.pt) instead."
            )
        ranks = state.get("ranks") or []
        if self.dist.rank < len(ranks):
            streams = ranks[self.dist.rank]
        elif not self.dist.enabled:
            streams = {"data": state["data"], "noise": state["rng"]["noise"]}
        else:
            streams = None  # a rank the checkpoint did not have keeps its own freshly seeded streams
        try:
            self.game.load_state_dict(state, streams)
        except CheckpointError as e:
            raise CheckpointError(f"{source}: {e}") from e
        rng = state["rng"]
        random.setstate(rng["python"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.health.load_state_dict(state["health"])
        self.step = int(state["step"])
        self.rollbacks = int(state.get("rollbacks", 0))
        self.elapsed = float(state.get("elapsed", 0.0))
        # a best value of another metric (eval.best changed) is no benchmark for this one
        same_metric = state.get("best_key", self.cfg.eval.best) == self.cfg.eval.best
        self.best = state.get("best") if same_metric else None
        self.game.apply_optim_config(self.rollbacks)

    def log_real_images(self, logger: RunLogger) -> None:
        """samples/real.png: what the model learns from (stylegan2-ada's reals.png)."""
        image = self.game.real_image()
        if image is not None:
            logger.real_images(image)

    def weights_fingerprint(self) -> str:
        """A short hash of the trained networks' parameters: equal on every rank of a healthy
        torchrun run (BatchNorm running statistics are per rank unless trainer.sync_bn)."""
        import hashlib

        digest = hashlib.sha1()
        for name, net in self.game.modules().items():
            if not name.endswith("_ema"):
                for t in net.parameters():
                    digest.update(t.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]
