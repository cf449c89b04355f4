"""Mode coverage on Stacked MNIST, as VEEGAN (Srivastava et al. 2017, Table 2) and PacGAN (Lin et
al. 2018, Tables 2 and 3) count it: an MNIST classifier reads each channel of 26,000 samples, each
sample is the triple of its three digits (one of 1,000 modes), and the scores are the number of
distinct triples and KL(histogram of the triples || uniform over the 1,000). PacGAN's code takes the
sum over the triples seen only (0 log 0 = 0), which with q = 1/1000 is sum p log(1000 p).

The counts are only as good as the classifier that reads the digits (gan-cli's small CNN, trained on
the digit set; its held-out accuracy is reported): a misread digit moves a sample to another mode.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gan_cli.data.stacked import CLASSES

SAMPLES = 26000  # the protocol's count (PacGAN's num_test_sample)


def triple_labels(digits: Tensor) -> Tensor:
    """(N, 3) digits 0..9 (R, G, B) -> (N,) modes 100 r + 10 g + b in 0..999."""
    return digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]


def mode_stats(modes: Tensor) -> tuple[float, float]:
    """(number of distinct modes, KL(histogram || uniform over the 1,000)) of (N,) int64 modes in
    0..999; the KL sums over the modes seen (log 1000 when all samples share one, 0 when all
    1,000 are equally frequent)."""
    counts = torch.bincount(modes, minlength=CLASSES).double()
    p = counts[counts > 0] / counts.sum()
    return float(len(p)), float((p * (p * CLASSES).log()).sum())


def read_modes(classify: torch.nn.Module, x: Tensor, device: torch.device, batch: int = 500) -> Tensor:
    """The modes (N,) an MNIST classifier (logits of (n, 1, H, W) in [-1, 1]) reads in images
    (N, 3, H, W): uint8, or float in [-1, 1]. Each channel is classified as one digit."""
    from gan_cli.data import to_model_range

    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            part = to_model_range(x[i : i + batch])
            digits = part.reshape(-1, 1, *part.shape[2:]).to(device)
            out.append(classify(digits).argmax(1).view(-1, 3).cpu())
    return triple_labels(torch.cat(out)) if out else torch.empty(0, dtype=torch.long)
