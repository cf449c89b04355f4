"""Folders of image files (`image_folder`, and CelebA's JPEGs): scanning, labels, decoding.

A folder is read as a file browser shows it: recursively, hidden files and folders (names starting
with ".") left out, links to folders followed. Every image file is decoded once at start-up, in
`data.num_workers` processes, to what a viewer shows (`common.as_displayed`); files that fail are named
(or skipped, with a count, under `data.skip_bad=true`). The verdicts are kept in
`<data.root>/.gan_cli_cache/scan.pt`, keyed by each file's size and modification time, so a second
start decodes only new or changed files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path

import PIL
import torch
from PIL import Image

from gan_cli.checkpoint import save_atomic
from gan_cli.data.common import DataError, ImageCms, as_displayed, fit_pil, progress_shown
from gan_cli.data.source import Source
from gan_cli.schema import DataConfig, Labels

# what Pillow decodes among the formats a file browser shows as pictures (any letter case): PNG, JPEG,
# WebP, BMP, GIF, TIFF, Netpbm (PBM/PGM/PPM/PNM), TGA, JPEG 2000, QOI; HEIC (without a plugin) and
# AVIF (in a Pillow built without libavif) are scanned too, so that they are named as unreadable
# rather than silently left out
IMAGE_SUFFIXES = set(
    (
        ".png .apng .jpg .jpeg .jpe .jfif .webp .bmp .dib .gif .tif .tiff .pbm .pgm .ppm .pnm .tga "
        ".jp2 .j2k .jpf .jpx .qoi .avif .heic .heif"
    ).split()
)
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError)
# what decoded pixels and scan verdicts depend on besides the files: cached ones from another decoder
# (or older rules here) are not reused
DECODER = f"decode-2:pillow-{PIL.__version__}:cms-{ImageCms is not None}"


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    # a file object, not a name: Pillow (13.0) memory-maps an uncompressed file opened by name, and then
    # lays out a TIFF that its Orientation tag (5-8) turns on its side at the turned size: garbled pixels
    with warnings.catch_warnings(), open(path, "rb") as f:
        warnings.simplefilter("ignore")  # PIL's palette/EXIF chatter
        with Image.open(f) as img:
            yield img


def decode_image_file(path: Path) -> Image.Image:
    """The 8-bit "L" or "RGB" image a viewer shows for a file; raises one of DECODE_ERRORS."""
    with _opened(path) as img:
        shown = as_displayed(img)
        return shown.copy() if shown is img else shown  # closing the file may drop its pixels


def read_image_file(path: Path, channels: int, size: int) -> torch.Tensor:
    """Decode one file to uint8 (channels, size, size); a DataError names an unreadable file."""
    try:
        with _opened(path) as img:
            return fit_pil(img, channels, size)
    except DECODE_ERRORS as e:
        raise DataError(f"{_shown(path)}: cannot be read as an image ({type(e).__name__}: {e}).") from e


def check_image_file(path: Path) -> str:
    """Why `path` cannot be decoded completely (a truncated file fails), or "" when it can."""
    try:
        with _opened(path) as img:
            as_displayed(img)
        return ""
    except DECODE_ERRORS as e:
        return f"{type(e).__name__}: {e}"


class FileReader:
    """item -> decoded uint8 image; a class (not a lambda) so DataLoader workers can pickle it."""

    def __init__(self, files: list[Path], channels: int, size: int) -> None:
        self.files, self.channels, self.size = files, channels, size

    def __call__(self, i: int) -> torch.Tensor:
        return read_image_file(self.files[i], self.channels, self.size)

    def describe(self, i: int) -> str:
        return _shown(self.files[i])


def scan_images(root: Path) -> list[Path]:
    """Image files below `root` (by suffix, any letter case), sorted; see `walk_images`."""
    return walk_images(root)[0]


def walk_images(root: Path) -> tuple[list[Path], dict[Path, str]]:
    """Image files below `root` as a file browser shows them, sorted, and the folders that could not
    be listed (-> why). Hidden files and folders (".name": macOS `._x.jpg`, `.ipynb_checkpoints`, our
    own `.gan_cli_cache`) are left out. Links to folders are followed (as torchvision's ImageFolder
    does; `Path.rglob` does not), except a link back to a folder above it. A link to a missing file
    is listed, so that the scan names it."""
    files: list[Path] = []
    failed: dict[Path, str] = {}
    chains = {str(root): (os.path.realpath(root),)}

    def listing_failed(e: OSError) -> None:
        failed[Path(e.filename)] = f"{type(e).__name__}: {e.strerror}"

    for folder, dirs, names in os.walk(root, onerror=listing_failed, followlinks=True):
        chain = chains.pop(folder)
        kept = []
        for d in dirs:
            real = os.path.realpath(os.path.join(folder, d))
            if not d.startswith(".") and real not in chain:
                chains[os.path.join(folder, d)] = (*chain, real)
                kept.append(d)
        dirs[:] = kept
        for name in names:
            path = os.path.join(folder, name)
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
                continue
            if os.path.isfile(path) or (os.path.islink(path) and not os.path.exists(path)):
                files.append(Path(path))
    return sorted(files), failed


class _Checks(torch.utils.data.Dataset):
    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> str:
        return check_image_file(self.files[i])


def check_image_files(files: list[Path], num_workers: int) -> list[str]:
    """`check_image_file` of each file, in `num_workers` DataLoader worker processes."""
    from tqdm import tqdm

    if not files:
        return []
    workers = num_workers if len(files) >= 256 else 0  # starting workers costs more than a few decodes
    loader = torch.utils.data.DataLoader(_Checks(files), batch_size=64, num_workers=workers, collate_fn=list)
    reasons: list[str] = []
    for part in tqdm(loader, desc="checking images", unit="batch", leave=False, disable=not progress_shown()):
        reasons += part
    return reasons


def _scan_verdicts(
    root: Path, files: list[Path], stats: dict[Path, tuple[int, int]], cfg: DataConfig
) -> dict[Path, str]:
    """file -> why it is unreadable ("" when readable); kept for the next start when `data.cache`."""
    path = root / ".gan_cli_cache" / "scan.pt"
    known: dict[str, list] = {}
    if cfg.cache and path.is_file():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if stored.get("version") == DECODER:
                known = stored["files"]
        except Exception:  # noqa: BLE001 - an unreadable cache only costs a fresh scan
            known = {}
    rel = {p: _shown(p.relative_to(root)) for p in files}
    todo = [p for p in files if known.get(rel[p], [None, None])[:2] != list(stats[p])]
    fresh = dict(zip(todo, check_image_files(todo, cfg.num_workers), strict=True))
    verdicts = {p: fresh[p] if p in fresh else known[rel[p]][2] for p in files}
    if cfg.cache and (todo or len(known) != len(files)):
        entries = {rel[p]: [*stats[p], verdicts[p]] for p in files}
        try:
            save_atomic({"version": DECODER, "files": entries}, path)
        except OSError as e:
            print(f"note: could not keep the image scan in {path} ({e}); it will be done again next time.")
    return verdicts


def open_image_folder(cfg: DataConfig) -> Source:
    if not cfg.root:
        raise DataError("data=image_folder: set data.root to a folder of images.")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(f"data=image_folder: data.root={root} is not a folder.")
    files, bad = walk_images(root)
    if not files and not bad:
        raise DataError(
            f"data=image_folder: no images in {root} (searched recursively for "
            f"{', '.join(sorted(IMAGE_SUFFIXES))} files)."
        )
    total = len(files) + len(bad)
    stats: dict[Path, tuple[int, int]] = {}
    for p in files:
        try:
            st = p.stat()
            stats[p] = (st.st_size, st.st_mtime_ns)
        except OSError as e:  # a link to a missing file
            bad[p] = f"{type(e).__name__}: {e.strerror}"
    files = [p for p in files if p in stats]
    for p, reason in _scan_verdicts(root, files, stats, cfg).items():
        if reason:
            bad[p] = reason
    if bad and not cfg.skip_bad:
        listed = "; ".join(f"{_shown(p)} ({why})" for p, why in sorted(bad.items())[:10])
        more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise DataError(
            f"data=image_folder: {len(bad)} of {total} files in {root} cannot be read as images: "
            f"{listed}{more}. Remove them, or set data.skip_bad=true to skip them."
        )
    if bad:
        first = min(bad)
        print(
            f"data=image_folder: skipping {len(bad)} unreadable of {total} files in {root} "
            f"(e.g. {_shown(first)}: {bad[first]})."
        )
        files = [p for p in files if p not in bad]
    if not files:
        raise DataError(f"data=image_folder: none of the {total} image files in {root} can be read.")
    labels, num_classes = None, 0
    if cfg.labels == Labels.subfolders:
        labels, num_classes = _subfolder_labels(root, files)
    digest = hashlib.sha1()
    for p in files:
        digest.update(f"{_shown(p.relative_to(root))}:{stats[p][0]}:{stats[p][1]}\n".encode())
    fingerprint = (
        f"image_folder:{DECODER}:{digest.hexdigest()}:{cfg.labels.value}:{cfg.channels}:{cfg.image_size}"
    )
    return Source(
        length=len(files),
        labels=labels,
        num_classes=num_classes,
        read=FileReader(files, cfg.channels, cfg.image_size),
        fingerprint=fingerprint,
        cache_dir=root,
    )


def _shown(path: Path) -> str:
    """A path as text that any terminal prints and UTF-8 encodes (file names need not be valid
    UTF-8: their other bytes appear as \\xNN)."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _subfolder_labels(root: Path, files: list[Path]) -> tuple[torch.Tensor, int]:
    loose = [p for p in files if p.parent == root]
    if loose:
        raise DataError(
            f"data.labels=subfolders: {len(loose)} images lie directly in {root} (e.g. {_shown(loose[0])}); "
            "each must sit in a class folder (data.root/<class>/...)."
        )
    names = sorted({p.relative_to(root).parts[0] for p in files})
    index = {n: i for i, n in enumerate(names)}
    labels = torch.tensor([index[p.relative_to(root).parts[0]] for p in files], dtype=torch.long)
    return labels, len(names)
