"""The numbers each evaluation metric reports, by key: what `eval.best` and an `eval/...`
`trainer.objective` may name, checked before a run starts (a key no metric computes would keep no
checkpoints/best.pt and give a sweeper nothing)."""

from __future__ import annotations

from gan_cli.schema import Config, ConfigError, ModelName

# metric -> its numeric result keys (gan-eval and eval.json; metrics.jsonl prefixes them with eval/)
RESULT_KEYS: dict[str, tuple[str, ...]] = {
    "modes2d": ("modes2d/modes", "modes2d/hq_pct", "modes2d/rkl", "modes2d/spread"),
    "fid": ("fid",),
    "kid": ("kid", "kid_std"),
    "is": ("is", "is_std"),
    "pr": ("precision", "recall"),
    "classifier": ("classifier/acc_real", "classifier/kl", "classifier/fd", "classifier/fd_floor"),
    "parzen": tuple(f"parzen/{p}{k}" for p in ("", "real_") for k in ("ll", "se", "sigma")),
    "stacked_modes": (
        "stacked/modes",
        "stacked/kl",
        "stacked/real_modes",
        "stacked/real_kl",
        "stacked/classifier_acc",
    ),
}
CONDITIONAL_KEYS = {"classifier": ("classifier/cond_acc",)}  # models with labels (cgan, stylegan2)
# a translation run's (model=cyclegan) classifier metric, metrics/translation.py
TRANSLATION_KEYS = {
    "classifier": (
        *(
            f"translation/{d}/{k}"
            for d in ("a2b", "b2a")
            for k in ("acc", "raw_acc", "fd", "fd_floor", "cycle_l1")
        ),
        "translation/classifier_acc_a",
        "translation/classifier_acc_b",
    )
}


def result_keys(
    metrics: list[str], model: ModelName, conditional: bool = False
) -> tuple[list[str], list[str]]:
    """The numeric keys `metrics` report for a model of kind `model`, and the metrics whose keys
    are not listed here (any key that starts with such a metric's name is then possible)."""
    keys: list[str] = []
    unlisted = []
    for m in metrics:
        if model == ModelName.cyclegan:
            listed = TRANSLATION_KEYS.get(m)
        else:
            listed = RESULT_KEYS.get(m)
            if listed is not None and (model == ModelName.cgan or conditional):
                listed = (*listed, *CONDITIONAL_KEYS.get(m, ()))
        if listed is None:
            unlisted.append(m)
        else:
            keys += listed
    return keys, unlisted


def check_result_keys(cfg: Config) -> None:
    """Refuse (ConfigError) an `eval.best`, or a `trainer.objective` of the form eval/<key>, that
    the chosen `eval.metrics` never report, naming the keys they do report; and, when the run
    evaluates, sample counts too small for its metrics."""
    from gan_cli.metrics.features import sample_count, sample_count_problems

    ev = cfg.eval
    metrics = [m.value for m in ev.metrics]
    from gan_cli.models import is_conditional

    keys, unlisted = result_keys(metrics, cfg.model.name, is_conditional(cfg.model))

    def known(key: str) -> bool:
        return key in keys or any(key.startswith(m) for m in unlisted)

    shown = ", ".join(keys) if keys else "none"
    translation = cfg.model.name == ModelName.cyclegan
    problems = (
        sample_count_problems(
            metrics, None if translation else sample_count(ev.n_samples, metrics), ev.real_samples
        )
        if ev.every
        else []
    )
    if ev.best and ev.every and not known(ev.best):
        problems.append(
            f"eval.best={ev.best} is not a result of eval.metrics=[{','.join(metrics)}]: no "
            f"checkpoints/best.pt would ever be kept. The keys these metrics report: {shown}"
        )
    objective = cfg.trainer.objective
    if objective.startswith("eval/") and objective != "eval/step":
        if not ev.every:
            problems.append(
                f"trainer.objective={objective} is an evaluation result, but eval.every=0 evaluates "
                "nothing during training; set eval.every and eval.metrics"
            )
        elif not known(objective[len("eval/") :]):
            problems.append(
                f"trainer.objective={objective} is not a result of eval.metrics=[{','.join(metrics)}]. "
                f"The keys these metrics report (with eval/ in front): {shown}"
            )
    if problems:
        raise ConfigError("Invalid config:\n  - " + "\n  - ".join(problems))
