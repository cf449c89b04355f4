"""Distances between sets of features: Frechet distance, KID, precision/recall, Inception Score.

The formulas come from torch-fidelity (a well-kept implementation of the reference ones); they
work on any feature extractor, so the classifier metric and the tests reuse them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# metrics computed on statistics of two sample sets (gan-eval's fid, kid, is, pr and classifier)
SET_METRICS = ("fid", "kid", "is", "pr", "classifier")
# the fewest samples in each set these are defined on: a Frechet distance needs each set's
# covariance (and the classifier's fd_floor splits the real set in halves), precision/recall take
# 3 nearest neighbours, the Inception Score 10 splits, KID subsets of at least 2
MIN_SAMPLES = 10
DEFAULT_SAMPLES = 10000  # generated samples of an evaluation (eval.n_samples=null) without stacked_modes


def sample_count(n_samples: int | None, metrics: list[str]) -> int:
    """The generated samples an evaluation of `metrics` draws: `eval.n_samples`, or when it is null
    the protocol's count, 26,000 when stacked_modes is among them (PacGAN's), else 10,000."""
    if n_samples is not None:
        return n_samples
    from gan_cli.metrics.stacked import SAMPLES

    return SAMPLES if "stacked_modes" in metrics else DEFAULT_SAMPLES


def _metrics_need(using: list[str]) -> str:
    return f"metric {using[0]} needs" if len(using) == 1 else f"metrics {', '.join(using)} need"


def sample_count_problems(metrics: list[str], n_samples: int | None, real_samples: int) -> list[str]:
    """Why `eval.n_samples` (None: not used, as by translation runs) or `eval.real_samples` is too
    small for `metrics` (empty: fine)."""
    using = [m for m in metrics if m in SET_METRICS]
    problems = []
    for key, value, what in (
        ("eval.n_samples", n_samples, "generated"),
        ("eval.real_samples", real_samples, "real"),
    ):
        if using and value is not None and value < MIN_SAMPLES:
            problems.append(
                f"{key}={value}: {_metrics_need(using)} at least {MIN_SAMPLES} {what} samples "
                f"(the statistics of each set: a covariance, neighbours, splits); set {key} >= {MIN_SAMPLES}"
            )
    return problems


def too_few_real(metrics: list[str], count: int, source: str) -> str | None:
    """Why a real set of `count` items (`source`: the data keys that chose it) is too small for
    `metrics`, or None."""
    using = [m for m in metrics if m in SET_METRICS]
    if not using or count >= MIN_SAMPLES:
        return None
    return (
        f"{source} holds only {count} items: {_metrics_need(using)} at least {MIN_SAMPLES} real "
        "samples (the statistics of each set: a covariance, neighbours, splits); evaluate on a larger set"
    )


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two (N, D) feature sets."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    stats_a = fid_features_to_statistics(a.double())
    stats_b = fid_features_to_statistics(b.double())
    return float(fid_statistics_to_metric(stats_a, stats_b, verbose=False)["frechet_inception_distance"])


def kid(a: Tensor, b: Tensor, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (unbiased MMD^2, cubic polynomial kernel): mean and std over subsets."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    size = min(1000, len(a), len(b))
    out = kid_features_to_metric(a, b, kid_subsets=100, kid_subset_size=size, verbose=False, rng_seed=seed)
    return float(out["kernel_inception_distance_mean"]), float(out["kernel_inception_distance_std"])


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN manifolds."""
    from torch_fidelity.metric_prc import prc_features_to_metric

    out = prc_features_to_metric(real, fake, prc_neighborhood=k, prc_batch_size=10000, verbose=False)
    return float(out["precision"]), float(out["recall"])


def inception_score(logits: Tensor, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """exp(E KL(p(y|x) || p(y))): mean and std over splits."""
    from torch_fidelity.metric_isc import isc_features_to_metric

    out = isc_features_to_metric(logits, splits=splits, rng_seed=seed)
    return float(out["inception_score_mean"]), float(out["inception_score_std"])


def histogram_kl(p: np.ndarray, q: np.ndarray, eps: float = 1e-6) -> float:
    """KL(p || q) of two histograms (normalised here; eps keeps empty bins of q finite)."""
    p = p / max(p.sum(), eps)
    q = (q + eps) / (q + eps).sum()
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / q[nz])).sum())


def as_rgb_uint8(x: Tensor) -> Tensor:
    """[-1, 1] or uint8 images -> uint8 with 3 channels (what Inception expects)."""
    if x.dtype != torch.uint8:
        x = x.add(1).mul(127.5).add(0.5).clamp(0, 255).to(torch.uint8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
