"""The standard sets, read through torchvision's own dataset classes.

Every set reads from `data.root`; with `data.download=false` (the default) a missing or incomplete
set stops with one paragraph naming the folder searched, the files expected and where to get them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan_cli.data.common import DataError, fit_array
from gan_cli.data.files import FileReader
from gan_cli.data.source import Source
from gan_cli.schema import DataConfig

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CELEBA_LISTS = (
    "list_eval_partition.txt",
    "identity_CelebA.txt",
    "list_attr_celeba.txt",
    "list_bbox_celeba.txt",
    "list_landmarks_align_celeba.txt",
)


@dataclass(frozen=True)
class SetInfo:
    folder: str  # below data.root
    files: tuple[str, ...]
    how: str  # where the files come from
    num_classes: int


SETS: dict[str, SetInfo] = {
    "mnist": SetInfo(
        "MNIST/raw",
        MNIST_FILES,
        "the four *-ubyte.gz files of https://ossci-datasets.s3.amazonaws.com/mnist/, gunzipped",
        10,
    ),
    "fashion_mnist": SetInfo(
        "FashionMNIST/raw",
        MNIST_FILES,
        "the four *-ubyte.gz files of http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/, gunzipped",
        10,
    ),
    "cifar10": SetInfo(
        "cifar-10-batches-py",
        (
            "data_batch_1",
            "data_batch_2",
            "data_batch_3",
            "data_batch_4",
            "data_batch_5",
            "test_batch",
            "batches.meta",
        ),
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, extracted into data.root",
        10,
    ),
    "cifar100": SetInfo(
        "cifar-100-python",
        ("train", "test", "meta"),
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz, extracted into data.root",
        100,
    ),
    "svhn": SetInfo(
        ".", ("{split}_32x32.mat",), "http://ufldl.stanford.edu/housenumbers/{split}_32x32.mat", 10
    ),
    "celeba": SetInfo(
        "celeba",
        ("img_align_celeba/", *CELEBA_LISTS),
        "img_align_celeba.zip (extracted) and the five list files of the CelebA Google Drive "
        "(https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html)",
        0,
    ),
}


def _root(cfg: DataConfig) -> Path:
    if not cfg.root:
        raise DataError(f"data={cfg.name.value}: set data.root to the folder that holds (or will hold) it.")
    return Path(cfg.root).expanduser()


def _construct(cfg: DataConfig, root: Path) -> Any:
    from torchvision import datasets

    name, split = cfg.name.value, cfg.split
    train = split == "train"
    if name == "mnist":
        return datasets.MNIST(root, train=train, download=cfg.download)
    if name == "fashion_mnist":
        return datasets.FashionMNIST(root, train=train, download=cfg.download)
    if name == "cifar10":
        return datasets.CIFAR10(root, train=train, download=cfg.download)
    if name == "cifar100":
        return datasets.CIFAR100(root, train=train, download=cfg.download)
    if name == "svhn":
        return datasets.SVHN(root, split=split, download=cfg.download)
    return datasets.CelebA(root, split=split, target_type=[], download=cfg.download)


def open_torchvision(cfg: DataConfig) -> Source:
    """Open a standard set; any failure to find or fetch it is one DataError paragraph."""
    name = cfg.name.value
    info = SETS[name]
    root = _root(cfg)
    try:
        ds = _construct(cfg, root)
    except ValueError as e:  # a bad split name
        raise DataError(f"data={name}: {e} (data.split)") from e
    except Exception as e:  # noqa: BLE001 - torchvision raises RuntimeError, URLError, OSError ...
        raise DataError(_missing_message(cfg, root, info, e)) from e
    if name in ("mnist", "fashion_mnist"):
        x = ds.data[:, None]
        labels = ds.targets.long()
    elif name in ("cifar10", "cifar100"):
        x = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        labels = torch.as_tensor(ds.targets, dtype=torch.long)
    elif name == "svhn":
        x = torch.from_numpy(np.ascontiguousarray(ds.data))
        labels = torch.as_tensor(ds.labels, dtype=torch.long)
    else:
        return _celeba_source(cfg, root, ds)
    return Source(
        length=len(x),
        labels=labels,
        num_classes=info.num_classes,
        arrays=fit_array(x, cfg.channels, cfg.image_size),
    )


def _celeba_source(cfg: DataConfig, root: Path, ds: Any) -> Source:
    folder = root / "celeba" / "img_align_celeba"
    files = [folder / f for f in ds.filename]
    fingerprint = (
        f"celeba:{cfg.split}:{len(files)}:{files[0].name if files else ''}:{cfg.channels}:{cfg.image_size}"
    )
    return Source(
        length=len(files),
        labels=None,
        num_classes=0,
        read=FileReader(files, cfg.channels, cfg.image_size),
        fingerprint=fingerprint,
        cache_dir=root / "celeba",
    )


def _missing_message(cfg: DataConfig, root: Path, info: SetInfo, error: Exception) -> str:
    name = cfg.name.value
    files = ", ".join(f.format(split=cfg.split) for f in info.files)
    how = info.how.format(split=cfg.split)
    folder = (root / info.folder).resolve()
    if cfg.download:
        return (
            f"data={name}: downloading into {root} failed ({type(error).__name__}: "
            f"{str(error).strip().splitlines()[0] if str(error).strip() else 'no detail'}). This machine may "
            f"have no internet access. Get {how} on a machine that has, copy them so that {folder} "
            f"holds {files}, and run with data.download=false."
        )
    return (
        f"data={name}: the data set is missing or incomplete in {root} (data.root; searched {folder}). "
        f"Expected files there: {files}. Get them with data.download=true on a machine with internet "
        f"access, or fetch {how} yourself."
    )
