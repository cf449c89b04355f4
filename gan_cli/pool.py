"""A pool of past generated images for the discriminator (Shrivastava et al. 2017; CycleGAN's
"image buffer"): D is updated on a history of fakes, not only the latest generator's, which damps
the oscillation between G and D.

The first `size` images are stored and passed through; after that each new image is, with
probability 1/2, swapped for a random stored one (which D sees instead), else passed through.
Random draws come from the pool's own generator, so a resumed run continues it exactly. Each slot
remembers when its image came in, so that a run resumed with a smaller `trainer.pool_size` keeps
the newest of the saved images.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class ImagePool:
    def __init__(self, size: int, seed: int, device: torch.device) -> None:
        self.size = size
        self.count = 0
        self.images: Tensor | None = None  # (size, C, H, W), filled up to `count`
        self.stamps = torch.zeros(size, dtype=torch.long)  # per slot: the number of its image's arrival
        self.seen = 0  # images queried so far
        self.gen = torch.Generator().manual_seed(seed)
        self.device = device

    @torch.no_grad()
    def query(self, images: Tensor) -> Tensor:
        """(N, C, H, W) new fakes -> (N, C, H, W) fakes for D, each new or from the history."""
        if self.size == 0:
            return images
        images = images.detach()
        if self.images is None:
            self.images = torch.empty(
                (self.size, *images.shape[1:]), dtype=images.dtype, device=images.device
            )
        out = images.clone()
        for i in range(len(images)):
            if self.count < self.size:
                self.images[self.count] = images[i]
                self.stamps[self.count] = self.seen
                self.count += 1
            elif float(torch.rand((), generator=self.gen)) > 0.5:
                j = int(torch.randint(self.size, (), generator=self.gen))
                out[i] = self.images[j]
                self.images[j] = images[i]
                self.stamps[j] = self.seen
            self.seen += 1
        return out

    def state_dict(self) -> dict[str, Any]:
        stored = self.images[: self.count].cpu() if self.images is not None else None
        stamps = self.stamps[: self.count].clone()
        return {
            "count": self.count,
            "images": stored,
            "stamps": stamps,
            "seen": self.seen,
            "gen": self.gen.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue a saved pool. A pool saved larger than this one's `size` keeps its `size`
        newest images (a checkpoint without arrival stamps: its last slots, the newest while the
        pool was filling); a smaller saved pool fills up from where it stopped."""
        self.gen.set_state(state["gen"])
        stored = state["images"]
        if stored is None or self.size == 0:
            self.images, self.count, self.seen = None, 0, 0
            return
        stored = stored[: int(state["count"])]
        stamps = state.get("stamps")
        stamps = torch.arange(len(stored)) if stamps is None else stamps[: len(stored)].long()
        if len(stored) > self.size:
            keep = stamps.argsort(stable=True)[-self.size :].sort().values
            stored, stamps = stored[keep], stamps[keep]
        self.count = len(stored)
        self.seen = int(state.get("seen", int(stamps.max()) + 1 if len(stamps) else 0))
        self.stamps.zero_()
        self.stamps[: self.count] = stamps
        self.images = torch.empty((self.size, *stored.shape[1:]), dtype=stored.dtype, device=self.device)
        self.images[: self.count] = stored.to(self.device)
