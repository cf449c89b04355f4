"""Tiny data sets written in the real on-disk formats that torchvision's own dataset classes read.

Every ``write_*`` function writes a handful of deterministic samples (a ``numpy`` Generator seeded by
``seed``) under ``root`` so that a test can point the real torchvision class at ``root`` with
``download=False`` and read them back, and returns what that class is expected to load so the test can
compare.  The layouts follow torchvision 0.29's readers
(``torchvision/datasets/{cifar,mnist,svhn,celeba}.py``):

* CIFAR-10/100: Python pickles of dicts with ``str`` keys (the originals were written by Python 2 and are
  read with ``pickle.load(f, encoding="latin1")``, which turns their byte-string keys into ``str``; a
  Python 3 pickle with ``bytes`` keys would *not* be readable by ``entry["data"]``).  ``data`` is a uint8
  array of shape ``(n, 3072)``: each row is the red, then green, then blue 32x32 plane (CHW, row-major).
* MNIST / FashionMNIST: uncompressed IDX files under ``<root>/<ClassName>/raw/`` with big-endian headers
  (magic 2051 = ``0x00000803`` for uint8 3-d images, 2049 = ``0x00000801`` for uint8 1-d labels).
* SVHN: a MATLAB v5 ``.mat`` file with ``X`` of shape ``(32, 32, 3, n)`` and ``y`` of shape ``(n, 1)``
  holding 1..10, where 10 stands for the digit 0.
* CelebA: ``<root>/celeba/img_align_celeba/NNNNNN.jpg`` plus the five space-separated annotation files.

The md5 checks of CIFAR, SVHN and CelebA cannot pass on such files; :func:`bypass_checksums` is the one
place that relaxes them to existence checks.
"""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

# ---------------------------------------------------------------------------------------------- names

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

# the 20 CIFAR-100 superclasses ("coarse" labels) and their 5 classes each ("fine" labels)
CIFAR100_SUPERCLASSES: dict[str, list[str]] = {
    "aquatic_mammals": ["beaver", "dolphin", "otter", "seal", "whale"],
    "fish": ["aquarium_fish", "flatfish", "ray", "shark", "trout"],
    "flowers": ["orchid", "poppy", "rose", "sunflower", "tulip"],
    "food_containers": ["bottle", "bowl", "can", "cup", "plate"],
    "fruit_and_vegetables": ["apple", "mushroom", "orange", "pear", "sweet_pepper"],
    "household_electrical_devices": ["clock", "keyboard", "lamp", "telephone", "television"],
    "household_furniture": ["bed", "chair", "couch", "table", "wardrobe"],
    "insects": ["bee", "beetle", "butterfly", "caterpillar", "cockroach"],
    "large_carnivores": ["bear", "leopard", "lion", "tiger", "wolf"],
    "large_man-made_outdoor_things": ["bridge", "castle", "house", "road", "skyscraper"],
    "large_natural_outdoor_scenes": ["cloud", "forest", "mountain", "plain", "sea"],
    "large_omnivores_and_herbivores": ["camel", "cattle", "chimpanzee", "elephant", "kangaroo"],
    "medium_mammals": ["fox", "porcupine", "possum", "raccoon", "skunk"],
    "non-insect_invertebrates": ["crab", "lobster", "snail", "spider", "worm"],
    "people": ["baby", "boy", "girl", "man", "woman"],
    "reptiles": ["crocodile", "dinosaur", "lizard", "snake", "turtle"],
    "small_mammals": ["hamster", "mouse", "rabbit", "shrew", "squirrel"],
    "trees": ["maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"],
    "vehicles_1": ["bicycle", "bus", "motorcycle", "pickup_truck", "train"],
    "vehicles_2": ["lawn_mower", "rocket", "streetcar", "tank", "tractor"],
}
CIFAR100_COARSE_CLASSES = list(CIFAR100_SUPERCLASSES)
# as in the real meta file, the fine label names are sorted alphabetically
CIFAR100_CLASSES = sorted(name for names in CIFAR100_SUPERCLASSES.values() for name in names)
_CIFAR100_FINE_TO_COARSE = np.array(
    [
        next(i for i, names in enumerate(CIFAR100_SUPERCLASSES.values()) if fine in names)
        for fine in CIFAR100_CLASSES
    ],
    dtype=np.int64,
)

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair "
    "Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face "
    "Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair "
    "Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
CELEBA_BBOX_HEADER = ["image_id", "x_1", "y_1", "width", "height"]
CELEBA_LANDMARK_HEADER = [
    f"{part}_{axis}" for part in ("lefteye", "righteye", "nose", "leftmouth", "rightmouth") for axis in "xy"
]

# ---------------------------------------------------------------------------------------------- helpers


def _labels(rng: np.random.Generator, n: int, num_classes: int, offset: int = 0) -> np.ndarray:
    """``n`` shuffled int64 labels in ``offset .. offset+num_classes-1`` in which each of the first
    ``min(n, num_classes)`` classes occurs at least once (the rest are drawn uniformly)."""
    k = min(n, num_classes)
    labels = np.concatenate([np.arange(k), rng.integers(0, num_classes, size=n - k)])
    return rng.permutation(labels).astype(np.int64) + offset


def _pickle(path: Path, obj: dict) -> None:
    """Write ``obj`` as a protocol-2 pickle, the protocol of the Python 2 era originals."""
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _cifar_rows(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Random CIFAR images: the ``(n, 3072)`` on-disk rows (CHW flattened) and the ``(n, 32, 32, 3)`` HWC
    view torchvision makes of them."""
    rows = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
    return rows, rows.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1).copy()


def _cifar_batch(rows: np.ndarray, label_key: str, labels: np.ndarray, batch_label: str, **extra) -> dict:
    """One CIFAR batch dict with the keys of the real files (labels as a plain ``list`` of ``int``)."""
    return {
        "batch_label": batch_label,
        label_key: [int(label) for label in labels],
        "data": np.ascontiguousarray(rows, dtype=np.uint8),
        "filenames": [f"synthetic_{i:05d}.png" for i in range(len(rows))],
        **extra,
    }


# ---------------------------------------------------------------------------------------------- CIFAR


def write_cifar10(root: Path, n_train: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Write a tiny CIFAR-10 in torchvision's ``cifar-10-batches-py`` layout.

    Creates ``root/cifar-10-batches-py/`` with ``data_batch_1`` .. ``data_batch_5`` (the ``n_train``
    training images split unevenly across them; a batch may be empty), ``test_batch`` (5 images) and
    ``batches.meta`` (``label_names``).  Pass ``root`` as ``CIFAR10(root=...)``; the md5 checks need
    :func:`bypass_checksums`.

    Returns:
        ``(images, labels)`` of the training split as ``CIFAR10(root, train=True)`` loads them:
        ``images`` uint8 ``(n_train, 32, 32, 3)`` (HWC, i.e. ``.data``) and ``labels`` int64 ``(n_train,)``
        (``.targets``), in file order.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    rows, images = _cifar_rows(rng, n_train)
    labels = _labels(rng, n_train, 10)
    # four sorted cut points in 0..n give five (possibly empty) consecutive chunks
    cuts = np.sort(rng.integers(0, n_train + 1, size=4))
    bounds = [0, *cuts.tolist(), n_train]
    for b in range(5):
        lo, hi = bounds[b], bounds[b + 1]
        batch = _cifar_batch(rows[lo:hi], "labels", labels[lo:hi], f"training batch {b + 1} of 5")
        _pickle(folder / f"data_batch_{b + 1}", batch)

    test_rows, _ = _cifar_rows(rng, 5)
    _pickle(
        folder / "test_batch", _cifar_batch(test_rows, "labels", _labels(rng, 5, 10), "testing batch 1 of 1")
    )
    _pickle(
        folder / "batches.meta",
        {"num_cases_per_batch": 10000, "label_names": list(CIFAR10_CLASSES), "num_vis": 3072},
    )
    return images, labels


def write_cifar100(root: Path, n_train: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Write a tiny CIFAR-100 in torchvision's ``cifar-100-python`` layout.

    Creates ``root/cifar-100-python/`` with ``train`` (``n_train`` images), ``test`` (5 images) and
    ``meta`` (``fine_label_names`` and ``coarse_label_names``).  Each data file holds ``data``,
    ``fine_labels`` (0..99), ``coarse_labels`` (0..19, the real superclass of each fine class),
    ``filenames`` and ``batch_label``.  The md5 checks need :func:`bypass_checksums`.

    Returns:
        ``(images, fine_labels)`` as ``CIFAR100(root, train=True)`` loads them (``.data`` HWC uint8
        ``(n_train, 32, 32, 3)`` and ``.targets``).
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)

    def split(n: int, batch_label: str) -> tuple[dict, np.ndarray, np.ndarray]:
        rows, images = _cifar_rows(rng, n)
        fine = _labels(rng, n, 100)
        coarse = [int(c) for c in _CIFAR100_FINE_TO_COARSE[fine]]
        return _cifar_batch(rows, "fine_labels", fine, batch_label, coarse_labels=coarse), images, fine

    train, images, labels = split(n_train, "training batch 1 of 1")
    test, _, _ = split(5, "testing batch 1 of 1")
    _pickle(folder / "train", train)
    _pickle(folder / "test", test)
    _pickle(
        folder / "meta",
        {"fine_label_names": list(CIFAR100_CLASSES), "coarse_label_names": list(CIFAR100_COARSE_CLASSES)},
    )
    return images, labels


# ---------------------------------------------------------------------------------------------- MNIST


def _write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file: magic ``0x0000 08 <ndim>`` then each dim, all big-endian int32."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def write_mnist(
    root: Path, n_train: int = 20, seed: int = 0, fashion: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Write a tiny MNIST (or Fashion-MNIST) as torchvision's uncompressed raw IDX files.

    Creates ``root/MNIST/raw/`` (``root/FashionMNIST/raw/`` if ``fashion``) with
    ``train-images-idx3-ubyte`` (magic 2051, dims ``n_train, 28, 28``), ``train-labels-idx1-ubyte``
    (magic 2049, dim ``n_train``) and their ``t10k-*`` counterparts holding 5 test images.  No checksum
    bypass is needed: MNIST only checks that these four files exist.

    Returns:
        ``(images, labels)``: uint8 ``(n_train, 28, 28)`` and int64 ``(n_train,)``, equal to
        ``MNIST(root, train=True).data`` / ``.targets`` (as numpy).
    """
    rng = np.random.default_rng(seed)
    raw = Path(root) / ("FashionMNIST" if fashion else "MNIST") / "raw"
    raw.mkdir(parents=True, exist_ok=True)

    result = None
    for prefix, n in (("train", n_train), ("t10k", 5)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = _labels(rng, n, 10)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        if result is None:
            result = (images, labels)
    assert result is not None
    return result


# ---------------------------------------------------------------------------------------------- SVHN


def write_svhn(root: Path, n_train: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Write a tiny SVHN training split as ``root/train_32x32.mat`` (no sub-folder, as torchvision reads).

    The file holds ``X`` uint8 ``(32, 32, 3, n_train)`` (height, width, channel, sample) and ``y`` uint8
    ``(n_train, 1)`` with labels 1..10, where 10 is the digit 0 (as in the real set).  The md5 check needs
    :func:`bypass_checksums`.

    Returns:
        ``(images, labels)`` as ``SVHN(root, split="train")`` holds them: ``.data`` uint8
        ``(n_train, 3, 32, 32)`` (``X`` transposed by ``(3, 2, 0, 1)``) and ``.labels`` int64 with 10 mapped
        to 0.
    """
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    x = rng.integers(0, 256, size=(32, 32, 3, n_train), dtype=np.uint8)
    y = _labels(rng, n_train, 10, offset=1)  # 1..10
    savemat(root / "train_32x32.mat", {"X": x, "y": y.astype(np.uint8).reshape(n_train, 1)})
    labels = np.where(y == 10, 0, y).astype(np.int64)
    return np.transpose(x, (3, 2, 0, 1)).copy(), labels


# ---------------------------------------------------------------------------------------------- CelebA


def _write_table(path: Path, rows: list[list], header: list[str] | None, total: int, width: int = 0) -> None:
    """Write a CelebA annotation table: optionally the count line and the column-name line, then rows of
    ``filename`` followed by its numbers right-aligned to ``width`` and joined by single spaces (so, as in
    the real files, columns may be separated by several spaces: ``"000001.jpg -1  1  1"``)."""
    lines = [] if header is None else [str(total), " ".join(header)]
    lines += [" ".join([row[0], *(f"{v:>{width}}" for v in row[1:])]) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def write_celeba(root: Path, n: int = 12, seed: int = 0, size: tuple[int, int] = (178, 218)) -> list[str]:
    """Write a tiny aligned-and-cropped CelebA in torchvision's ``celeba`` layout.

    Creates ``root/celeba/img_align_celeba/000001.jpg`` .. (``n`` RGB JPEGs of ``size`` = (width, height))
    and, next to that folder, the five annotation files torchvision parses with
    ``csv.reader(delimiter=" ", skipinitialspace=True)``:

    * ``list_eval_partition.txt`` and ``identity_CelebA.txt``: no header, ``"000001.jpg 0"`` rows;
    * ``list_attr_celeba.txt``: line 1 the image count, line 2 the 40 attribute names, then
      ``"000001.jpg -1  1 ..."`` rows (read with ``header=1``);
    * ``list_bbox_celeba.txt``: count, ``image_id x_1 y_1 width height``, then rows;
    * ``list_landmarks_align_celeba.txt``: count, the 10 ``lefteye_x ..`` names, then rows.

    Every image is in the train partition (0) except the last two: valid (1) then test (2).  The md5
    checks need :func:`bypass_checksums`.

    Caveat: torchvision 0.29 cannot load a split holding exactly one image (``torch.squeeze`` of the
    ``nonzero`` mask gives a 0-d tensor that it then iterates), so ``split="valid"`` / ``"test"`` fail
    with ``TypeError`` here; load them through ``split="all"``.  ``n`` must be >= 4 so that the train
    split holds at least two images.

    Returns:
        The file names of the train split, in order (what ``CelebA(root, split="train").filename`` holds).
    """
    if n < 4:
        raise ValueError("write_celeba needs n >= 4 (2+ train images, 1 valid, 1 test)")
    rng = np.random.default_rng(seed)
    folder = Path(root) / "celeba"
    images = folder / "img_align_celeba"
    images.mkdir(parents=True, exist_ok=True)
    width, height = size

    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    yy, xx = np.mgrid[0:height, 0:width]
    for name in names:
        # a smooth colour gradient plus a little noise: realistic-ish, and compresses to a few KB
        base = rng.integers(0, 256, size=3)
        pixels = (
            base + xx[..., None] * 0.5 + yy[..., None] * 0.3 + rng.normal(0, 8, (height, width, 3))
        ) % 256
        Image.fromarray(pixels.astype(np.uint8), "RGB").save(images / name, "JPEG", quality=85)

    partition = [0] * (n - 2) + [1, 2]
    _write_table(
        folder / "list_eval_partition.txt", [[f, p] for f, p in zip(names, partition, strict=True)], None, n
    )
    identities = rng.integers(1, 10178, size=n)
    _write_table(
        folder / "identity_CelebA.txt", [[f, int(i)] for f, i in zip(names, identities, strict=True)], None, n
    )
    attrs = rng.choice([-1, 1], size=(n, len(CELEBA_ATTRIBUTES)))
    _write_table(
        folder / "list_attr_celeba.txt",
        [[f, *map(int, a)] for f, a in zip(names, attrs, strict=True)],
        CELEBA_ATTRIBUTES,
        n,
        width=2,
    )
    boxes = np.column_stack([rng.integers(0, 200, (n, 2)), rng.integers(50, 300, (n, 2))])
    _write_table(
        folder / "list_bbox_celeba.txt",
        [[f, *map(int, b)] for f, b in zip(names, boxes, strict=True)],
        CELEBA_BBOX_HEADER,
        n,
        width=3,
    )
    marks = np.column_stack([rng.integers(0, width, (n, 5)), rng.integers(0, height, (n, 5))])
    marks = marks[:, [0, 5, 1, 6, 2, 7, 3, 8, 4, 9]]  # interleave to x, y pairs
    _write_table(
        folder / "list_landmarks_align_celeba.txt",
        [[f, *map(int, m)] for f, m in zip(names, marks, strict=True)],
        CELEBA_LANDMARK_HEADER,
        n,
        width=3,
    )
    return names[: n - 2]


# ---------------------------------------------------------------------------------------------- image folder


def write_image_folder(root: Path, seed: int = 0) -> dict:
    """Write a small, deliberately messy image-folder tree under ``root``.

    Layout (class folders ``cats`` and ``dogs``; ``cats`` has a nested ``kittens`` sub-folder)::

        cats/tabby.png            RGB   40x30   PNG
        cats/grey.jpg             L     64x64   JPEG
        cats/large.JPG            RGB   100x80  JPEG, upper-case extension
        cats/kittens/ghost.png    RGBA  64x64   PNG with a transparent half
        cats/kittens/pal.png      P     40x30   PNG, 16-colour palette
        dogs/husky.webp           RGB   100x80  WebP
        dogs/shadow.webp          RGBA  64x64   WebP with alpha
        dogs/pug.png              L     40x30   PNG
        dogs/broken.png           corrupt: random bytes with an image extension
        dogs/notes.txt            not an image: must be ignored

    Returns:
        ``{"valid": sorted relative POSIX paths of the readable images, "corrupt": relative paths of the
        corrupt files, "classes": sorted class folder names}``.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)

    def pixels(width: int, height: int, channels: int) -> np.ndarray:
        shape = (height, width) if channels == 1 else (height, width, channels)
        return rng.integers(0, 256, size=shape, dtype=np.uint8)

    rgba = pixels(64, 64, 4)
    rgba[:, :32, 3] = 0  # left half fully transparent
    rgba[:, 32:, 3] = 255
    webp_rgba = pixels(64, 64, 4)
    webp_rgba[::2, :, 3] = 0
    palette = Image.fromarray(pixels(40, 30, 3), "RGB").quantize(colors=16)

    images: dict[str, tuple[Image.Image, str]] = {
        "cats/tabby.png": (Image.fromarray(pixels(40, 30, 3), "RGB"), "PNG"),
        "cats/grey.jpg": (Image.fromarray(pixels(64, 64, 1), "L"), "JPEG"),
        "cats/large.JPG": (Image.fromarray(pixels(100, 80, 3), "RGB"), "JPEG"),
        "cats/kittens/ghost.png": (Image.fromarray(rgba, "RGBA"), "PNG"),
        "cats/kittens/pal.png": (palette, "PNG"),
        "dogs/husky.webp": (Image.fromarray(pixels(100, 80, 3), "RGB"), "WEBP"),
        "dogs/shadow.webp": (Image.fromarray(webp_rgba, "RGBA"), "WEBP"),
        "dogs/pug.png": (Image.fromarray(pixels(40, 30, 1), "L"), "PNG"),
    }
    for rel, (image, fmt) in images.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, fmt)

    corrupt = ["dogs/broken.png"]
    for rel in corrupt:
        # random bytes behind an ASCII prefix that matches no image signature (and fails PIL's sniffing of
        # header-less formats such as TGA), so no seed can make the file accidentally readable
        (root / rel).write_bytes(b"corrupt!" + rng.integers(0, 256, size=256, dtype=np.uint8).tobytes())
    (root / "dogs" / "notes.txt").write_text("not an image: loaders must skip this file\n")

    return {"valid": sorted(images), "corrupt": corrupt, "classes": ["cats", "dogs"]}


# ---------------------------------------------------------------------------------------------- checksums


def _cifar_check_integrity_existence_only(self) -> bool:
    """CIFAR10/100 ``_check_integrity`` without md5: every train and test file exists."""
    return all(
        os.path.isfile(os.path.join(self.root, self.base_folder, filename))
        for filename, _md5 in self.train_list + self.test_list
    )


def _cifar_load_meta_existence_only(self) -> None:
    """CIFAR10/100 ``_load_meta`` without the md5 check of the meta file (which it does itself)."""
    path = os.path.join(self.root, self.base_folder, self.meta["filename"])
    if not os.path.isfile(path):
        raise RuntimeError(
            "Dataset metadata file not found or corrupted. You can use download=True to download it"
        )
    with open(path, "rb") as infile:
        data = pickle.load(infile, encoding="latin1")
    self.classes = data[self.meta["key"]]
    self.class_to_idx = {_class: i for i, _class in enumerate(self.classes)}


def _svhn_check_integrity_existence_only(self) -> bool:
    """SVHN ``_check_integrity`` without md5: the split's ``.mat`` file exists."""
    return os.path.isfile(os.path.join(self.root, self.split_list[self.split][1]))


def _celeba_check_integrity_existence_only(self) -> bool:
    """CelebA ``_check_integrity`` without md5: the annotation files (not the zip) and the image folder
    exist."""
    for _file_id, _md5, filename in self.file_list:
        if os.path.splitext(filename)[1] not in (".zip", ".7z") and not os.path.isfile(
            os.path.join(self.root, self.base_folder, filename)
        ):
            return False
    return os.path.isdir(os.path.join(self.root, self.base_folder, "img_align_celeba"))


def bypass_checksums(monkeypatch) -> None:
    """Relax torchvision's md5 checks to existence checks, for the duration of one test.

    Patches (through pytest's ``monkeypatch``, so undone after the test) ``CIFAR10._check_integrity``
    (inherited by ``CIFAR100``), ``SVHN._check_integrity`` and ``CelebA._check_integrity`` with versions
    that check that exactly the files the real methods check exist, without hashing them.  CIFAR's
    ``_load_meta`` also md5-checks the meta file on its own, so it is patched likewise (existence only,
    otherwise loading exactly as the original).  MNIST needs nothing: it only checks existence.
    """
    from torchvision.datasets import CIFAR10, SVHN, CelebA

    monkeypatch.setattr(CIFAR10, "_check_integrity", _cifar_check_integrity_existence_only)
    monkeypatch.setattr(CIFAR10, "_load_meta", _cifar_load_meta_existence_only)
    monkeypatch.setattr(SVHN, "_check_integrity", _svhn_check_integrity_existence_only)
    monkeypatch.setattr(CelebA, "_check_integrity", _celeba_check_integrity_existence_only)
