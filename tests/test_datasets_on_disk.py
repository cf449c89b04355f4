"""The tiny on-disk data sets of `tests/datasets_on_disk.py` load through torchvision's own classes."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError
from torchvision.datasets import CIFAR10, CIFAR100, MNIST, SVHN, CelebA, FashionMNIST

from tests.datasets_on_disk import (
    CELEBA_ATTRIBUTES,
    CIFAR10_CLASSES,
    CIFAR100_CLASSES,
    CIFAR100_COARSE_CLASSES,
    bypass_checksums,
    write_celeba,
    write_cifar10,
    write_cifar100,
    write_image_folder,
    write_mnist,
    write_svhn,
)


@pytest.mark.parametrize("n_train", [20, 3])
def test_cifar10_loads_through_torchvision(tmp_path, monkeypatch, n_train):
    images, labels = write_cifar10(tmp_path, n_train=n_train, seed=1)
    assert images.shape == (n_train, 32, 32, 3) and images.dtype == np.uint8
    assert set(labels.tolist()) >= set(range(min(n_train, 10)))

    bypass_checksums(monkeypatch)
    ds = CIFAR10(tmp_path, train=True, download=False)
    assert len(ds) == n_train
    np.testing.assert_array_equal(ds.data, images)
    assert list(ds.targets) == labels.tolist()
    assert ds.classes == CIFAR10_CLASSES
    img, target = ds[0]
    np.testing.assert_array_equal(np.asarray(img), images[0])
    assert target == labels[0]
    assert len(CIFAR10(tmp_path, train=False, download=False)) == 5


def test_cifar10_files_are_latin1_pickles_with_str_keys(tmp_path):
    write_cifar10(tmp_path, n_train=20)
    folder = tmp_path / "cifar-10-batches-py"
    sizes = []
    for b in range(1, 6):
        with open(folder / f"data_batch_{b}", "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        assert {"data", "labels", "batch_label", "filenames"} <= set(entry)
        assert entry["data"].dtype == np.uint8 and entry["data"].shape[1:] == (3072,)
        assert all(type(label) is int for label in entry["labels"])
        sizes.append(len(entry["data"]))
    assert sum(sizes) == 20


def test_cifar10_is_deterministic(tmp_path):
    a = write_cifar10(tmp_path / "a", seed=3)
    b = write_cifar10(tmp_path / "b", seed=3)
    c = write_cifar10(tmp_path / "c", seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_cifar10_needs_the_bypass(tmp_path):
    write_cifar10(tmp_path)
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        CIFAR10(tmp_path, train=True, download=False)


def test_cifar100_loads_through_torchvision(tmp_path, monkeypatch):
    images, labels = write_cifar100(tmp_path, n_train=20, seed=2)
    bypass_checksums(monkeypatch)
    ds = CIFAR100(tmp_path, train=True, download=False)
    assert len(ds) == 20
    np.testing.assert_array_equal(ds.data, images)
    assert list(ds.targets) == labels.tolist()
    assert labels.min() >= 0 and labels.max() < 100
    assert ds.classes == CIFAR100_CLASSES and len(set(ds.classes)) == 100
    assert len(CIFAR100_COARSE_CLASSES) == 20

    with open(tmp_path / "cifar-100-python" / "train", "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    assert len(entry["coarse_labels"]) == 20
    assert all(0 <= c < 20 for c in entry["coarse_labels"])


@pytest.mark.parametrize("fashion", [False, True])
def test_mnist_loads_through_torchvision(tmp_path, fashion):
    images, labels = write_mnist(tmp_path, n_train=20, seed=5, fashion=fashion)
    raw = tmp_path / ("FashionMNIST" if fashion else "MNIST") / "raw"
    images_file = (raw / "train-images-idx3-ubyte").read_bytes()
    labels_file = (raw / "train-labels-idx1-ubyte").read_bytes()
    assert [int.from_bytes(images_file[i : i + 4], "big") for i in range(0, 16, 4)] == [2051, 20, 28, 28]
    assert [int.from_bytes(labels_file[i : i + 4], "big") for i in range(0, 8, 4)] == [2049, 20]
    assert len(images_file) == 16 + 20 * 28 * 28 and len(labels_file) == 8 + 20

    ds = (FashionMNIST if fashion else MNIST)(tmp_path, train=True, download=False)
    assert len(ds) == 20
    np.testing.assert_array_equal(ds.data.numpy(), images)
    np.testing.assert_array_equal(ds.targets.numpy(), labels)
    img, target = ds[0]
    assert img.mode == "L" and img.size == (28, 28)
    assert target == labels[0]
    assert len((FashionMNIST if fashion else MNIST)(tmp_path, train=False, download=False)) == 5


def test_svhn_loads_through_torchvision(tmp_path, monkeypatch):
    images, labels = write_svhn(tmp_path, n_train=20, seed=6)
    assert images.shape == (20, 3, 32, 32)
    assert set(labels.tolist()) == set(range(10))  # the file's 10 became 0

    bypass_checksums(monkeypatch)
    ds = SVHN(tmp_path, split="train", download=False)
    assert len(ds) == 20
    np.testing.assert_array_equal(ds.data, images)
    np.testing.assert_array_equal(ds.labels, labels)
    img, target = ds[0]
    np.testing.assert_array_equal(np.asarray(img), images[0].transpose(1, 2, 0))
    assert target == labels[0]


def test_celeba_loads_through_torchvision(tmp_path, monkeypatch):
    train_files = write_celeba(tmp_path, n=12, seed=7)
    assert train_files == [f"{i:06d}.jpg" for i in range(1, 11)]

    bypass_checksums(monkeypatch)
    ds = CelebA(tmp_path, split="train", target_type=[], download=False)
    assert len(ds) == 10
    assert list(ds.filename) == train_files
    img, target = ds[0]
    assert isinstance(img, Image.Image) and img.size == (178, 218) and img.mode == "RGB"
    assert target is None

    # every annotation file parses, with the real headers
    targets = ["attr", "identity", "bbox", "landmarks"]
    full = CelebA(tmp_path, split="all", target_type=targets, download=False)
    assert len(full) == 12
    partition = (tmp_path / "celeba" / "list_eval_partition.txt").read_text().split()
    assert partition[1::2] == ["0"] * 10 + ["1", "2"]
    assert full.attr_names == CELEBA_ATTRIBUTES
    assert full.attr.shape == (12, 40) and set(full.attr.unique().tolist()) <= {0, 1}
    assert full.bbox.shape == (12, 4) and full.landmarks_align.shape == (12, 10)
    attr_lines = (tmp_path / "celeba" / "list_attr_celeba.txt").read_text().splitlines()
    assert attr_lines[0] == "12" and attr_lines[1].split() == CELEBA_ATTRIBUTES
    assert attr_lines[2].split()[0] == "000001.jpg" and len(attr_lines[2].split()) == 41


def test_celeba_rejects_too_few_images(tmp_path):
    with pytest.raises(ValueError, match="n >= 4"):
        write_celeba(tmp_path, n=3)


def test_celeba_custom_size(tmp_path, monkeypatch):
    write_celeba(tmp_path, n=4, size=(32, 40))
    bypass_checksums(monkeypatch)
    ds = CelebA(tmp_path, split="train", target_type=[], download=False)
    assert len(ds) == 2 and ds[1][0].size == (32, 40)


def test_image_folder_tree(tmp_path):
    tree = write_image_folder(tmp_path, seed=8)
    assert tree["classes"] == ["cats", "dogs"]
    assert tree["valid"] == sorted(tree["valid"])
    assert sorted(p.name for p in tmp_path.iterdir()) == tree["classes"]

    on_disk = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert on_disk == {*tree["valid"], *tree["corrupt"], "dogs/notes.txt"}

    modes, formats, sizes, suffixes = set(), set(), set(), set()
    for rel in tree["valid"]:
        with Image.open(tmp_path / rel) as img:
            img.load()
            modes.add(img.mode)
            formats.add(img.format)
            sizes.add(img.size)
        suffixes.add((tmp_path / rel).suffix)
        assert rel.split("/")[0] in tree["classes"]
    assert {"RGB", "L", "RGBA", "P"} <= modes
    assert formats == {"PNG", "JPEG", "WEBP"}
    assert {(40, 30), (64, 64), (100, 80)} <= sizes
    assert ".JPG" in suffixes
    assert any(rel.count("/") == 2 for rel in tree["valid"])  # a nested sub-folder

    with Image.open(tmp_path / "cats/kittens/ghost.png") as img:
        assert img.getextrema()[3] == (0, 255)  # transparent pixels

    for rel in tree["corrupt"]:
        with pytest.raises(UnidentifiedImageError):
            Image.open(tmp_path / rel)


@pytest.mark.parametrize("seed", range(5))
def test_image_folder_corrupt_file_unreadable_for_any_seed(tmp_path, seed):
    tree = write_image_folder(tmp_path, seed=seed)
    for rel in tree["corrupt"]:
        with pytest.raises(UnidentifiedImageError):
            Image.open(tmp_path / rel)


def test_bypass_still_requires_every_checked_file(tmp_path, monkeypatch):
    bypass_checksums(monkeypatch)
    write_cifar10(tmp_path / "c10")
    (tmp_path / "c10" / "cifar-10-batches-py" / "test_batch").unlink()  # checked even for train=True
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        CIFAR10(tmp_path / "c10", train=True, download=False)

    write_cifar100(tmp_path / "c100")
    (tmp_path / "c100" / "cifar-100-python" / "meta").unlink()
    with pytest.raises(RuntimeError, match="metadata file not found"):
        CIFAR100(tmp_path / "c100", train=True, download=False)

    with pytest.raises(RuntimeError, match="not found or corrupted"):
        SVHN(tmp_path / "empty", split="train", download=False)

    write_celeba(tmp_path / "celeba", n=4)
    (tmp_path / "celeba" / "celeba" / "list_bbox_celeba.txt").unlink()
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        CelebA(tmp_path / "celeba", split="train", target_type=[], download=False)


def test_image_folder_progress_bars_follow_trainer_progress(tmp_path, capfd):
    """The reported input: trainer.progress=false still drew the "checking images" and "decoding
    images" bars of an image folder."""
    from gan_cli.trainer import Trainer
    from tests.conftest import compose_config

    for i in range(8):
        Image.fromarray(np.full((8, 8, 3), 20 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    folder = ("data=image_folder", f"data.root={tmp_path}", "data.channels=3", "data.image_size=16")
    Trainer(compose_config(*folder, "data.cache=false"), tmp_path / "quiet")  # TINY: trainer.progress=false
    quiet = capfd.readouterr().err
    assert "checking images" not in quiet and "decoding images" not in quiet
    Trainer(compose_config(*folder, "data.cache=false", "trainer.progress=true"), tmp_path / "shown")
    shown = capfd.readouterr().err
    assert "checking images" in shown and "decoding images" in shown
