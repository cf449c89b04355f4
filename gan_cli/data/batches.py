"""Endless, seeded, exactly resumable batches on the training device.

`Batches` serves a data set held in memory (on the device): a batch is an index gather.
`LoaderBatches` serves larger sets through a DataLoader (workers, pinned memory, persistent
workers). Both shuffle each epoch with a permutation from their own CPU generator, drop the
last incomplete batch (BatchNorm dislikes tiny ones), flip horizontally per batch on the device
when asked, and resume exactly from `state_dict`: the generator state that drew the current
permutation, the position in it, and the flip generator.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gan_cli.data.common import DataError, progress_shown, to_model_range
from gan_cli.data.source import Source


class _Epochs:
    """Permutation, position and flips: the part of the state both batch servers share."""

    def __init__(self, length: int, batch_size: int, seed: int, hflip: bool, device: torch.device) -> None:
        if length < batch_size:
            raise DataError(f"the data set has {length} items, fewer than trainer.batch_size={batch_size}")
        self.length, self.batch_size, self.hflip, self.device = length, batch_size, hflip, device
        self.gen = torch.Generator().manual_seed(seed)
        self.flip_gen = torch.Generator().manual_seed(seed + 1)
        self.epoch = -1
        self.pos = 0
        self._new_epoch()

    def _new_epoch(self, pos: int = 0) -> None:
        self.epoch += 1
        self.pos = pos
        self._perm_gen_state = self.gen.get_state()
        self.perm = torch.randperm(self.length, generator=self.gen)
        self._epoch_started()

    def _epoch_started(self) -> None:
        """Hook for subclasses: a new permutation is in `self.perm`, starting at `self.pos`."""

    def _finish(self, x: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor | None]:
        x = to_model_range(x)
        if self.hflip and x.dim() == 4:
            flip = (torch.rand(len(x), generator=self.flip_gen) < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x, y

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "pos": self.pos,
            "perm_gen_state": self._perm_gen_state,
            "flip_gen_state": self.flip_gen.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["perm_gen_state"])
        self.flip_gen.set_state(state["flip_gen_state"])
        self.epoch = state["epoch"] - 1
        self._new_epoch(pos=state["pos"])


class Batches(_Epochs):
    """Batches gathered by index from tensors held on the training device."""

    def __init__(
        self,
        x: Tensor,
        y: Tensor | None,
        batch_size: int,
        seed: int,
        device: torch.device,
        hflip: bool = False,
    ) -> None:
        self.x = x.to(device)
        self.y = y.to(device) if y is not None else None
        super().__init__(len(x), batch_size, seed, hflip, device)

    def _epoch_started(self) -> None:
        self._perm_device = self.perm.to(self.device)

    def next(self) -> tuple[Tensor, Tensor | None]:
        if self.pos + self.batch_size > self.length:
            self._new_epoch()
        idx = self._perm_device[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return self._finish(self.x[idx], self.y[idx] if self.y is not None else None)

    def reference(self, n: int, seed: int) -> Tensor:
        """A fixed random real batch in model range (for the diversity baseline)."""
        idx = torch.randperm(self.length, generator=torch.Generator().manual_seed(seed))[:n]
        return to_model_range(self.x[idx.to(self.device)])


class _Items(torch.utils.data.Dataset):
    """Decodes selected items of a Source; an unreadable item comes back as its error message."""

    def __init__(self, source: Source, indices: Tensor) -> None:
        self.read, self.indices = source.read, indices.tolist()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[Tensor | None, int, str | None]:
        try:
            return self.read(self.indices[k]), k, None  # type: ignore[misc]
        except DataError as e:
            return None, k, str(e)


def collate_items(batch: list[tuple[Tensor | None, int, str | None]]) -> tuple[Tensor, Tensor, list[str]]:
    errors = [err for _, _, err in batch if err]
    if errors:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.long), errors
    return torch.stack([x for x, _, _ in batch]), torch.tensor([k for _, k, _ in batch]), []


def _raise_decode_errors(errors: list[str]) -> None:
    if errors:
        raise DataError(f"{len(errors)} unreadable image(s) in a batch; the first: {errors[0]}")


def decode_all(source: Source, indices: Tensor, num_workers: int) -> Tensor:
    """Decode the selected items into one uint8 tensor, in parallel workers."""
    from tqdm import tqdm

    loader = torch.utils.data.DataLoader(
        _Items(source, indices), batch_size=256, num_workers=num_workers, collate_fn=collate_items
    )
    parts = []
    bar = tqdm(loader, desc="decoding images", unit="batch", leave=False, disable=not progress_shown())
    for x, _, errors in bar:
        _raise_decode_errors(errors)
        parts.append(x)
    return torch.cat(parts)


class _EpochSampler:
    """Index batches of the current permutation from the current position (main process)."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.perm: list[int] = []
        self.start = 0

    def __iter__(self):
        for i in range(self.start, len(self.perm) - self.batch_size + 1, self.batch_size):
            yield self.perm[i : i + self.batch_size]

    def __len__(self) -> int:
        return max(0, (len(self.perm) - self.start) // self.batch_size)


class LoaderBatches(_Epochs):
    """Batches decoded by DataLoader workers, for sets too large to hold in memory."""

    def __init__(
        self,
        source: Source,
        indices: Tensor,
        labels: Tensor | None,
        batch_size: int,
        seed: int,
        device: torch.device,
        hflip: bool,
        num_workers: int,
    ) -> None:
        self.source, self.indices = source, indices
        self.labels = labels.to(device) if labels is not None else None
        self.sampler = _EpochSampler(batch_size)
        self.loader = torch.utils.data.DataLoader(
            _Items(source, indices),
            batch_sampler=self.sampler,
            num_workers=num_workers,
            collate_fn=collate_items,
            pin_memory=device.type == "cuda",
            persistent_workers=num_workers > 0,
            prefetch_factor=4 if num_workers > 0 else None,
        )
        self._it = None
        super().__init__(len(indices), batch_size, seed, hflip, device)

    def _epoch_started(self) -> None:
        self.sampler.perm = self.perm.tolist()
        self.sampler.start = self.pos
        self._it = iter(self.loader)

    def next(self) -> tuple[Tensor, Tensor | None]:
        try:
            x, k, errors = next(self._it)  # type: ignore[arg-type]
        except StopIteration:
            self._new_epoch()
            x, k, errors = next(self._it)  # type: ignore[arg-type]
        _raise_decode_errors(errors)
        self.pos += self.batch_size
        x = x.to(self.device, non_blocking=True)
        y = self.labels[k.to(self.device)] if self.labels is not None else None
        return self._finish(x, y)

    def reference(self, n: int, seed: int) -> Tensor:
        idx = torch.randperm(self.length, generator=torch.Generator().manual_seed(seed))[:n]
        x, _, errors = collate_items([_Items(self.source, self.indices)[int(i)] for i in idx])
        _raise_decode_errors(errors)
        return to_model_range(x.to(self.device))
