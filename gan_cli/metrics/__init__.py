"""Evaluate a generator against its real data set with the protocols of DESIGN.md."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gan_cli.checkpoint import cached
from gan_cli.data import load_dataset, mixture_modes, to_model_range
from gan_cli.data.embedded import mixture_scale
from gan_cli.data.stacked import STACKED, digit_config
from gan_cli.latent import sample_latents
from gan_cli.metrics import features as feat
from gan_cli.metrics.inception import EvalError, InceptionFeatures, find_weights
from gan_cli.metrics.modes2d import SAMPLES as MODES2D_SAMPLES
from gan_cli.metrics.modes2d import modes2d
from gan_cli.metrics.parzen import default_sigmas, parzen
from gan_cli.sampling import LoadedGenerator, generate
from gan_cli.schema import DataConfig, EvalConfig, parzen_problems

__all__ = ["EvalError", "evaluate", "preflight"]
INCEPTION_METRICS = {"fid", "kid", "is", "pr"}


def preflight(metrics: list[str], gen_data_name: str, labelled: bool, cfg: EvalConfig) -> None:
    """Fail at once (before any sampling or training) when a metric cannot run."""
    if INCEPTION_METRICS & set(metrics):
        find_weights(cfg.inception_weights)
    if "modes2d" in metrics and gen_data_name not in ("ring8", "grid25"):
        raise EvalError(f"metric modes2d is for the 2-D mixtures ring8 and grid25, not data={gen_data_name}.")
    if "classifier" in metrics and not labelled:
        raise EvalError(f"metric classifier needs a labelled data set; data={gen_data_name} has no labels.")
    stacked_sets = [name.value for name in STACKED]
    if "stacked_modes" in metrics and gen_data_name not in stacked_sets:
        raise EvalError(
            f"metric stacked_modes counts the digit triples (1,000 modes) of Stacked MNIST, but this "
            f"run's data set is data={gen_data_name}; it is for runs trained on "
            f"data={' or data='.join(stacked_sets)}."
        )
    problems = parzen_problems(cfg) if "parzen" in metrics else []
    if problems:
        raise EvalError(f"metric parzen: {'; '.join(problems)}.")
    too_few = feat.sample_count_problems(metrics, feat.sample_count(cfg.n_samples, metrics), cfg.real_samples)
    if too_few:
        raise EvalError("; ".join(too_few) + ".")


def _fake(gen: LoadedGenerator, n: int, seed: int, batch_size: int) -> tuple[Tensor, Tensor | None]:
    """n samples; conditional models get the classes in equal shares, in order."""
    rng = torch.Generator().manual_seed(seed)
    z = sample_latents(gen.model, n, rng)
    y = torch.arange(n) % gen.num_classes if gen.conditional else None
    return generate(gen, z, y, batch_size, noise_seed=seed), y


def _real(gen: LoadedGenerator, n: int, seed: int) -> tuple[Tensor, Tensor | None, str]:
    """Up to n real items (a seeded choice) and a fingerprint of exactly those items. A run trained
    on `data.subset` items is judged against the whole set they were drawn from (its data.classes
    kept), as the ADA paper computes FID against all available images whatever subset trained
    (Karras et al. 2020, "Training GANs with Limited Data", sec. 4): the subset is what G learns
    from, the set is what it should learn."""
    return _real_of(dataclasses.replace(gen.data, subset=0), n, seed)


LOW_CLASSIFIER_ACCURACY = 0.8  # below this, classifier/* comes with a note that it is unreliable


def _real_of(data_cfg: DataConfig, n: int, seed: int) -> tuple[Tensor, Tensor | None, str]:
    """Up to n items of a data set (a seeded choice, in the set's order) and a fingerprint of
    exactly those items."""
    data = load_dataset(data_cfg)
    idx = torch.randperm(len(data.x), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    x = data.x[idx]
    y = data.y[idx] if data.y is not None else None
    digest = hashlib.sha1(x.numpy().tobytes())
    if y is not None:
        digest.update(y.numpy().tobytes())
    return x, y, f"{data_cfg.name.value}-{tuple(x.shape)}-{digest.hexdigest()[:16]}"


def evaluate(
    gen: LoadedGenerator, metrics: list[str], cfg: EvalConfig, device: torch.device
) -> dict[str, Any]:
    """Compute the named metrics; returns a flat dict of results (plus notes)."""
    labelled = gen.data.num_classes > 0
    preflight(metrics, gen.data.name.value, labelled, cfg)
    out: dict[str, Any] = {}
    cache = Path(cfg.cache_dir).expanduser()
    n = feat.sample_count(cfg.n_samples, metrics)
    if "modes2d" in metrics:
        points, _ = _fake(gen, MODES2D_SAMPLES, cfg.seed, cfg.batch_size)
        out.update(modes2d(points, mixture_modes(gen.data.name.value), gen.data.std))
    if "stacked_modes" in metrics:
        out.update(_stacked_metrics(gen, n, cfg, cache, device))
    if all(m in ("modes2d", "stacked_modes") for m in metrics):
        return out
    fake, fake_y = _fake(gen, n, cfg.seed, cfg.batch_size)
    if "parzen" in metrics:
        out.update(_parzen_metrics(gen, fake, cfg, cache, device))
    image_metrics = [m for m in metrics if m not in ("modes2d", "parzen", "stacked_modes")]
    if not image_metrics:
        return out
    if n < 10000:
        _add_note(
            out,
            f"{n} generated samples: FID, KID and the Frechet distances are biased "
            "upwards below 10,000; compare runs only at equal sample counts.",
        )
    real_x, real_y, fingerprint = _real(gen, cfg.real_samples, cfg.seed)
    where = f"data={gen.data.name.value}" + (f" (data.root={gen.data.root})" if gen.data.root else "")
    if (problem := feat.too_few_real(image_metrics, len(real_x), where)) is not None:
        raise EvalError(f"{problem}.")
    if INCEPTION_METRICS & set(image_metrics):
        out.update(_inception_metrics(fake, real_x, fingerprint, image_metrics, cfg, cache, device))
    if "classifier" in image_metrics:
        out.update(_classifier_metrics(gen, fake, fake_y, real_x, real_y, fingerprint, cfg, cache, device))
    return out


def _add_note(out: dict[str, Any], text: str) -> None:
    out["note"] = f"{out['note']} {text}" if "note" in out else text


def _parzen_metrics(
    gen: LoadedGenerator, fake: Tensor, cfg: EvalConfig, cache: Path, device: torch.device
) -> dict[str, Any]:
    """The Parzen-window protocol (metrics/parzen.py) on a seeded split of the real set into
    eval.parzen_test scored points, eval.parzen_valid points that choose sigma and up to
    eval.n_samples training items, the kernels of the reference (cached). Images in pixels [0, 1],
    2-D points in raw coordinates."""
    test_n, valid_n = cfg.parzen_test, cfg.parzen_valid
    real, _, fingerprint = _real(gen, test_n + valid_n + len(fake), cfg.seed)
    if len(real) <= test_n + valid_n:
        raise EvalError(
            f"metric parzen splits the real set into eval.parzen_test={test_n} scored points, "
            f"eval.parzen_valid={valid_n} points that choose sigma and the rest as the reference's kernels, "
            f"but data={gen.data.name.value} has only {len(real)} items; lower eval.parzen_test or "
            "eval.parzen_valid."
        )
    points = gen.data.dim > 0
    sigmas = list(cfg.parzen_sigmas) or default_sigmas(points, mixture_scale(gen.data) if points else 1.0)
    where = device if device.type == "cuda" else torch.device("cpu")  # float64: not on every device

    def coordinates(x: Tensor) -> Tensor:
        x = to_model_range(x).flatten(1).to(where, torch.float64)
        return x if points else (x + 1) / 2

    real = coordinates(real[torch.randperm(len(real), generator=torch.Generator().manual_seed(cfg.seed))])
    test, valid, train = real[:test_n], real[test_n : test_n + valid_n], real[test_n + valid_n :]
    result = parzen(coordinates(fake), valid, test, sigmas)

    def reference() -> dict[str, float]:
        r = parzen(train, valid, test, sigmas)
        return {"ll": r.ll, "se": r.se, "sigma": r.sigma}

    key = hashlib.sha1(repr((test_n, valid_n, cfg.seed, sigmas)).encode()).hexdigest()[:12]
    ref = cached(cache / "parzen" / f"{fingerprint}-{key}.pt", reference)
    out: dict[str, Any] = {
        "parzen/ll": result.ll,
        "parzen/se": result.se,
        "parzen/sigma": result.sigma,
        "parzen/real_ll": ref["ll"],
        "parzen/real_se": ref["se"],
        "parzen/real_sigma": ref["sigma"],
    }
    if len(train) < len(fake):
        _add_note(
            out,
            f"parzen: the real reference has {len(train):,} training items as kernels, the samples "
            f"{len(fake):,}; the estimate depends on the count (more kernels usually score higher).",
        )
    for name in ("parzen/sigma", "parzen/real_sigma"):
        if len(sigmas) > 1 and out[name] in (min(sigmas), max(sigmas)):
            _add_note(out, f"parzen: {name}={out[name]:.4g} is an end of the grid; widen eval.parzen_sigmas.")
    return out


def _stacked_metrics(
    gen: LoadedGenerator, n: int, cfg: EvalConfig, cache: Path, device: torch.device
) -> dict[str, Any]:
    """Stacked MNIST's protocol (metrics/stacked.py) on n generated samples (`stacked/modes`,
    `stacked/kl`) and on n items of the run's own stacked set, the reference (`stacked/real_modes`,
    `stacked/real_kl`; cached). The digits are read by the classifier metric's CNN trained on up to
    eval.real_samples digits of the set the stack draws from (the cached classifier that
    metrics=[classifier] trains on that set); its held-out accuracy is `stacked/classifier_acc`.
    Samples are generated and read 5,000 at a time (26,000 of 3 x 32 x 32 would take 320 MB)."""
    from gan_cli.metrics.classifier import VERSION, load_or_train
    from gan_cli.metrics.stacked import mode_stats, read_modes

    digits = digit_config(gen.data)
    digits_x, digits_y, digits_print = _real_of(digits, cfg.real_samples, cfg.seed)
    classifier = f"{digits_print}-e{cfg.classifier_epochs}-v{VERSION}"
    model, accuracy = load_or_train(
        cache / "classifiers" / f"{classifier}.pt",
        to_model_range(digits_x),
        digits_y,
        10,
        cfg.classifier_epochs,
        cfg.seed,
        device,
    )
    z = sample_latents(gen.model, n, torch.Generator().manual_seed(cfg.seed))
    y = torch.arange(n) % gen.num_classes if gen.conditional else None
    read = []
    for i in range(0, n, 5000):
        part = y[i : i + 5000] if y is not None else None
        x = generate(gen, z[i : i + 5000], part, cfg.batch_size, noise_seed=cfg.seed + i)
        read.append(read_modes(model, x, device, cfg.batch_size))
    modes, kl = mode_stats(torch.cat(read))
    real_x, _, fingerprint = _real(gen, n, cfg.seed)

    def reference() -> dict[str, float]:
        real_modes, real_kl = mode_stats(read_modes(model, real_x, device, cfg.batch_size))
        return {"modes": real_modes, "kl": real_kl}

    ref = cached(cache / "stacked" / f"{fingerprint}-{classifier}.pt", reference)
    out: dict[str, Any] = {
        "stacked/modes": modes,
        "stacked/kl": kl,
        "stacked/real_modes": ref["modes"],
        "stacked/real_kl": ref["kl"],
        "stacked/classifier_acc": accuracy,
    }
    if len(real_x) < n:
        _add_note(
            out,
            f"stacked_modes: the real reference has only data.size={len(real_x):,} items against "
            f"{n:,} samples; the mode count and KL depend on the count.",
        )
    return out


def _features(net: InceptionFeatures, x: Tensor, batch: int) -> tuple[Tensor, Tensor]:
    pools, logits = [], []
    for i in range(0, len(x), batch):
        p, lg = net(feat.as_rgb_uint8(x[i : i + batch]))
        pools.append(p)
        logits.append(lg)
    return torch.cat(pools), torch.cat(logits)


def _inception_metrics(
    fake: Tensor,
    real: Tensor,
    fingerprint: str,
    metrics: list[str],
    cfg: EvalConfig,
    cache: Path,
    device: torch.device,
) -> dict[str, float]:
    net = InceptionFeatures(find_weights(cfg.inception_weights), device)
    real_f = cached(
        cache / "features" / f"{net.name}-{fingerprint}.pt",
        lambda: dict(zip(("pool", "logits"), _features(net, real, cfg.batch_size), strict=True)),
    )
    fake_pool, fake_logits = _features(net, fake, cfg.batch_size)
    out: dict[str, float] = {}
    if "fid" in metrics:
        out["fid"] = feat.frechet_distance(real_f["pool"], fake_pool)
    if "kid" in metrics:
        out["kid"], out["kid_std"] = feat.kid(real_f["pool"], fake_pool, cfg.seed)
    if "is" in metrics:
        out["is"], out["is_std"] = feat.inception_score(fake_logits, seed=cfg.seed)
    if "pr" in metrics:
        out["precision"], out["recall"] = feat.precision_recall(real_f["pool"], fake_pool)
    return out


def _classifier_metrics(
    gen: LoadedGenerator,
    fake: Tensor,
    fake_y: Tensor | None,
    real_x: Tensor,
    real_y: Tensor | None,
    fingerprint: str,
    cfg: EvalConfig,
    cache: Path,
    device: torch.device,
) -> dict[str, Any]:
    from gan_cli.metrics.classifier import VERSION, load_or_train, predict

    k = gen.num_classes
    real = to_model_range(real_x)
    model, accuracy = load_or_train(
        cache / "classifiers" / f"{fingerprint}-e{cfg.classifier_epochs}-v{VERSION}.pt",
        real,
        real_y,
        k,
        cfg.classifier_epochs,
        cfg.seed,
        device,
    )
    real_logits, real_f = predict(model, real, device)
    fake_logits, fake_f = predict(model, fake, device)
    fake_pred = fake_logits.argmax(1)
    fake_hist = np.bincount(fake_pred.numpy(), minlength=k).astype(float)
    real_hist = np.bincount(real_y.numpy(), minlength=k).astype(float)
    half = len(real_f) // 2
    perm = torch.randperm(len(real_f), generator=torch.Generator().manual_seed(cfg.seed))
    out: dict[str, Any] = {
        "classifier/acc_real": accuracy,
        "classifier/hist": (fake_hist / fake_hist.sum()).round(4).tolist(),
        "classifier/kl": feat.histogram_kl(fake_hist, real_hist),
        "classifier/fd": feat.frechet_distance(real_f, fake_f),
        "classifier/fd_floor": feat.frechet_distance(real_f[perm[:half]], real_f[perm[half:]]),
    }
    if fake_y is not None:
        out["classifier/cond_acc"] = float((fake_pred == fake_y).float().mean())
    if accuracy < LOW_CLASSIFIER_ACCURACY:
        _add_note(
            out,
            f"classifier: its held-out accuracy on the real set is {accuracy:.1%} (classifier/acc_real), "
            f"so its classes and features say little; the set has {len(real)} labelled items "
            "(more, or eval.classifier_epochs, train a better one).",
        )
    return out
