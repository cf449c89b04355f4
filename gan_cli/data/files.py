"""Folders of image files (`image_folder`, and CelebA's JPEGs): scanning, labels, decoding."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from gan_cli.data.common import DataError, fit_pil
from gan_cli.data.source import Source
from gan_cli.schema import DataConfig, Labels

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError, SyntaxError)


def read_image_file(path: Path, channels: int, size: int) -> torch.Tensor:
    """Decode one file to uint8 (channels, size, size); a DataError names an unreadable file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's palette/EXIF chatter
            with Image.open(path) as img:
                img.load()
                return fit_pil(img, channels, size)
    except DECODE_ERRORS as e:
        raise DataError(f"{path}: cannot be read as an image ({type(e).__name__}: {e}).") from e


class FileReader:
    """item -> decoded uint8 image; a class (not a lambda) so DataLoader workers can pickle it."""

    def __init__(self, files: list[Path], channels: int, size: int) -> None:
        self.files, self.channels, self.size = files, channels, size

    def __call__(self, i: int) -> torch.Tensor:
        return read_image_file(self.files[i], self.channels, self.size)

    def describe(self, i: int) -> str:
        return str(self.files[i])


def scan_images(root: Path) -> list[Path]:
    """Image files below `root`, recursively, sorted (PNG, JPEG, WebP; any letter case)."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _readable(path: Path) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                img.verify()
        return True
    except DECODE_ERRORS:
        return False


def open_image_folder(cfg: DataConfig) -> Source:
    if not cfg.root:
        raise DataError("data=image_folder: set data.root to a folder of images.")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(f"data=image_folder: data.root={root} is not a folder.")
    files = scan_images(root)
    if not files:
        raise DataError(
            f"data=image_folder: no images in {root} (searched recursively for "
            f"{', '.join(sorted(IMAGE_SUFFIXES))} files)."
        )
    bad = [p for p in files if not _readable(p)]
    if bad and not cfg.skip_bad:
        listed = ", ".join(str(p) for p in bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise DataError(
            f"data=image_folder: {len(bad)} of {len(files)} files in {root} cannot be read as images: "
            f"{listed}. Remove them, or set data.skip_bad=true to skip them."
        )
    if bad:
        print(f"data=image_folder: skipping {len(bad)} unreadable of {len(files)} files in {root}.")
        files = [p for p in files if p not in set(bad)]
    labels, num_classes = None, 0
    if cfg.labels == Labels.subfolders:
        labels, num_classes = _subfolder_labels(root, files)
    stats = hashlib.sha1()
    for p in files:
        st = p.stat()
        stats.update(f"{p.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    fingerprint = f"image_folder:{stats.hexdigest()}:{cfg.labels.value}:{cfg.channels}:{cfg.image_size}"
    return Source(
        length=len(files),
        labels=labels,
        num_classes=num_classes,
        read=FileReader(files, cfg.channels, cfg.image_size),
        fingerprint=fingerprint,
        cache_dir=root,
    )


def _subfolder_labels(root: Path, files: list[Path]) -> tuple[torch.Tensor, int]:
    loose = [p for p in files if p.parent == root]
    if loose:
        raise DataError(
            f"data.labels=subfolders: {len(loose)} images lie directly in {root} (e.g. {loose[0].name}); "
            "each must sit in a class folder (data.root/<class>/...)."
        )
    names = sorted({p.relative_to(root).parts[0] for p in files})
    index = {n: i for i, n in enumerate(names)}
    labels = torch.tensor([index[p.relative_to(root).parts[0]] for p in files], dtype=torch.long)
    return labels, len(names)
