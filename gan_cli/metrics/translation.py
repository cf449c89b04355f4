"""How well a translation model (CycleGAN) carries images across, where both domains are labelled:
does the translated image still show its class to a classifier of the target domain (CyCADA's
pixel-level evaluation, Hoffman et al. 2018), how close are translations to the target domain in
that classifier's features, and how well does the cycle reconstruct the input.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gan_cli.data import load_dataset, to_model_range
from gan_cli.metrics import features as feat
from gan_cli.metrics.inception import EvalError
from gan_cli.sampling import LoadedTranslator
from gan_cli.schema import DataConfig, DomainConfig, EvalConfig

METRICS = ("classifier",)


def preflight(metrics: list[str], data: DataConfig) -> None:
    """Fail at once (before training or sampling) when a metric cannot run on this pair."""
    other = [m for m in metrics if m not in METRICS]
    if other:
        raise EvalError(
            f"metrics {other} are for image generators; a translation run is evaluated with "
            "metrics=[classifier] (label kept across translation, Frechet distance, cycle L1)."
        )
    if "classifier" in metrics:
        unlabelled = [
            k for k, dom in (("data.a", data.a), ("data.b", data.b)) if dom is None or not dom.num_classes
        ]
        if unlabelled:
            raise EvalError(
                f"metric classifier needs labels in both domains; {', '.join(unlabelled)} has none."
            )


def _real(dom: DomainConfig, n: int, seed: int, section: str) -> tuple[Tensor, Tensor, str]:
    """Up to n labelled real images of a domain (uint8, a seeded choice; `section`: its key,
    data.a or data.b) and their fingerprint."""
    data = load_dataset(dom, section)
    idx = torch.randperm(len(data.x), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    x, y = data.x[idx], data.y[idx]  # type: ignore[index]
    digest = hashlib.sha1(x.numpy().tobytes())
    digest.update(y.numpy().tobytes())
    return x, y, f"{dom.name.value}-{tuple(x.shape)}-{digest.hexdigest()[:16]}"


def semantic_classifier(dom: DomainConfig, cfg: EvalConfig, device: torch.device) -> torch.nn.Module:
    """The frozen classifier of CyCADA's semantic consistency loss (Hoffman et al. 2018): the
    project's small CNN trained on every labelled image of domain `dom` (data.a), with random
    stroke sharpness and thickness (classifier `_stroke_augment`: it must read translations, whose
    strokes take the other domain's style), cached in eval.cache_dir. Its seed is eval.seed + 1,
    so the classifier the evaluation reads domain A with (eval.seed, eval.real_samples images) is
    another one. Returns it in eval mode, weights frozen.

    Raises EvalError when the domain has no labels."""
    from gan_cli.metrics.classifier import VERSION, load_or_train

    if not dom.num_classes:
        raise EvalError(f"the semantic loss needs labels in domain A; data.a={dom.name.value} has none.")
    x, y, fingerprint = _real(dom, 10**9, cfg.seed, "data.a")
    path = Path(cfg.cache_dir).expanduser() / "classifiers"
    path = path / f"semantic-{fingerprint}-e{cfg.classifier_epochs}-s{cfg.seed + 1}-v{VERSION}-stroke.pt"
    # training it (once; later runs read the cache) must leave the run's random stream as it was
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model, _ = load_or_train(
            path,
            to_model_range(x),
            y,
            dom.num_classes,
            cfg.classifier_epochs,
            cfg.seed + 1,
            device,
            purpose="semantic-loss (domain A)",
            augment="stroke",
        )
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def evaluate_translation(
    tr: LoadedTranslator, metrics: list[str], cfg: EvalConfig, device: torch.device
) -> dict[str, Any]:
    """For each direction (a2b, b2a): the target classifier's accuracy on translated images
    against their source labels (`acc`), the same on the untranslated images (`raw_acc`, the
    baseline), the Frechet distance of translations to the real target domain in that
    classifier's features (`fd`, with the two-halves floor `fd_floor`), and the mean L1 of the
    cycle back (`cycle_l1`, in [-1, 1] units). Keys: translation/<direction>/<name>."""
    from gan_cli.metrics.classifier import VERSION, load_or_train, predict

    preflight(metrics, tr.data)
    too_few = feat.sample_count_problems(metrics, None, cfg.real_samples)
    if too_few:
        raise EvalError("; ".join(too_few) + ".")
    cache = Path(cfg.cache_dir).expanduser()
    real = {}
    for key, dom in (("a", tr.data.a), ("b", tr.data.b)):
        assert dom is not None
        # the whole set a data.<key>.subset was drawn from (as the GAN metrics: metrics._real)
        whole = dataclasses.replace(dom, subset=0)
        x, y, fingerprint = _real(whole, cfg.real_samples, cfg.seed, f"data.{key}")
        where = f"data.{key}.name={dom.name.value}" + (f" (data.{key}.root={dom.root})" if dom.root else "")
        if (problem := feat.too_few_real(metrics, len(x), where)) is not None:
            raise EvalError(f"{problem}.")
        model, accuracy = load_or_train(
            cache / "classifiers" / f"{fingerprint}-e{cfg.classifier_epochs}-v{VERSION}.pt",
            to_model_range(x),
            y,
            dom.num_classes,
            cfg.classifier_epochs,
            cfg.seed,
            device,
        )
        real[key] = (to_model_range(x), y, model, accuracy)
    out: dict[str, Any] = {}
    for direction, src, dst in (("a2b", "a", "b"), ("b2a", "b", "a")):
        x, y, _, _ = real[src]
        x_dst, _, classifier, accuracy = real[dst]
        moved = tr.translate(x, direction, cfg.batch_size)
        back = tr.translate(moved, "b2a" if direction == "a2b" else "a2b", cfg.batch_size)
        logits, f_moved = predict(classifier, moved, device)
        raw_logits, _ = predict(classifier, as_channels(x, x_dst.shape[1]), device)
        _, f_real = predict(classifier, x_dst, device)
        half = len(f_real) // 2
        perm = torch.randperm(len(f_real), generator=torch.Generator().manual_seed(cfg.seed))
        prefix = f"translation/{direction}/"
        out[prefix + "acc"] = float((logits.argmax(1) == y).float().mean())
        out[prefix + "raw_acc"] = float((raw_logits.argmax(1) == y).float().mean())
        out[prefix + "fd"] = feat.frechet_distance(f_real, f_moved)
        out[prefix + "fd_floor"] = feat.frechet_distance(f_real[perm[:half]], f_real[perm[half:]])
        out[prefix + "cycle_l1"] = float((back - x).abs().mean())
        out[f"translation/classifier_acc_{dst}"] = accuracy
    return out


def as_channels(x: Tensor, channels: int) -> Tensor:
    """Grey to RGB by repetition, RGB to grey by the mean: an untranslated image as the other
    domain's classifier can take it."""
    if x.shape[1] == channels:
        return x
    return x.expand(-1, channels, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
