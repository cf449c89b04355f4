"""Data sets -> endless, seeded, resumable batches of tensors on the training device.

Images are uint8 NCHW until a batch is drawn, then scaled to [-1, 1]; 2-D point sets are float
(N, dim). Labels are int64 or absent. Sets that fit `data.preload_max_mb` are decoded once (image
files: cached next to the data) and served from memory on the device; larger ones stream through
a DataLoader. Stacked MNIST holds its digits and index triples and builds items per batch.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

from gan_cli.data.batches import Batches, LoaderBatches, decode_all
from gan_cli.data.common import DataError, Dataset, keys_of, to_model_range
from gan_cli.data.embedded import digits, fake, mixture, mixture_modes, mnist5k
from gan_cli.data.files import open_image_folder
from gan_cli.data.source import Source
from gan_cli.data.stacked import STACKED, StackedDigits, digit_config, stacked
from gan_cli.data.torchvision_sets import open_torchvision
from gan_cli.schema import DataConfig, Labels

__all__ = [
    "Batches",
    "DataError",
    "Dataset",
    "LoaderBatches",
    "Source",
    "load_dataset",
    "make_batches",
    "mixture_modes",
    "open_source",
    "to_model_range",
]

_EMBEDDED = {"mnist5k": mnist5k, "digits": digits, "ring8": mixture, "grid25": mixture, "fake": fake}


def open_source(cfg: DataConfig) -> Source:
    """The whole set a config names, before selection and batching."""
    name = cfg.name.value
    if name in _EMBEDDED:
        data = _EMBEDDED[name](cfg)
        return Source(length=len(data.x), labels=data.y, num_classes=data.num_classes, arrays=data.x)
    if name == "image_folder":
        return open_image_folder(cfg)
    if cfg.name in STACKED:
        return stacked(cfg, _open_digits(cfg))
    return open_torchvision(cfg)


def _open_digits(cfg: DataConfig) -> Source:
    """The digit set a stacked set draws from; its errors name the stacked set."""
    digits = digit_config(cfg)
    try:
        return open_source(digits)
    except DataError as e:
        text = str(e).removeprefix(f"data={digits.name.value}: ")
        raise DataError(f"data={cfg.name.value} stacks the digits of data={digits.name.value}: {text}") from e


def _rows(arrays: Tensor | StackedDigits, indices: Tensor) -> Tensor | StackedDigits:
    """The selected items of a source's arrays (a lazy stacked set stays lazy)."""
    return arrays.rows(indices) if isinstance(arrays, StackedDigits) else arrays[indices]


def _select(source: Source, cfg: DataConfig) -> tuple[Tensor, Tensor | None]:
    """Indices kept by `data.classes` and `data.subset`, and their (relabelled) labels."""
    name = cfg.name.value
    discovered = cfg.labels == Labels.subfolders and cfg.num_classes == 0  # filled in by the trainer
    if cfg.num_classes != source.num_classes and not discovered:
        raise DataError(
            f"data={name}: data.num_classes={cfg.num_classes}, but the set has {source.num_classes} "
            f"classes; set data.num_classes={source.num_classes}."
        )
    indices = torch.arange(source.length)
    labels = source.labels
    if cfg.classes:
        if labels is None:
            raise DataError(f"data.classes needs labels, but data={name} has none.")
        wanted = torch.tensor(list(cfg.classes))
        bad = [c for c in cfg.classes if not 0 <= c < source.num_classes]
        if bad:
            raise DataError(
                f"data.classes: {bad} are not classes of data={name} (0..{source.num_classes - 1})."
            )
        keep = torch.isin(labels, wanted)
        indices = indices[keep]
        relabel = torch.full((source.num_classes,), -1, dtype=torch.long)
        relabel[wanted] = torch.arange(len(wanted))
        labels = relabel[labels[keep]]
    if cfg.subset and cfg.subset < len(indices):
        pick = torch.randperm(len(indices), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.subset]
        pick = pick.sort().values
        indices = indices[pick]
        labels = labels[pick] if labels is not None else None
    if len(indices) == 0:
        raise DataError(f"data={name}: no items left after data.classes / data.subset.")
    return indices, labels


def _cached_decode(source: Source, indices: Tensor, cfg: DataConfig) -> Tensor:
    """Decode the selected items once; keep the result next to the data for later runs."""
    from gan_cli.checkpoint import cached

    def decode() -> dict[str, object]:
        return {"fingerprint": source.fingerprint, "x": decode_all(source, indices, cfg.num_workers)}

    if not (cfg.cache and source.cache_dir is not None and source.fingerprint):
        return decode()["x"]  # type: ignore[return-value]
    key = hashlib.sha1(f"{source.fingerprint}|{indices.tolist()}".encode()).hexdigest()[:20]
    path = source.cache_dir / ".gan_cli_cache" / f"{cfg.name.value}-{key}.pt"
    fresh = lambda v: v.get("fingerprint") == source.fingerprint and len(v["x"]) == len(indices)  # noqa: E731
    return cached(path, decode, fresh)["x"]


def _item_bytes(cfg: DataConfig) -> int:
    return cfg.channels * cfg.image_size * cfg.image_size


def load_dataset(cfg: DataConfig, section: str = "data") -> Dataset:
    """The selected set, fully decoded in memory (whatever its size). `section` is where `cfg`
    sits in the run's config ("data.a" for a translation domain): DataErrors name its keys."""
    with keys_of(section):
        source = open_source(cfg)
        indices, labels = _select(source, cfg)
        x = (
            _rows(source.arrays, indices)
            if source.arrays is not None
            else _cached_decode(source, indices, cfg)
        )
    return Dataset(x=x, y=labels, num_classes=len(cfg.classes) if cfg.classes else source.num_classes)


def make_batches(
    cfg: DataConfig, batch_size: int, seed: int, device: torch.device, section: str = "data"
) -> tuple[Batches | LoaderBatches, int]:
    """The batch server for a config (in memory when the set fits `data.preload_max_mb`) and the
    number of classes the models see (discovered for `image_folder` with subfolder labels).
    `section` is where `cfg` sits in the run's config ("data.a" for a translation domain):
    DataErrors name its keys."""
    with keys_of(section):
        return _make_batches(cfg, batch_size, seed, device)


def _make_batches(
    cfg: DataConfig, batch_size: int, seed: int, device: torch.device
) -> tuple[Batches | LoaderBatches, int]:
    source = open_source(cfg)
    indices, labels = _select(source, cfg)
    classes = len(cfg.classes) if cfg.classes else source.num_classes
    if source.arrays is not None:
        return Batches(_rows(source.arrays, indices), labels, batch_size, seed, device, cfg.hflip), classes
    if len(indices) * _item_bytes(cfg) <= cfg.preload_max_mb * 2**20:
        x = _cached_decode(source, indices, cfg)
        return Batches(x, labels, batch_size, seed, device, cfg.hflip), classes
    loader = LoaderBatches(source, indices, labels, batch_size, seed, device, cfg.hflip, cfg.num_workers)
    return loader, classes
