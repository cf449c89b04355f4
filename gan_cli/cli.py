"""Command-line entry point `gan-train` = Hydra composition -> checks -> `train(cfg)`.

Heavy imports (torch, the trainer) happen inside the functions so `gan-train --help` and config
errors answer quickly. Every error a user can fix (`errors.UserError`, a full disk, running out of
memory) ends as one paragraph and exit code 2; in a sweep it fails only its own job.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from gan_cli.errors import UserError
from gan_cli.resume import CONTINUED_IN, find_previous_run, finished_metrics, resume_config
from gan_cli.schema import GROUPS, Config, check_config, inert_settings, register, valid_keys
from gan_cli.shell import command, hydra_value, override, shell_word

CONFIG_PATH = "pkg://gan_cli.configs"


def run_dir_of(resume: str | None, fresh: str) -> str:
    """Hydra resolver for hydra.run.dir: a resumed run keeps writing into its own folder; under
    torchrun, ranks other than 0 get a scratch folder (they learn rank 0's run dir later)."""
    rank = os.environ.get("RANK", "0")
    if rank != "0":
        return os.path.join(tempfile.gettempdir(), f"gan-cli-rank{rank}-{os.getpid()}")
    path = Path(resume).expanduser() if resume else None
    if path is None or not path.exists():  # nothing to resume: the run fails before writing
        return fresh
    if path.is_file():
        return str(path.parent.parent if path.parent.name == "checkpoints" else path.parent)
    return str(path)


def _setup() -> None:
    register()
    if not OmegaConf.has_resolver("gan_run_dir"):
        OmegaConf.register_new_resolver("gan_run_dir", run_dir_of)
        OmegaConf.register_new_resolver(
            "gan_output_subdir",
            # a resumed run keeps its first .hydra/ record; resume=auto needs one to be found later
            lambda resume: (
                None if (resume and resume != "auto") or os.environ.get("RANK", "0") != "0" else ".hydra"
            ),
        )


def _is_multirun(argv: list[str]) -> bool:
    return any(a in ("-m", "--multirun") for a in argv) or "hydra.mode=MULTIRUN" in argv


def check_overrides(argv: list[str]) -> None:
    """Refuse, before Hydra starts, `key=value` arguments that it would misread or reject with
    a message that names neither the argument nor the fix: values that need quoting (an `=`,
    brackets or a comma in a path), and keys the schema does not know (listing the valid ones)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    multirun = _is_multirun(argv)
    for arg in (a for a in argv if "=" in a and not a.startswith("-")):
        try:
            (o,) = parser.parse_overrides([arg])
        except HydraException:
            _needs_quotes(arg, parser)
            continue  # another syntax error: Hydra reports it with its own message
        if o.is_sweep_override() and not multirun and "," in arg and "[" not in arg.split("=", 1)[1]:
            _needs_quotes(arg, parser, sweep=True)
        _check_key(o)


def _needs_quotes(arg: str, parser: object, sweep: bool = False) -> None:
    """Raise a UserError with the quoted form of `arg` when quoting its value makes it valid."""
    from hydra.errors import HydraException

    key, value = arg.split("=", 1)
    quoted = f"{key}={hydra_value(value)}"
    try:
        parser.parse_overrides([quoted])  # type: ignore[attr-defined]
    except HydraException:
        return
    why = (
        "a comma makes it a sweep over several values, which needs --multirun"
        if sweep
        else "Hydra's override grammar reads '=', brackets, parentheses, '#', '~' or quotes in an "
        "unquoted value as syntax"
    )
    raise UserError(
        f"The argument {shell_word(arg)} cannot be read as one value: {why}. To pass the value as "
        f"written, quote it for Hydra (and for the shell): {override(key, value)}"
    )


def _check_key(o: object) -> None:
    key = o.key_or_group  # type: ignore[attr-defined]
    if "/" in key or key.split(".")[0] == "hydra" or o.package or o.is_delete():  # type: ignore[attr-defined]
        return
    value = o.value()  # type: ignore[attr-defined]
    missing = isinstance(value, str) and value != "auto" and not Path(value).expanduser().exists()
    if key == "resume" and missing:
        raise UserError(f"resume={value}: no such file or directory to resume from.")
    parts = key.split(".")
    for depth in range(len(parts)):
        section = ".".join(parts[:depth])
        keys = valid_keys(section)
        if keys is None:  # a value, not a section: the override goes below a leaf
            raise UserError(f"Unknown config key '{key}': '{section}' holds a value, not keys.")
        if depth == 0:
            keys = [*keys, "experiment", "hparams_search"]
        if parts[depth] not in keys:
            where = f"in '{section}'" if section else "at the top level"
            raise UserError(f"Unknown config key '{key}'. Valid keys {where}: {', '.join(sorted(keys))}.")


def check_output_root(argv: list[str]) -> None:
    """Fail before Hydra creates anything when the folder runs go into cannot be written
    (Hydra itself would end in a traceback)."""
    chosen = [a.split("=", 1)[1] for a in argv if a.startswith(("hydra.run.dir=", "hydra.sweep.dir="))]
    for target in chosen or ["outputs"]:
        path = Path(target).expanduser().absolute()
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        problem = None
        if not existing.is_dir():
            problem = f"{existing} is a file, not a folder"
        elif not os.access(existing, os.W_OK | os.X_OK) or _read_only(existing):
            problem = f"{existing} is not writable"
        if problem:
            raise UserError(
                f"Cannot create the run folder {path}: {problem}. Run gan-train from a folder you can "
                "write to, or choose another with hydra.run.dir=... (hydra.sweep.dir=... for -m)."
            )


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


@dataclass
class Attempt:
    """What one call of `train` got to, for the error report: a failed start leaves no folder
    behind; a run that trained keeps its folder and says where it is."""

    run_dir: Path | None = None
    fresh: bool = True  # this command made run_dir (not a resumed run's own folder)
    started: bool = False  # training began: the folder holds work
    step: int | None = None
    transcript: Any = None  # the logs.Transcript that becomes the run's train.log

    def keep_log(self, run_dir: Path) -> None:
        if self.transcript is not None:
            self.transcript.keep(run_dir / "train.log")

    def report(self, message: str) -> None:
        """The error paragraph, on stderr and in train.log."""
        _report(message)
        if self.transcript is not None:
            self.transcript.log(f"Error: {message}\n")


def train(cfg: DictConfig, attempt: Attempt | None = None) -> dict[str, float]:
    """Train one run from a composed config; returns the final health metrics."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from gan_cli.checkpoint import CheckpointWriter, load_state, resolve_resume
    from gan_cli.logs import RunLogger
    from gan_cli.trainer import Trainer

    attempt = attempt or Attempt()
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    attempt.run_dir = run_dir
    choices = {
        g: str(c)
        for g, c in hc.runtime.choices.items()
        if g in GROUPS or g in ("experiment", "hparams_search")
    }
    state = None
    if cfg.resume == "auto":
        previous = find_previous_run(run_dir, list(hc.overrides.task), hc.mode == RunMode.MULTIRUN)
        if previous is None:
            cfg.resume = None
        else:
            (run_dir / CONTINUED_IN).write_text(f"{previous}\n")
            finished = finished_metrics(previous)
            if finished is not None:
                print(f"resume=auto: {previous} has already finished; skipped.", flush=True)
                return finished
            print(f"resume=auto: continuing {previous}", flush=True)
            cfg.resume = str(previous)
    if cfg.resume:
        ckpt_path, run_dir = resolve_resume(cfg.resume)
        attempt.run_dir, attempt.fresh = run_dir, False
        state = load_state(ckpt_path)
        cfg = resume_config(cfg, state["config"], ckpt_path)
        choices = state.get("choices", choices)
    # merging into the schema also types a plain DictConfig (API callers, tests)
    typed: Config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), cfg))  # type: ignore[assignment]
    check_config(typed)

    import torch

    from gan_cli import distributed
    from gan_cli.cpu import auto_threads, parallel_jobs
    from gan_cli.logs import NullLogger
    from gan_cli.trainer import resolve_device

    info = distributed.from_env()
    distributed.init(info, resolve_device(typed.trainer.device).type)
    try:
        if info.enabled:
            run_dir = Path(distributed.broadcast(str(run_dir)))
        t = typed.trainer
        trainer = Trainer(typed, run_dir, choices, info)
        if state is not None:
            trainer.load_state_dict(state, Path(str(cfg.resume)))
        launcher = OmegaConf.to_container(hc.launcher) if hc.mode == RunMode.MULTIRUN else None
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) * parallel_jobs(launcher, os.cpu_count() or 1)  # type: ignore[arg-type]
        threads, why = auto_threads(t.threads, local, trainer.game.loader_workers())
        torch.set_num_threads(threads)
        attempt.started, attempt.step = True, trainer.step
        if info.main:
            attempt.keep_log(run_dir)
            print(f"Run directory: {run_dir.resolve()}", flush=True)
            print(f"CPU threads: {threads} ({why})", flush=True)
            if info.enabled:
                print(
                    f"torchrun: {info.world} ranks x trainer.batch_size={t.batch_size} = global batch "
                    f"{info.world * t.batch_size}",
                    flush=True,
                )
            if state is not None:
                print(f"Resumed from {cfg.resume} at step {trainer.step}.", flush=True)
            for note in inert_settings(typed):
                print(f"note: {note}", flush=True)
        if trainer.step >= t.steps and info.main:
            print(
                f"The run is already at step {trainer.step} of trainer.steps={t.steps}; pass a larger "
                "trainer.steps to train longer.",
                flush=True,
            )
        logger = (
            RunLogger(run_dir, t.steps, trainer.step, t.progress, t.tensorboard)
            if info.main
            else NullLogger()
        )
        writer = CheckpointWriter(run_dir / "checkpoints", t.keep_ckpts)
        try:
            if info.main and trainer.step == 0:
                trainer.log_real_images(logger)
            metrics = trainer.fit(logger, writer)
        finally:
            attempt.step = trainer.step
            logger.close()
        if info.enabled:
            print(
                f"rank {info.rank}/{info.world}: weights fingerprint {trainer.weights_fingerprint()}",
                flush=True,
            )
        if info.main:
            longer = command("gan-train", override("resume", str(run_dir)), f"trainer.steps={2 * t.steps}")
            print(
                f"Done: {trainer.step} steps in {run_dir.resolve()}. Samples in samples/, checkpoints in "
                f"checkpoints/. To train longer: {longer}",
                flush=True,
            )
        distributed.shutdown(finished=True)
    finally:
        distributed.shutdown()
    return metrics


def _report(message: str) -> None:
    print(f"Error: {message}", file=sys.stderr, flush=True)


def describe_failure(e: BaseException) -> str | None:
    """One paragraph for an error the user can fix, or None for a bug (which keeps its traceback)."""
    import torch

    if isinstance(e, UserError):
        return str(e)
    if isinstance(e, torch.OutOfMemoryError) or (
        isinstance(e, (RuntimeError, MemoryError)) and "can't allocate memory" in str(e)
    ):
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return (
            f"Out of memory ({first}). Lower trainer.batch_size, the model's width (model.g_channels, "
            "model.d_channels) or eval.batch_size, or use trainer.precision=bf16 on a GPU."
        )
    if isinstance(e, OSError) and e.errno is not None:
        where = e.filename or "a file"
        full = e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        fix = (
            "The disk (or your file-size or quota limit) is full: free some space, then resume."
            if full
            else "Check the path and its permissions."
        )
        return f"Could not write or read {where}: {e.strerror}. {fix}"
    return None


def _where(attempt: Attempt) -> str:
    """What a failed run leaves behind, in one sentence (and the command to go on)."""
    if attempt.run_dir is None or not attempt.started:
        return ""
    last = attempt.run_dir / "checkpoints" / "last.pt"
    resume = (
        f" Resume with: {command('gan-train', override('resume', str(attempt.run_dir)))}"
        if last.is_file()
        else ""
    )
    return f" The run's record (train.log, metrics.jsonl) is in {attempt.run_dir}.{resume}"


def _forget(attempt: Attempt, output_dir: Path) -> None:
    """A start that failed leaves nothing behind: remove the folder this command created."""
    if attempt.started or not attempt.fresh or os.environ.get("RANK", "0") != "0":
        return
    if output_dir.is_dir() and not (output_dir / "checkpoints").exists():
        shutil.rmtree(output_dir, ignore_errors=True)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")
def _hydra_train(cfg: DictConfig) -> float | None:
    # no module-level state here: a joblib worker runs a pickled copy of this function
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from gan_cli.logs import Transcript
    from gan_cli.sweep import record_failure
    from gan_cli.trainer import Interrupted

    hc = HydraConfig.get()
    output_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    attempt = Attempt(run_dir=output_dir)
    with Transcript() as attempt.transcript:
        try:
            missing = sorted(OmegaConf.missing_keys(cfg))
            if missing:
                raise UserError(f"Config keys without a value: {', '.join(missing)}.")
            metrics = train(cfg, attempt)
        except Interrupted as e:
            run = attempt.run_dir or output_dir
            saved = (
                f"checkpoint written to {e.checkpoint}."
                if e.checkpoint is not None
                else f"no checkpoint written (the state was not finite). {e.last_good}"
            )
            resume = command("gan-train", override("resume", str(run)))
            attempt.report(f"Stopped by {e}; {saved} Resume with: {resume}")
            sys.exit(128 + e.signum)
        except KeyboardInterrupt:
            attempt.report("Interrupted twice: stopped at once, without a new checkpoint." + _where(attempt))
            sys.exit(130)
        except Exception as e:  # noqa: BLE001 - sorted below: user errors, sweep jobs, bugs
            message = describe_failure(e)
            if os.environ.get("HYDRA_FULL_ERROR") == "1" or (message is None and not multirun):
                raise
            if message is None:  # a bug in one sweep job: keep its traceback in its record
                import traceback

                message = "".join(traceback.format_exception(e)).strip()
            attempt.report(message + _where(attempt))
            if multirun:
                attempt.keep_log(output_dir)
                record_failure(output_dir, e, message, attempt.step)
                return math.nan  # the sweep goes on; sweepers (Optuna) count NaN as a failed trial
            _forget(attempt, output_dir)
            sys.exit(2)
    value = metrics.get(cfg.trainer.objective)
    return float(value) if value is not None else None


def train_main() -> None:
    """Console script `gan-train`."""
    from gan_cli import sweep

    argv = sys.argv[1:]
    if "-h" in argv or "--help" in argv:  # anywhere on the line, as Hydra takes it
        from gan_cli.helptext import config_groups, train_help

        i = argv.index("--help" if "--help" in argv else "-h")
        topic = argv[i + 1] if i + 1 < len(argv) and "=" not in argv[i + 1] else None
        try:
            print(train_help(topic), flush=True)
        except BrokenPipeError:  # `gan-train --help | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0 if topic is None or topic.strip("/") in config_groups() else 2)
    _setup()
    try:
        check_overrides(argv)
        if not any(a.startswith(("--cfg", "-c", "--info", "--hydra-help", "--resolve")) for a in argv):
            check_output_root(argv)
    except UserError as e:
        _report(str(e))
        sys.exit(2)
    _hydra_train()
    if sweep.failed_jobs:
        sys.exit(1)


if __name__ == "__main__":
    train_main()
