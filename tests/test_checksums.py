"""A torchvision set that fails torchvision's checks: the error names each bad file, the check it
fails and what to do; `data.verify=false` reads the files without their md5 checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from torchvision.datasets import CIFAR10, CIFAR100, SVHN, CelebA
from torchvision.datasets.utils import calculate_md5

from gan_cli.data import DataError, load_dataset
from tests.conftest import compose_config
from tests.datasets_on_disk import write_celeba, write_cifar10, write_cifar100, write_mnist, write_svhn

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_FILES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"]


def load(name: str, root: Path, *overrides: str):
    return load_dataset(compose_config(f"data={name}", f"data.root={root}", *overrides).data)


def error_of(name: str, root: Path, *overrides: str) -> str:
    with pytest.raises(DataError) as err:
        load(name, root, *overrides)
    return str(err.value)


def trust_written_files(monkeypatch, cls, folder: Path) -> None:
    """Make torchvision's expected md5s those of the tiny files written here, as if they were the
    real set: then only a file damaged afterwards fails."""

    def md5(filename: str) -> str:
        return calculate_md5(folder / filename)

    if cls in (CIFAR10, CIFAR100):
        monkeypatch.setattr(cls, "train_list", [[f, md5(f)] for f, _ in cls.train_list])
        monkeypatch.setattr(cls, "test_list", [[f, md5(f)] for f, _ in cls.test_list])
        monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(cls.meta["filename"])})
    elif cls is SVHN:
        split_list = {
            k: [u, f, md5(f) if (folder / f).exists() else m] for k, (u, f, m) in cls.split_list.items()
        }
        monkeypatch.setattr(cls, "split_list", split_list)
    else:
        file_list = [(i, m if f.endswith(".zip") else md5(f), f) for i, m, f in cls.file_list]
        monkeypatch.setattr(cls, "file_list", file_list)


def damage(path: Path) -> None:
    """Flip the lowest bit of the middle byte (of a text file: of a digit, which stays a digit): same
    size, another md5, and still readable, as a damaged download often is."""
    data = bytearray(path.read_bytes())
    i = len(data) // 2
    if path.suffix == ".txt":
        i = next(j for j in range(i, len(data)) if chr(data[j]).isdigit())
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


# ---- CIFAR-10: every file there, every checksum wrong --------------------------------------------
def test_cifar10_with_wrong_checksums_names_each_file_its_check_and_the_opt_out(tmp_path):
    write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    msg = error_of("cifar10", tmp_path)
    assert "missing" not in msg and "is not in" not in msg  # the files are all there
    assert "7 of the 7 files" in msg and str(folder) in msg
    for filename, expected in [
        *CIFAR10.train_list,
        *CIFAR10.test_list,
        [CIFAR10.meta["filename"], CIFAR10.meta["md5"]],
    ]:
        found = calculate_md5(folder / filename)
        size = (folder / filename).stat().st_size
        assert f"{filename}: wrong md5 {found} ({size:,} bytes), expected {expected}" in msg
    assert CIFAR10_URL in msg and "data.download=true" in msg
    assert "data.verify=false" in msg


def test_cifar10_one_damaged_file_among_good_ones(tmp_path, monkeypatch):
    write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    trust_written_files(monkeypatch, CIFAR10, folder)
    assert len(load("cifar10", tmp_path).x) == 20  # the untouched copy passes torchvision's checks
    expected = calculate_md5(folder / "data_batch_3")
    damage(folder / "data_batch_3")
    msg = error_of("cifar10", tmp_path)
    assert f"data=cifar10: 1 of the 7 files torchvision checks in {folder}" in msg
    assert f"data_batch_3: wrong md5 {calculate_md5(folder / 'data_batch_3')}" in msg
    assert f"expected {expected}" in msg
    for other in ("data_batch_1", "data_batch_2", "test_batch", "batches.meta"):
        assert other not in msg
    assert f"Re-download data_batch_3 from {CIFAR10_URL}" in msg and "data.verify=false" in msg


def test_cifar10_verify_false_loads_the_files_as_they_are(tmp_path, capsys):
    images, labels = write_cifar10(tmp_path, n_train=20, seed=3)
    data = load("cifar10", tmp_path, "data.verify=false", "data.image_size=32", "data.channels=3")
    np.testing.assert_array_equal(data.x.permute(0, 2, 3, 1).numpy(), images)
    np.testing.assert_array_equal(data.y.numpy(), labels)
    err = capsys.readouterr().err
    assert "Warning: data.verify=false" in err and "md5" in err and "cifar-10-batches-py" in err


def test_cifar10_missing_file_is_named_missing(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    msg = error_of("cifar10", tmp_path, "data.verify=false")
    assert "1 of the 7 files" in msg and "test_batch: missing" in msg
    assert f"Re-download test_batch from {CIFAR10_URL}" in msg
    assert "data.verify=false" not in msg  # no opt-out offered for a missing file


def test_cifar10_unreadable_file_under_verify_false(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"not a pickle")
    msg = error_of("cifar10", tmp_path, "data.verify=false")
    assert "1 of the 7 files" in msg and "data_batch_2: cannot be read (UnpicklingError" in msg
    assert f"Re-download data_batch_2 from {CIFAR10_URL}" in msg


def test_an_empty_set_still_lists_every_expected_file(tmp_path):
    msg = error_of("cifar10", tmp_path)
    assert f"the data set is not in {tmp_path / 'cifar-10-batches-py'}" in msg
    assert (
        "data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch, batches.meta"
        in msg
    )


def test_a_split_the_set_lacks_is_refused(tmp_path):
    write_cifar10(tmp_path)
    msg = error_of("cifar10", tmp_path, "data.split=valid", "data.verify=false")
    assert msg == "data=cifar10: data.split=valid is not a split of it; valid: train, test."


# ---- the other sets, one damaged file each --------------------------------------------------------
def test_cifar100_damaged_meta(tmp_path, monkeypatch):
    write_cifar100(tmp_path)
    folder = tmp_path / "cifar-100-python"
    trust_written_files(monkeypatch, CIFAR100, folder)
    expected = calculate_md5(folder / "meta")
    damage(folder / "meta")
    msg = error_of("cifar100", tmp_path)
    assert "1 of the 3 files" in msg and f"meta: wrong md5 {calculate_md5(folder / 'meta')}" in msg
    assert f"expected {expected}" in msg and "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz" in msg
    assert "train:" not in msg and "data.verify=false" in msg
    assert len(load("cifar100", tmp_path, "data.verify=false").x) == 20


def test_svhn_damaged_mat_file(tmp_path, monkeypatch):
    images, _ = write_svhn(tmp_path, n_train=20)
    damage(tmp_path / "train_32x32.mat")
    msg = error_of("svhn", tmp_path)
    found = calculate_md5(tmp_path / "train_32x32.mat")
    assert f"data=svhn: the one file torchvision checks in {tmp_path} (data.root={tmp_path}) fails" in msg
    assert f"train_32x32.mat: wrong md5 {found}" in msg and f"expected {SVHN.split_list['train'][2]}" in msg
    assert "from http://ufldl.stanford.edu/housenumbers/train_32x32.mat" in msg and "data.verify=false" in msg


def test_svhn_test_split_names_its_own_file(tmp_path):
    write_svhn(tmp_path)  # the train file only
    msg = error_of("svhn", tmp_path, "data.split=test")
    assert "test_32x32.mat" in msg and "http://ufldl.stanford.edu/housenumbers/test_32x32.mat" in msg


def test_celeba_damaged_list_file_and_missing_images(tmp_path, monkeypatch):
    write_celeba(tmp_path, n=6)
    folder = tmp_path / "celeba"
    trust_written_files(monkeypatch, CelebA, folder)
    damage(folder / "list_bbox_celeba.txt")
    msg = error_of("celeba", tmp_path)
    bbox_id = next(i for i, _, f in CelebA.file_list if f == "list_bbox_celeba.txt")
    assert "1 of the 6 files" in msg and "list_bbox_celeba.txt: wrong md5" in msg
    assert f"list_bbox_celeba.txt from https://drive.google.com/uc?id={bbox_id}" in msg
    for other in ("list_attr_celeba.txt", "identity_CelebA.txt", "list_eval_partition.txt"):
        assert other not in msg
    assert len(load("celeba", tmp_path, "data.verify=false").x) == 4  # the train split

    (folder / "img_align_celeba").rename(folder / "elsewhere")
    msg = error_of("celeba", tmp_path, "data.verify=false")
    assert "img_align_celeba/: missing" in msg and "img_align_celeba.zip, extracted" in msg

    (folder / "elsewhere").rename(folder / "img_align_celeba")
    (folder / "list_bbox_celeba.txt").write_text("6\nimage_id x_1\n000001.jpg !30\n")
    msg = error_of("celeba", tmp_path, "data.verify=false")  # unparseable, and no md5 check to name it
    assert "(ValueError: invalid literal for int()" in msg and "run once with data.verify=true" in msg
    (folder / "identity_CelebA.txt").write_bytes(b"\xff\xfe not text")
    msg = error_of("celeba", tmp_path, "data.verify=false")
    assert (
        "1 of the 6 files" in msg and "identity_CelebA.txt: cannot be read as text (UnicodeDecodeError" in msg
    )


@pytest.mark.parametrize("name,fashion", [("mnist", False), ("fashion_mnist", True)])
def test_mnist_checks_existence_and_names_a_damaged_file(tmp_path, name, fashion, capsys):
    write_mnist(tmp_path, fashion=fashion)
    raw = tmp_path / ("FashionMNIST" if fashion else "MNIST") / "raw"
    mirror = "https://ossci-datasets.s3.amazonaws.com/mnist/" if not fashion else "fashion-mnist.s3"
    (raw / "t10k-labels-idx1-ubyte").unlink()
    msg = error_of(name, tmp_path)
    assert "1 of the 4 files" in msg and "t10k-labels-idx1-ubyte: missing" in msg
    assert mirror in msg and "t10k-labels-idx1-ubyte.gz (gunzipped)" in msg
    assert "md5" not in msg  # torchvision checks only that MNIST's files exist

    write_mnist(tmp_path, fashion=fashion)
    images = raw / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    msg = error_of(name, tmp_path)
    assert (
        "train-images-idx3-ubyte: cut short or padded: 15,596 bytes, its header [20, 28, 28] needs 15,696"
        in msg
    )

    labels = raw / "train-labels-idx1-ubyte"
    labels.write_bytes(b"\x00\x00\x08\x03" + labels.read_bytes()[4:])  # an images header on labels
    assert "train-labels-idx1-ubyte: not an IDX file of 1-D uint8 data (magic 0x00000803" in error_of(
        name, tmp_path
    )
    assert "Warning" not in capsys.readouterr().err  # nothing is skipped: no md5 to check
