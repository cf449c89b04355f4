"""The standard sets, read through torchvision's own dataset classes.

Every set reads from `data.root`. When torchvision refuses a set, one DataError paragraph names each
file that fails one of torchvision's own checks (missing; an md5 other than the one in torchvision's
class attributes; MNIST and FashionMNIST check only that a file exists) and what to do: re-download
that file (from the URL named), run with `data.download=true`, or, where only checksums fail, read the
files as they are with `data.verify=false` (the md5 checks are skipped, with a warning).
"""

from __future__ import annotations

import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan_cli.data.common import DataError, fit_array
from gan_cli.data.files import FileReader
from gan_cli.data.source import Source
from gan_cli.schema import DataConfig

GOOGLE_DRIVE = "https://drive.google.com/uc?id="


@dataclass(frozen=True)
class SetInfo:
    torchvision_class: str  # in torchvision.datasets
    splits: tuple[str, ...]  # valid values of data.split
    num_classes: int
    how: str  # where the whole set comes from, for a set that is not there at all


SETS: dict[str, SetInfo] = {
    "mnist": SetInfo(
        "MNIST",
        ("train", "test"),
        10,
        "the four *-ubyte.gz files of https://ossci-datasets.s3.amazonaws.com/mnist/, gunzipped",
    ),
    "fashion_mnist": SetInfo(
        "FashionMNIST",
        ("train", "test"),
        10,
        "the four *-ubyte.gz files of http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/, gunzipped",
    ),
    "cifar10": SetInfo(
        "CIFAR10",
        ("train", "test"),
        10,
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, extracted into data.root",
    ),
    "cifar100": SetInfo(
        "CIFAR100",
        ("train", "test"),
        100,
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz, extracted into data.root",
    ),
    "svhn": SetInfo(
        "SVHN", ("train", "test", "extra"), 10, "http://ufldl.stanford.edu/housenumbers/{split}_32x32.mat"
    ),
    "celeba": SetInfo(
        "CelebA",
        ("train", "valid", "test", "all"),
        0,
        "img_align_celeba.zip (extracted) and the five list files of the CelebA Google Drive "
        "(https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html)",
    ),
}


@dataclass(frozen=True)
class SetFile:
    """One file (or, with a trailing /, folder) that torchvision checks before it reads a set."""

    name: str  # below the set's folder
    md5: str | None  # torchvision's expected md5; None: it checks only that the file exists
    source: str  # where to get it again


def _tv_class(name: str) -> Any:
    from torchvision import datasets

    return getattr(datasets, SETS[name].torchvision_class)


def set_files(cfg: DataConfig, root: Path) -> tuple[Path, list[SetFile]]:
    """The folder torchvision reads a set from and the files it checks there, with the md5s and URLs
    of torchvision's own class attributes (`train_list`, `test_list`, `meta`, `split_list`,
    `file_list`, `resources`)."""
    name = cfg.name.value
    cls = _tv_class(name)
    if name in ("cifar10", "cifar100"):
        folder = root / cls.base_folder
        source = f"{cls.url} (extract it into data.root)"
        listed = [*cls.train_list, *cls.test_list, [cls.meta["filename"], cls.meta["md5"]]]
        return folder, [SetFile(f, md5, source) for f, md5 in listed]
    if name == "svhn":
        url, filename, md5 = cls.split_list[cfg.split]
        return root, [SetFile(filename, md5, url)]
    if name == "celeba":
        folder = root / cls.base_folder
        files = []
        for file_id, md5, filename in cls.file_list:
            if filename.endswith(".zip"):  # torchvision checks the extracted folder, not the archive
                files.append(
                    SetFile("img_align_celeba/", None, f"{GOOGLE_DRIVE}{file_id} ({filename}, extracted)")
                )
            else:
                files.append(SetFile(filename, md5, f"{GOOGLE_DRIVE}{file_id}"))
        return folder, files
    folder = root / cls.__name__ / "raw"
    return folder, [
        SetFile(gz[: -len(".gz")], None, f"{cls.mirrors[0]}{gz} (gunzipped)") for gz, _ in cls.resources
    ]


def _unverified(cls: Any) -> Any:
    """A subclass of a torchvision set class that checks only that its files exist: the same
    checks with every md5 set to None (torchvision's `check_integrity(path, None)`)."""
    if hasattr(cls, "train_list"):  # CIFAR10 / CIFAR100
        attrs = {
            "train_list": [[f, None] for f, _ in cls.train_list],
            "test_list": [[f, None] for f, _ in cls.test_list],
            "meta": {**cls.meta, "md5": None},
        }
    elif hasattr(cls, "split_list"):  # SVHN
        attrs = {"split_list": {k: [url, f, None] for k, (url, f, _) in cls.split_list.items()}}
    else:  # CelebA
        attrs = {"file_list": [(i, None, f) for i, _, f in cls.file_list]}
    return type(f"Unverified{cls.__name__}", (cls,), attrs)


def _root(cfg: DataConfig) -> Path:
    if not cfg.root:
        raise DataError(f"data={cfg.name.value}: set data.root to the folder that holds (or will hold) it.")
    return Path(cfg.root).expanduser()


def _construct(cfg: DataConfig, root: Path) -> Any:
    name, split = cfg.name.value, cfg.split
    cls = _tv_class(name)
    if not cfg.verify and name not in ("mnist", "fashion_mnist"):  # MNIST checks no checksums anyway
        cls = _unverified(cls)
    if name in ("svhn", "celeba"):
        kwargs = {"target_type": []} if name == "celeba" else {}
        return cls(root, split=split, download=cfg.download, **kwargs)
    return cls(root, train=split == "train", download=cfg.download)


def open_torchvision(cfg: DataConfig) -> Source:
    """Open a standard set; any failure to find, fetch or read it is one DataError paragraph."""
    name = cfg.name.value
    info = SETS[name]
    root = _root(cfg)
    if cfg.split not in info.splits:
        raise DataError(
            f"data={name}: data.split={cfg.split} is not a split of it; valid: {', '.join(info.splits)}."
        )
    if not cfg.verify and name not in ("mnist", "fashion_mnist"):
        print(
            f"Warning: data.verify=false: data={name} is read from {set_files(cfg, root)[0]} without "
            "torchvision's md5 checks; a damaged file may give wrong images or fail to load.",
            file=sys.stderr,
            flush=True,
        )
    try:
        ds = _construct(cfg, root)
    except Exception as e:  # noqa: BLE001 - torchvision raises RuntimeError, URLError, OSError, pickle errors ...
        raise DataError(failure_message(cfg, root, e)) from e
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


# ---- what is wrong, and what to do ----------------------------------------------------------------
def file_problem(folder: Path, f: SetFile, verify: bool) -> str | None:
    """Which of torchvision's checks `f` fails ("missing", or its md5 with its size), or None."""
    from torchvision.datasets.utils import calculate_md5

    path = folder / f.name
    if f.name.endswith("/"):
        return None if path.is_dir() else "missing"
    if not path.is_file():
        return "missing" if not path.exists() else "a folder, not a file"
    if f.md5 and verify:
        actual = calculate_md5(path)
        if actual != f.md5:
            return f"wrong md5 {actual} ({path.stat().st_size:,} bytes), expected {f.md5}"
    return None


def _content_problem(name: str, path: Path) -> str | None:
    """Why a file that passed the checks cannot be read (MNIST's IDX header, CIFAR's pickle, CelebA's
    text lists), or None."""
    if name in ("mnist", "fashion_mnist") and path.is_file():
        data = path.read_bytes()
        dims = 3 if "images" in path.name else 1
        magic, wanted = int.from_bytes(data[:4], "big"), 0x0800 | dims  # uint8, `dims` dimensions
        if len(data) < 4 + 4 * dims or magic != wanted:
            return f"not an IDX file of {dims}-D uint8 data (magic {magic:#010x}, expected {wanted:#010x})"
        shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
        expected = 4 + 4 * dims + int(np.prod(shape))
        if len(data) != expected:
            return f"cut short or padded: {len(data):,} bytes, its header {shape} needs {expected:,}"
    if name == "celeba" and path.suffix == ".txt" and path.is_file():
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            return f"cannot be read as text ({type(e).__name__}: {e})"
    if name in ("cifar10", "cifar100") and path.is_file():
        try:
            with open(path, "rb") as fh:
                pickle.load(fh, encoding="latin1")
        except Exception as e:  # noqa: BLE001 - a damaged pickle raises almost anything
            return f"cannot be read ({type(e).__name__}: {str(e).strip() or 'no detail'})"
    return None


def failure_message(cfg: DataConfig, root: Path, error: Exception) -> str:
    """The DataError paragraph for a set torchvision refused: each failing file, its check, and what
    to do."""
    name = cfg.name.value
    folder, expected = set_files(cfg, root)
    problems = [(f, p) for f in expected if (p := file_problem(folder, f, cfg.verify))]
    if not problems:
        problems = [(f, p) for f in expected if (p := _content_problem(name, folder / f.name))]
    detail = str(error).strip().splitlines()[0] if str(error).strip() else "no detail"
    listing = "; ".join(f"{f.name}: {p}" for f, p in problems)
    if cfg.download:
        how = SETS[name].how.format(split=cfg.split)
        files = ", ".join(f.name for f in expected)
        there = f" Files there that fail torchvision's checks: {listing}." if problems else ""
        return (
            f"data={name}: downloading into {root} failed ({type(error).__name__}: {detail}). This machine "
            f"may have no internet access. Get {how} on a machine that has, copy them so that {folder} "
            f"holds {files}, and run with data.download=false.{there}"
        )
    if not problems:
        unchecked = (
            " data.verify=false skipped the md5 checks that would name a damaged file: run once with "
            "data.verify=true to see which files differ from torchvision's checksums."
            if not cfg.verify and any(f.md5 for f in expected)
            else ""
        )
        return (
            f"data={name}: torchvision could not read the set in {folder} (data.root={root}), though "
            f"every file it checks is there ({type(error).__name__}: {detail}).{unchecked}"
        )
    if len(problems) == len(expected) and all(p == "missing" for _, p in problems):
        how = SETS[name].how.format(split=cfg.split)
        return (
            f"data={name}: the data set is not in {folder} (data.root={root}). Expected files there: "
            f"{', '.join(f.name for f in expected)}. Get them with data.download=true on a machine with "
            f"internet access, or fetch {how} yourself."
        )
    sources: dict[str, list[str]] = {}
    for f, _ in problems:
        sources.setdefault(f.source, []).append(f.name)
    fetch = "; ".join(f"{', '.join(names)} from {source}" for source, names in sources.items())
    trust = ""
    if any(p.startswith("wrong md5") for _, p in problems):
        trust = " If you trust the files as they are, skip the md5 checks with data.verify=false"
        trust += " (missing files are needed either way)." if "missing" in dict(problems).values() else "."
    which = f"{len(problems)} of the {len(expected)} files" if len(expected) > 1 else "the one file"
    return (
        f"data={name}: {which} torchvision checks in {folder} (data.root={root}) "
        f"{'fail' if len(problems) > 1 else 'fails'}: {listing}. Re-download {fetch}, or run with "
        f"data.download=true on a machine with internet access.{trust}"
    )
