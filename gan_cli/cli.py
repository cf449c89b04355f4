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
from gan_cli.finish import finish
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
    brackets or a comma in a path), keys the schema does not know (listing the valid ones), values
    of the wrong type or choice, and group options that do not exist.

    Every value of a sweep (`-m key=a,b`) is checked here, before its first job starts: Hydra
    composes each job only when it launches it, so one bad value would otherwise end the whole
    sweep half-way, after the jobs before it had run."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    multirun = _is_multirun(argv)
    own_configs = any(
        a.startswith(("--config-dir", "-cd", "--config-path", "-cp", "hydra.searchpath")) for a in argv
    )
    for arg in (a for a in argv if "=" in a and not a.startswith("-")):
        try:
            (o,) = parser.parse_overrides([arg])
        except HydraException:
            _needs_quotes(arg, parser)
            continue  # another syntax error: Hydra reports it with its own message
        if o.is_sweep_override() and not multirun and "," in arg and "[" not in arg.split("=", 1)[1]:
            _needs_quotes(arg, parser, sweep=True)
        _check_key(o)
        _check_values(o, arg, check_groups=not own_configs)


# config groups outside the schema: whole recipes and the per-combination tuning (configs/tuned)
RECIPE_GROUPS = ("experiment", "hparams_search", "tuned")


def _values(o: Any) -> list[Any]:
    """The value of an override, or every value of a choice or range sweep (an interval that a
    sweeper draws from has none to check); interpolations are left to Hydra."""
    from hydra.core.override_parser.types import ChoiceSweep, RangeSweep

    if o.is_sweep_override():
        values = list(o.sweep_iterator()) if isinstance(o.value(), (ChoiceSweep, RangeSweep)) else []
    else:
        values = [o.value()]
    return [v for v in values if not (isinstance(v, str) and "${" in v)]


def _check_values(o: Any, arg: str, check_groups: bool) -> None:
    """Check each value of a parsed override against the schema (type, enum choice) or, for a
    group, against the group's options; a UserError names the key, the value and what is valid."""
    from omegaconf.errors import OmegaConfBaseException

    from gan_cli.schema import schema_tree

    key = o.key_or_group
    if "/" in key or key.split(".")[0] == "hydra" or o.package or o.is_delete() or key == "resume":
        return
    sweep = f" (in the sweep {shell_word(arg)}; every value is checked before the first job)"
    if "." not in key:
        if key not in (*GROUPS, *RECIPE_GROUPS) or not check_groups:
            return
        from gan_cli.helptext import config_groups

        options = config_groups().get(key, [])
        for value in _values(o):
            if value is not None and str(value) not in options:
                raise UserError(
                    f"{key}={value}: no such option{sweep if o.is_sweep_override() else ''}. Valid "
                    f"options for {key}: {', '.join(options)} (gan-train --help {key})."
                )
        return
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(schema_tree(), parent)
    if not isinstance(node, DictConfig) or isinstance(node.get(leaf), DictConfig):
        return  # a whole section: Hydra merges it
    for value in _values(o):
        probe = OmegaConf.structured(OmegaConf.get_type(node))
        try:
            OmegaConf.update(probe, leaf, value, merge=True)
        except OmegaConfBaseException as e:
            why = str(e).strip().splitlines()[0].rstrip(".")
            raise UserError(
                f"{key}={_shown_value(value)}: {why}{sweep if o.is_sweep_override() else ''}."
            ) from e


def _shown_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(map(_shown_value, value)) + "]"
    return "null" if value is None else str(value)


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
    if key == "resume" and isinstance(value, str) and value != "auto" and not _exists(value):
        raise UserError(f"resume={value}: no such file or directory to resume from.")
    if key == "init_from" and isinstance(value, str) and not _exists(value):
        raise UserError(f"init_from={value}: no such run, checkpoint or generator.pt to fine-tune from.")
    parts = key.split(".")
    for depth in range(len(parts)):
        section = ".".join(parts[:depth])
        keys = valid_keys(section)
        if keys is None:  # a value, not a section: the override goes below a leaf
            raise UserError(f"Unknown config key '{key}': '{section}' holds a value, not keys.")
        if depth == 0:
            keys = [*keys, *RECIPE_GROUPS]
        if parts[depth] not in keys:
            where = f"in '{section}'" if section else "at the top level"
            raise UserError(f"Unknown config key '{key}'. Valid keys {where}: {', '.join(sorted(keys))}.")


def _exists(path: str) -> bool:
    try:
        return Path(path).expanduser().exists()
    except OSError:  # a name too long for the file system
        return False


def check_output_root(argv: list[str]) -> None:
    """Fail before Hydra creates anything when the folder runs go into cannot be written
    (Hydra itself would end in a traceback)."""
    chosen = [a.split("=", 1)[1] for a in argv if a.startswith(("hydra.run.dir=", "hydra.sweep.dir="))]
    for target in chosen or ["outputs"]:
        path = Path(target).expanduser().absolute()
        problem = _too_long(path)
        existing = path
        while problem is None and not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if problem is not None:
            pass
        elif not existing.is_dir():
            problem = f"{existing} is a file, not a folder"
        elif not os.access(existing, os.W_OK | os.X_OK) or _read_only(existing):
            problem = f"{existing} is not writable"
        else:
            problem = _cannot_make_folder_in(existing)
        if problem:
            raise UserError(
                f"Cannot create the run folder {_short(str(path))}: {problem}. Run gan-train from a folder "
                "you can write to, or choose another with hydra.run.dir=... (hydra.sweep.dir=... for -m)."
            )


# room left in a path for what a run writes below its folder (checkpoints/step_000000.pt.tmp, ...)
_RUN_FILES_ROOM = 64


def _short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else f"{text[: limit // 2]}...{text[-limit // 2 + 3 :]}"


def _too_long(path: Path) -> str | None:
    """Why `path` (absolute) is too long a name for this system's limits, or None."""
    root = Path(path.anchor)
    name_max = os.pathconf(root, "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    path_max = os.pathconf(root, "PC_PATH_MAX") if hasattr(os, "pathconf") else 4096
    long = [part for part in path.parts[1:] if len(os.fsencode(part)) > name_max]
    if long:
        size = len(os.fsencode(long[0]))
        return f"the folder name {_short(long[0], 40)} has {size} bytes, more than the {name_max} allowed"
    if len(os.fsencode(str(path))) + _RUN_FILES_ROOM > path_max:
        return (
            f"the path has {len(os.fsencode(str(path)))} bytes; with the files a run writes below it "
            f"that passes the {path_max} allowed"
        )
    return None


def _cannot_make_folder_in(folder: Path) -> str | None:
    """Why no folder can be made in `folder` (a pseudo file system such as /proc lets root pass
    every permission check, then refuses), or None; tried with a folder made and removed."""
    probe = folder / f".gan-cli-probe-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
    except FileExistsError:
        return None
    except OSError as e:
        return f"no folder can be made in {folder} ({e.strerror})"
    return None


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
    transcript: Any = None  # the transcript.Transcript that becomes the run's train.log

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
        from gan_cli.checkpoint import load_state, resolve_resume

        ckpt_path, run_dir = resolve_resume(cfg.resume)
        attempt.run_dir, attempt.fresh = run_dir, False
        state = load_state(ckpt_path)
        cfg = resume_config(cfg, state["config"], ckpt_path)
        choices = state.get("choices", choices)
    # merging into the schema also types a plain DictConfig (API callers, tests)
    typed: Config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), cfg))  # type: ignore[assignment]
    check_config(typed)
    from gan_cli.metrics.keys import check_result_keys

    check_result_keys(typed)

    # torch only now: a config mistake above is reported before the seconds its import takes
    import torch

    from gan_cli import distributed
    from gan_cli.checkpoint import CheckpointError, CheckpointWriter
    from gan_cli.cpu import auto_threads, parallel_jobs
    from gan_cli.logs import NullLogger, RunLogger
    from gan_cli.trainer import Trainer, precision_note, resolve_device

    info = distributed.from_env()
    distributed.init(info, resolve_device(typed.trainer.device).type)
    try:
        if info.enabled:
            run_dir = Path(distributed.broadcast(str(run_dir)))
        t = typed.trainer
        init = None
        if typed.init_from and state is None:  # fine-tuning; a resumed run has its own weights
            from gan_cli.checkpoint import load_init_weights

            init = load_init_weights(typed.init_from)
        trainer = Trainer(typed, run_dir, choices, info)
        if state is not None:
            trainer.load_state_dict(state, Path(str(cfg.resume)))
        elif init is not None:
            try:
                loaded = trainer.game.init_from(init[0])
            except CheckpointError as e:
                raise CheckpointError(f"init_from={typed.init_from} ({init[1]}): {e}") from e
            if info.main:
                print(f"Fine-tuning: {', '.join(loaded)} start from {init[1]}", flush=True)
        launcher = OmegaConf.to_container(hc.launcher) if hc.mode == RunMode.MULTIRUN else None
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) * parallel_jobs(launcher, os.cpu_count() or 1)  # type: ignore[arg-type]
        threads, why = auto_threads(t.threads, local, trainer.game.loader_workers())
        torch.set_num_threads(threads)
        attempt.started, attempt.step = True, trainer.step
        if info.main:
            attempt.keep_log(run_dir)
            print(f"Run directory: {run_dir.resolve()}", flush=True)
            print(f"CPU threads: {threads} ({why})", flush=True)
            note = precision_note(t.precision, trainer.game.amp_dtype, trainer.device)
            if note:
                print(note, flush=True)
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
            print(already_done(trainer.step, t.steps, run_dir), flush=True)
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
            longer = _longer(run_dir, trainer.step)
            print(
                f"Done: {trainer.step} steps in {run_dir.resolve()}. Samples in samples/, checkpoints in "
                f"checkpoints/. To train longer: {longer}",
                flush=True,
            )
        distributed.shutdown(finished=True)
    finally:
        distributed.shutdown()
    return metrics


def _longer(run_dir: Path, step: int) -> str:
    """The command that continues a run at `step` to twice as many steps."""
    return command("gan-train", override("resume", str(run_dir)), f"trainer.steps={2 * max(step, 1)}")


def already_done(step: int, steps: int, run_dir: Path) -> str:
    """What a resumed run that has nothing left to train says."""
    if step == steps:
        where = f"The run has already reached trainer.steps={steps}: nothing to train."
    else:
        where = (
            f"The run is already at step {step}, past trainer.steps={steps}: nothing to train (a "
            "resumed run never goes back; to keep an earlier state, resume from one of its "
            "checkpoints/step_*.pt)."
        )
    return f"{where} To train longer, pass a trainer.steps above {step}: {_longer(run_dir, step)}"


def _report(message: str) -> None:
    print(f"Error: {message}", file=sys.stderr, flush=True)


def describe_failure(e: BaseException) -> str | None:
    """One paragraph for an error the user can fix, or None for a bug (which keeps its traceback)."""
    if isinstance(e, UserError):
        return str(e)
    import torch

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


def _missing_keys(cfg: DictConfig) -> set[str]:
    """Keys without a value; an interpolation that cannot be resolved is a UserError naming it."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        OmegaConf.to_container(cfg, resolve=True)
        return OmegaConf.missing_keys(cfg)
    except OmegaConfBaseException as e:
        why = str(e).strip().splitlines()[0].rstrip(".")
        raise UserError(f"{e.full_key}: {why}." if getattr(e, "full_key", None) else f"{why}.") from e


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")
def _hydra_train(cfg: DictConfig) -> float | None:
    # no module-level state here: a joblib worker runs a pickled copy of this function
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from gan_cli.errors import Interrupted
    from gan_cli.sweep import record_failure
    from gan_cli.transcript import Transcript

    hc = HydraConfig.get()
    output_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    attempt = Attempt(run_dir=output_dir)
    with Transcript() as attempt.transcript:
        try:
            missing = sorted(_missing_keys(cfg))
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
    if value is None and multirun:
        print(
            f"note: trainer.objective={cfg.trainer.objective} is not among this job's final metrics "
            f"({', '.join(sorted(metrics))}): the sweeper gets no value for it.",
            file=sys.stderr,
            flush=True,
        )
    return float(value) if value is not None else None


def _override_values(argv: list[str], key: str) -> list[Any]:
    """The values `key=...` takes on the command line, parsed as Hydra reads them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = [a for a in argv if a.startswith(f"{key}=")]
    return [o.value() for o in OverridesParser.create().parse_overrides(args)] if args else []


def _resumed_run(argv: list[str]) -> str | None:
    """The run that `resume=` names (not `auto`, which searches for one), or None."""
    values = _override_values(argv, "resume")
    resume = values[-1] if values else None
    return resume if isinstance(resume, str) and resume not in ("", "auto") else None


def check_resume_folder(argv: list[str]) -> None:
    """`resume=RUN` continues in RUN's own folder: refuse a `hydra.run.dir=` elsewhere (Hydra would
    make that folder and leave it empty) before anything is created."""
    resume = _resumed_run(argv)
    asked = _override_values(argv, "hydra.run.dir")
    if resume is None or not asked or _is_multirun(argv):
        return
    own = Path(run_dir_of(resume, str(asked[-1]))).expanduser().absolute()
    other = Path(str(asked[-1])).expanduser().absolute()
    if own.resolve() != other.resolve():
        raise UserError(
            f"resume={resume} continues in the run's own folder {own}; hydra.run.dir={other} cannot move "
            f"it. Drop hydra.run.dir=, or copy the run there (cp -r {shell_word(str(own))} "
            f"{shell_word(str(other))}) and resume the copy: "
            f"{command('gan-train', override('resume', str(other)))}"
        )


def show_resumed_config(argv: list[str]) -> bool:
    """`gan-train resume=RUN ... --cfg job`: print the config the resumed run will use (its saved
    config with this command line's allowed overrides) instead of Hydra's fresh composition;
    False when the command line asks for something else. `--cfg hydra` and `--cfg all` stay
    Hydra's, with a note that their job part is not what the resumed run uses."""
    flag = next((i for i, a in enumerate(argv) if a in ("--cfg", "-c")), None)
    resume = _resumed_run(argv)
    if flag is None or resume is None or flag + 1 >= len(argv):
        return False
    if argv[flag + 1] != "job":
        print(
            f"note: resume={resume} runs with the config saved in its checkpoint (and this command "
            f"line's allowed overrides), not the job config below; see it with: "
            f"{command('gan-train', override('resume', resume), '--cfg', 'job')}",
            file=sys.stderr,
            flush=True,
        )
        return False
    from hydra import compose, initialize_config_module

    from gan_cli.checkpoint import load_state, resolve_resume

    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    try:
        with initialize_config_module(config_module=CONFIG_PATH.removeprefix("pkg://"), version_base="1.3"):
            composed = compose(config_name="config", overrides=overrides)
    except Exception as e:  # noqa: BLE001 - a config error, as Hydra would report it
        raise UserError(hydra_error_message(e)) from e
    ckpt_path, _ = resolve_resume(resume)
    cfg = resume_config(composed, load_state(ckpt_path)["config"], ckpt_path, overrides)
    package = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--package", "-p")), None)
    node = OmegaConf.select(cfg, package) if package else cfg
    shown = OmegaConf.to_yaml(node, resolve="--resolve" in argv) if OmegaConf.is_config(node) else f"{node}\n"
    print(f"# resume={resume}: the run's saved config with this command line's overrides\n{shown}", end="")
    return True


def hydra_error_message(e: BaseException) -> str:
    """One paragraph for an error Hydra raised while composing the config or making the run folder."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(e, OSError) and (message := describe_failure(e)) is not None:
        return message
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    first = lines[0].rstrip(".") if lines else type(e).__name__
    if isinstance(e, MissingConfigException) and e.options:
        return f"{first}. Valid options: {', '.join(e.options)}."
    cause = e.__cause__
    if isinstance(cause, OmegaConfBaseException) and str(cause).strip():
        return f"{first}: {str(cause).strip().splitlines()[0].rstrip('.')}."
    if isinstance(e, OmegaConfBaseException) and getattr(e, "full_key", None):
        return f"{first} (config key {e.full_key})."
    return f"The config cannot be composed from these arguments ({type(e).__name__}: {first})."


def _raised_by_task(e: BaseException) -> bool:
    code = _hydra_train.__wrapped__.__code__  # type: ignore[attr-defined]
    tb = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return True
        tb = tb.tb_next
    return False


def _compose_once(argv: list[str]) -> None:
    """Hydra (1.3) composes the whole config twice for a run: first (Hydra.get_mode) only to read
    `hydra.mode`, then for the run itself; the first costs 0.5 s of a 2-core CPU. None of gan-cli's
    configs sets hydra.mode, so unless the command line could set it (a `hydra.mode` override,
    another config directory or search path), skip that probe: the mode is then what -m/--multirun
    says, exactly as Hydra decides when hydra.mode is unset."""
    from hydra._internal.hydra import Hydra

    if any(a.lstrip("+~").startswith(("hydra.mode", "hydra.searchpath", "-c", "--config-")) for a in argv):
        return
    Hydra.get_mode = lambda self, config_name, overrides: None  # type: ignore[method-assign]


def _config_errors_as_paragraphs() -> None:
    """Hydra (1.3) reports an error in composing the config, or in making the run folder, through
    `hydra._internal.utils.run_and_report`: its own lines, a hint at HYDRA_FULL_ERROR and exit code
    1. Wrap it so that such an error ends as gan-train's others do: one paragraph and exit code 2.
    An error raised by the task function (a bug; it reports the rest itself) and any error under
    HYDRA_FULL_ERROR=1 keep Hydra's report."""
    from hydra._internal import utils

    hydra_report = utils.run_and_report
    if getattr(hydra_report, "gan_cli", False):
        return

    def run_and_report(func: Any) -> Any:
        try:
            return func()
        except Exception as e:
            error = e
            if os.environ.get("HYDRA_FULL_ERROR") == "1" or _raised_by_task(error):

                def again() -> None:
                    raise error

                return hydra_report(again)
            _report(hydra_error_message(error))
            sys.exit(2)

    run_and_report.gan_cli = True  # type: ignore[attr-defined]
    utils.run_and_report = run_and_report


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
    _config_errors_as_paragraphs()
    _compose_once(argv)
    try:
        check_overrides(argv)
        check_resume_folder(argv)
        if show_resumed_config(argv):
            sys.exit(0)
        if not any(a.startswith(("--cfg", "-c", "--info", "--hydra-help", "--resolve")) for a in argv):
            check_output_root(argv)
    except UserError as e:
        _report(str(e))
        sys.exit(2)
    _hydra_train()
    finish(1 if sweep.failed_jobs else 0)


if __name__ == "__main__":
    train_main()
