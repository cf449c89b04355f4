"""Command-line entry points. `gan-train` = Hydra composition -> checks -> `train(cfg)`.

Heavy imports (torch, the trainer) happen inside the functions so `gan-train --help` and config
errors answer quickly.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from gan_cli.resume import CONTINUED_IN, ResumeError, find_previous_run, finished_metrics, resume_config
from gan_cli.schema import GROUPS, Config, ConfigError, check_config, register, valid_keys

CONFIG_PATH = "pkg://gan_cli.configs"


class UserError(RuntimeError):
    """An error the user can fix; printed as one paragraph without a traceback."""


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


def check_overrides(argv: list[str]) -> None:
    """Refuse `key=value` overrides whose key the schema does not know, listing the valid keys.

    Hydra would refuse them too, but without saying which keys exist."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    candidates = [a for a in argv if "=" in a and not a.startswith("-")]
    try:
        overrides = OverridesParser.create().parse_overrides(candidates)
    except HydraException:
        return  # a syntax error: Hydra reports it with its own message
    for o in overrides:
        key = o.key_or_group
        if "/" in key or key.split(".")[0] == "hydra" or o.package or o.is_delete():
            continue
        value = o.value()
        missing = isinstance(value, str) and value != "auto" and not Path(value).expanduser().exists()
        if key == "resume" and missing:
            raise UserError(f"resume={o.value()}: no such file or directory to resume from.")
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


def train(cfg: DictConfig) -> dict[str, float]:
    """Train one run from a composed config; returns the final health metrics."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from gan_cli.checkpoint import CheckpointWriter, load_checkpoint, resolve_resume
    from gan_cli.logs import RunLogger
    from gan_cli.trainer import Trainer

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
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
        state = load_checkpoint(ckpt_path)
        cfg = resume_config(cfg, state["config"], ckpt_path)
        choices = state.get("choices", choices)
    # merging into the schema also types a plain DictConfig (API callers, tests)
    typed: Config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), cfg))  # type: ignore[assignment]
    check_config(typed)

    from gan_cli import distributed
    from gan_cli.logs import NullLogger
    from gan_cli.trainer import resolve_device

    info = distributed.from_env()
    distributed.init(info, resolve_device(typed.trainer.device).type)
    try:
        if info.enabled:
            run_dir = Path(distributed.broadcast(str(run_dir)))
        t = typed.trainer
        if info.main:
            print(f"Run directory: {run_dir.resolve()}", flush=True)
            if info.enabled:
                print(
                    f"torchrun: {info.world} ranks x trainer.batch_size={t.batch_size} = global batch "
                    f"{info.world * t.batch_size}",
                    flush=True,
                )
        trainer = Trainer(typed, run_dir, choices, info)
        if state is not None:
            trainer.load_state_dict(state, Path(str(cfg.resume)))
            if info.main:
                print(f"Resumed from {cfg.resume} at step {trainer.step}.", flush=True)
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
            metrics = trainer.fit(logger, writer)
        finally:
            logger.close()
        if info.enabled:
            print(
                f"rank {info.rank}/{info.world}: weights fingerprint {trainer.weights_fingerprint()}",
                flush=True,
            )
        if info.main:
            print(
                f"Done: {trainer.step} steps in {run_dir.resolve()}. Samples in samples/, checkpoints in "
                f"checkpoints/. To train longer: gan-train resume={run_dir} trainer.steps={2 * t.steps}",
                flush=True,
            )
        distributed.shutdown(finished=True)
    finally:
        distributed.shutdown()
    return metrics


def _report(e: BaseException) -> None:
    print(f"Error: {e}", file=sys.stderr, flush=True)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")
def _hydra_train(cfg: DictConfig) -> float | None:
    from gan_cli.checkpoint import CheckpointError
    from gan_cli.data import DataError
    from gan_cli.metrics.inception import EvalError
    from gan_cli.models import ModelConfigError
    from gan_cli.trainer import Interrupted, NonFiniteError

    missing = sorted(OmegaConf.missing_keys(cfg))
    try:
        if missing:
            raise UserError(f"Config keys without a value: {', '.join(missing)}.")
        metrics = train(cfg)
    except Interrupted as e:
        from hydra.core.hydra_config import HydraConfig

        run_dir = run_dir_of(str(cfg.resume) if cfg.resume else None, HydraConfig.get().runtime.output_dir)
        print(
            f"\nStopped by {e}; checkpoint written to {e.checkpoint}.\n"
            f"Resume with: gan-train resume={run_dir}",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(128 + e.signum)
    except KeyboardInterrupt:
        print(
            "\nInterrupted twice: stopped at once without a new checkpoint; the last one is intact.",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(130)
    except (
        UserError,
        ResumeError,
        ConfigError,
        CheckpointError,
        DataError,
        ModelConfigError,
        NonFiniteError,
        EvalError,
    ) as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        _report(e)
        sys.exit(2)
    objective = cfg.trainer.objective
    value = metrics.get(objective)
    return float(value) if value is not None else None


def train_main() -> None:
    """Console script `gan-train`."""
    _setup()
    try:
        check_overrides(sys.argv[1:])
    except UserError as e:
        _report(e)
        sys.exit(2)
    _hydra_train()


if __name__ == "__main__":
    train_main()
