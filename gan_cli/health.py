"""Health of the game: windowed metrics accumulated on the device, and named warnings.

Per step the trainer adds a handful of scalars into one device tensor (no host sync); every
`trainer.log_every` steps `HealthMonitor.summarise` reads it back once and turns it into the
metrics of DESIGN.md and the warnings that hold for that window.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gan_cli.models.norm import batchnorm_layers
from gan_cli.schema import HealthConfig

# order of the per-step values accumulated on the device
FIELDS = ("loss/d", "loss/g", "d/real", "d/fake", "grad_norm/d", "grad_norm/g")

# a game's discriminators: (label, field of mean sigmoid(D(real)), field of mean sigmoid(D(fake)))
GAN_DISCRIMINATORS = (("D", "d/real", "d/fake"),)

WARNING_TEXT = {
    "OVERPOWERS": "{label} separates real from fake almost perfectly (real > {overpower_real}, "
    "fake < {overpower_fake}); its generator gets vanishing gradients. Try a lower optim.lr_d, label "
    "smoothing or fewer D steps (after loss=minimax: loss=nonsaturating or hinge); a small data set "
    "that D memorises: trainer.diffaugment=[translation] or loss.r1_gamma.",
    "FAILING": "{label} scores real data below {failing_real} on average: it is losing the game. "
    "Try a higher optim.lr_d or a smaller optim.lr_g.",
    "G_COLLAPSE": "the diversity of fixed-noise samples fell below {collapse_ratio} of a real "
    "batch's: G may be collapsing onto few modes. Try a lower optim.lr_g or another loss.",
    "NON_FINITE": "a loss or gradient norm became NaN or inf; under trainer.on_nonfinite=skip those "
    "updates were dropped.",
}


def mean_pairwise_distance(x: Tensor) -> Tensor:
    """Mean L2 distance over all pairs of samples (flattened); 0 for identical samples."""
    flat = x.detach().float().flatten(1)
    return torch.pdist(flat).mean() if len(flat) > 1 else flat.new_zeros(())


@contextlib.contextmanager
def frozen_buffers(module: nn.Module) -> Iterator[None]:
    """Run a module without leaving a trace in its buffers (BatchNorm running statistics), so
    that looking at G never changes the training state. BatchNorm layers run with momentum 0
    (their statistics stay bit for bit) instead of being restored afterwards: autograd keeps
    them for the backward pass, so the block may build a graph that is differentiated later."""
    norms = batchnorm_layers(module)
    momenta = [m.momentum for m in norms]
    kept = {id(m.running_mean) for m in norms} | {id(m.running_var) for m in norms}
    saved = [(b, b.clone()) for b in module.buffers() if id(b) not in kept]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        with torch.no_grad():
            for b, s in saved:
                if not torch.equal(b, s):  # an untouched buffer keeps its autograd version
                    b.copy_(s)


@dataclass
class Summary:
    step: int
    metrics: dict[str, float]
    warnings: list[str]
    first_nonfinite_step: int  # -1 when every loss of the window was finite
    nonfinite_losses: list[str]  # the losses that were NaN or inf at that step


class HealthMonitor:
    """Window accumulator of a game's per-step `fields` (GAN: FIELDS) and the warnings they raise.
    NaN or inf in a loss (`loss/*`), or in a gradient norm (`grad_norm/*`) where `watch_grads` (not
    under fp16, whose GradScaler expects and drops inf gradients), marks the window non-finite.
    `discriminators` name the (real, fake) probability fields of each D for its warnings."""

    def __init__(
        self,
        cfg: HealthConfig,
        probabilistic: bool,
        device: torch.device,
        watch_grads: bool = True,
        fields: tuple[str, ...] = FIELDS,
        discriminators: tuple[tuple[str, str, str], ...] = GAN_DISCRIMINATORS,
    ) -> None:
        self.cfg = cfg
        self.probabilistic = probabilistic
        self.device = device
        self.fields = fields
        self.discriminators = discriminators
        prefixes = ("loss/", "grad_norm/") if watch_grads else ("loss/",)
        self.watched = [i for i, k in enumerate(fields) if k.startswith(prefixes)]
        self.reset()

    def reset(self) -> None:
        self.acc = torch.zeros(len(self.fields), device=self.device, dtype=torch.float64)
        self.steps = 0
        # per watched field: the first step of the window at which it was NaN or inf, else -1
        self.first_bad = torch.full((len(self.watched),), -1, device=self.device, dtype=torch.long)

    def add(self, step: int, values: Tensor) -> None:
        """Accumulate one step's FIELDS (a 1-D device tensor) without synchronising."""
        values = values.detach().to(torch.float64)
        bad = ~torch.isfinite(values[self.watched])
        self.first_bad = torch.where(bad & (self.first_bad < 0), step, self.first_bad)
        self.acc += values
        self.steps += 1

    def nonfinite(self) -> tuple[int, list[str]]:
        """(first step of the window with a non-finite watched value, the values non-finite then),
        or (-1, []) (synchronises)."""
        per_field = self.first_bad.tolist()
        bad = [s for s in per_field if s >= 0]
        if not bad:
            return -1, []
        names = [self.fields[self.watched[i]] for i, s in enumerate(per_field) if s == min(bad)]
        losses = [n for n in names if n.startswith("loss/")]
        return min(bad), losses or names  # a NaN loss makes NaN gradients: name the cause

    def summarise(self, step: int, diversity: float | dict[str, float] | None) -> Summary:
        """Window means, diversity (one value, or several `diversity*` metrics) and the warnings
        they raise; starts the next window."""
        means = (self.acc / max(self.steps, 1)).tolist()
        metrics = dict(zip(self.fields, means, strict=True))
        if isinstance(diversity, dict):
            metrics.update(diversity)
        elif diversity is not None:
            metrics["diversity"] = diversity
        first_bad, bad_losses = self.nonfinite()
        warnings = self._warnings(metrics, first_bad, step)
        self.reset()
        return Summary(step, metrics, warnings, first_bad, bad_losses)

    def _warnings(self, m: dict[str, float], first_bad: int, step: int) -> list[str]:
        c = self.cfg
        out = []
        if first_bad >= 0:
            out.append("NON_FINITE")
        if step <= c.warmup:
            return out
        for label, real, fake in self.discriminators if self.probabilistic else ():
            if m[real] > c.overpower_real and m[fake] < c.overpower_fake:
                out.append(f"{label}_OVERPOWERS")
        for label, real, _ in self.discriminators if self.probabilistic else ():
            if m[real] < c.failing_real:
                out.append(f"{label}_FAILING")
        if any(k.startswith("diversity") and v < c.collapse_ratio for k, v in m.items()):
            out.append("G_COLLAPSE")
        return out

    def explain(self, name: str) -> str:
        label, _, kind = (
            name.rpartition("_") if name.endswith(("_OVERPOWERS", "_FAILING")) else ("", "", name)
        )
        return WARNING_TEXT[kind].format(label=label, **vars(self.cfg))

    def state_dict(self) -> dict[str, Any]:
        return {"acc": self.acc, "steps": self.steps, "first_bad": self.first_bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["acc"]) != len(self.fields):  # other fields (trainer.ada switched): a fresh window
            return
        self.acc = state["acc"].to(self.device)
        self.steps = int(state["steps"])
        first_bad = state["first_bad"].to(self.device)
        if len(first_bad) == len(self.watched):  # else written when fewer fields were watched: saved
            self.first_bad = first_bad  # states are finite, so -1 throughout
