"""The standard FID Inception network (TensorFlow's 2015-12-05 graph, as ported by torch-fidelity),
from a local file or torch's hub cache: never downloaded behind the user's back."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from gan_cli.errors import UserError

WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"


class EvalError(UserError, RuntimeError):
    """An evaluation cannot run; the message says what is missing and how to get it."""


def hub_cache_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_URL.rsplit("/", 1)[1]


def find_weights(path: str | None) -> Path:
    """Preflight: the weights file to use, or an EvalError naming what to download and where."""
    candidate = Path(path).expanduser() if path else hub_cache_path()
    if not candidate.is_file():
        where = f"eval.inception_weights={path} does not exist" if path else f"{candidate} does not exist"
        raise EvalError(
            f"metrics fid, kid, is and pr need the standard Inception weights, and {where}. Download "
            f"{WEIGHTS_URL} and put it at {hub_cache_path()} (torch's hub cache), or anywhere and pass "
            "eval.inception_weights=<path>. Offline, use metrics=[classifier] or [modes2d]."
        )
    try:
        state = torch.load(candidate, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same answer
        raise EvalError(f"{candidate}: not a readable weights file ({type(e).__name__}).") from e
    if not isinstance(state, dict) or "Mixed_7c.branch_pool.conv.weight" not in state:
        raise EvalError(f"{candidate}: not the FID Inception weights ({WEIGHTS_URL}).")
    return candidate


class InceptionFeatures:
    """uint8 RGB images -> (pool features (N, 2048), logits (N, 1008))."""

    name = "inception-v3-compat"

    def __init__(self, weights: Path, device: torch.device) -> None:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        # the file passed the weights_only check above, so torch-fidelity's own load is safe
        self.net = (
            FeatureExtractorInceptionV3(
                self.name, ["2048", "logits_unbiased"], feature_extractor_weights_path=str(weights)
            )
            .to(device)
            .eval()
        )
        self.device = device

    @torch.no_grad()
    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor]:
        pool, logits = self.net(x.to(self.device))
        return pool.float().cpu(), logits.float().cpu()
