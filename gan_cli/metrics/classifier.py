"""An offline quality score: a small classifier trained once on the labelled real set.

It reports what an Inception network would, without needing its weights: how generated samples
spread over the classes, the Frechet distance in the classifier's feature space (with the distance
between two halves of the real set as the floor), and for conditional models whether samples show
the class they were asked for.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_cli.optim import Adam

# part of the cache key: a change to the architecture or training makes older cached classifiers stale
VERSION = 2


class SmallClassifier(nn.Module):
    """Three conv blocks and a linear head; `features` is the 128-d penultimate layer."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(128, num_classes))

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


def _augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """Random shifts of up to 2 px, contrast and brightness jitter and pixel noise: features that
    ignore what the eye ignores. Without the photometric part, lifting MNIST's black background by
    1.5 % of the range moved the Frechet distance 140x its real-vs-real floor (with it: 1x)."""
    pad = F.pad(x, (2, 2, 2, 2), mode="replicate")
    dx, dy = torch.randint(0, 5, (2,), generator=gen).tolist()
    x = pad[:, :, dy : dy + x.shape[2], dx : dx + x.shape[3]]
    shape = (len(x), 1, 1, 1)
    contrast = 1 + 0.1 * (2 * torch.rand(shape, generator=gen) - 1)
    brightness = 0.05 * (2 * torch.rand(shape, generator=gen) - 1)
    noise = 0.05 * torch.rand(shape, generator=gen) * torch.randn(x.shape, generator=gen)
    return (x * contrast + brightness + noise).clamp(-1, 1)


def _stroke_augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """`_augment`, then for 70 % of the images a random tone curve u -> sigmoid(4 k (u - t)) on
    intensities u in [0, 1] (steepness k in [1, 5], threshold t in [0.3, 0.7]): soft, wide strokes
    become sharp and thinner or thicker by the threshold. A classifier trained with it reads a
    digit whatever its stroke style, so it still reads a translation whose strokes took the other
    domain's style (8x8 digits upscaled: soft and wide; MNIST: sharp and thin). Keeps [-1, 1]."""
    x = _augment(x, gen)
    shape = (len(x), 1, 1, 1)
    k = 1 + 4 * torch.rand(shape, generator=gen)
    t = 0.3 + 0.4 * torch.rand(shape, generator=gen)
    curved = torch.sigmoid(4 * k * ((x + 1) / 2 - t)) * 2 - 1
    return torch.where(torch.rand(shape, generator=gen) < 0.7, curved, x)


AUGMENTATIONS = {"photometric": _augment, "stroke": _stroke_augment}


def train_classifier(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    epochs: int,
    seed: int,
    device: torch.device,
    augment: str = "photometric",
) -> tuple[SmallClassifier, float]:
    """Train on 90 % of (x in [-1, 1], y) with the named augmentation (`AUGMENTATIONS`: the
    evaluation's "photometric", or "stroke" for CyCADA's semantic classifier); returns the model
    and its accuracy on the other 10 %."""
    aug = AUGMENTATIONS[augment]
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    perm = torch.randperm(len(x), generator=gen)
    n_test = max(1, len(x) // 10)
    test, train = perm[:n_test], perm[n_test:]
    model = SmallClassifier(x.shape[1], num_classes).to(device)
    opt = Adam(model.parameters(), lr=2e-3)
    steps = epochs * max(1, len(train) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    model.train()
    for _ in range(epochs):
        order = train[torch.randperm(len(train), generator=gen)]
        for i in range(0, len(order) - 127, 128):
            idx = order[i : i + 128]
            xb, yb = aug(x[idx], gen).to(device), y[idx].to(device)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    pred = predict(model, x[test], device)[0].argmax(1)
    return model, float((pred == y[test]).float().mean())


@torch.no_grad()
def predict(
    model: SmallClassifier, x: Tensor, device: torch.device, batch: int = 500
) -> tuple[Tensor, Tensor]:
    """(logits, features) for images in [-1, 1], on the CPU."""
    logits, feats = [], []
    for i in range(0, len(x), batch):
        f = model.features(x[i : i + batch].to(device))
        feats.append(f.cpu())
        logits.append(model.head(f).cpu())
    return torch.cat(logits), torch.cat(feats)


def load_or_train(
    path: Path,
    x: Tensor,
    y: Tensor,
    num_classes: int,
    epochs: int,
    seed: int,
    device: torch.device,
    purpose: str = "evaluation",
    augment: str = "photometric",
) -> tuple[SmallClassifier, float]:
    """A cached classifier for this exact real set, or a newly trained (and cached) one;
    `purpose` names it in the message printed while it trains, `augment` is train_classifier's
    (part of what `path` must name)."""
    from gan_cli.checkpoint import cached

    def train() -> dict[str, object]:
        print(f"training the {purpose} classifier on {len(x)} real images (cached at {path}) ...", flush=True)
        model, accuracy = train_classifier(x, y, num_classes, epochs, seed, device, augment)
        return {"weights": model.state_dict(), "accuracy": accuracy}

    state = cached(path, train, lambda v: isinstance(v, dict) and {"weights", "accuracy"} <= v.keys())
    model = SmallClassifier(x.shape[1], num_classes)
    model.load_state_dict(state["weights"])
    return model.to(device).eval(), float(state["accuracy"])
