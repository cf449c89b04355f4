"""Real data sets through gan-cli: torchvision's own classes on tiny real-format archives, image
folders, clear errors, the preload cache and the DataLoader path."""

import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_cli.data import Batches, DataError, LoaderBatches, load_dataset, make_batches
from gan_cli.trainer import Trainer
from tests.conftest import compose_config, run_cli
from tests.datasets_on_disk import (
    bypass_checksums,
    write_celeba,
    write_cifar10,
    write_cifar100,
    write_image_folder,
    write_mnist,
    write_svhn,
)
from tests.test_training import fit

CPU = torch.device("cpu")


def data_config(*overrides: str):
    return compose_config(*overrides, tiny=False).data


@pytest.mark.parametrize("name,writer", [("cifar10", write_cifar10), ("cifar100", write_cifar100)])
def test_cifar(name, writer, tmp_path, monkeypatch):
    bypass_checksums(monkeypatch)
    images, labels = writer(tmp_path, n_train=20)
    data = load_dataset(data_config(f"data={name}", f"data.root={tmp_path}"))
    assert data.x.shape == (20, 3, 32, 32) and data.x.dtype == torch.uint8
    assert torch.equal(data.x, torch.from_numpy(images).permute(0, 3, 1, 2))
    assert data.y.tolist() == list(labels)
    assert data.num_classes == (10 if name == "cifar10" else 100)


@pytest.mark.parametrize("name,fashion", [("mnist", False), ("fashion_mnist", True)])
def test_mnist_idx(name, fashion, tmp_path):
    images, labels = write_mnist(tmp_path, n_train=20, fashion=fashion)
    data = load_dataset(data_config(f"data={name}", f"data.root={tmp_path}"))
    assert data.x.shape == (20, 1, 32, 32)
    assert torch.equal(data.x[:, 0, 2:30, 2:30], torch.from_numpy(images))  # padded 28 -> 32
    assert data.x[:, :, :2].max() == 0 and data.y.tolist() == list(labels)


def test_svhn(tmp_path, monkeypatch):
    bypass_checksums(monkeypatch)
    images, labels = write_svhn(tmp_path, n_train=20)
    data = load_dataset(data_config("data=svhn", f"data.root={tmp_path}"))
    assert torch.equal(data.x, torch.from_numpy(images)) and data.y.tolist() == list(labels)
    assert data.y.max() <= 9


def test_celeba_resized_and_cropped(tmp_path, monkeypatch):
    bypass_checksums(monkeypatch)
    names = write_celeba(tmp_path, n=12)
    data = load_dataset(
        data_config("data=celeba", f"data.root={tmp_path}", "data.image_size=64", "data.channels=3")
    )
    assert data.x.shape == (len(names), 3, 64, 64) and data.y is None


def test_mnist_as_rgb_64(tmp_path):
    write_mnist(tmp_path, n_train=10)
    data = load_dataset(
        data_config("data=mnist", f"data.root={tmp_path}", "data.channels=3", "data.image_size=64")
    )
    assert data.x.shape == (10, 3, 64, 64)
    assert torch.equal(data.x[:, 0], data.x[:, 2])  # grey in RGB


def test_image_folder_mixed_tree(tmp_path):
    tree = write_image_folder(tmp_path)
    over = ["data=image_folder", f"data.root={tmp_path}", "data.image_size=16"]
    with pytest.raises(DataError) as err:
        load_dataset(data_config(*over))
    assert "broken.png" in str(err.value) and "data.skip_bad=true" in str(err.value)
    data = load_dataset(data_config(*over, "data.skip_bad=true", "data.channels=3"))
    assert data.x.shape == (len(tree["valid"]), 3, 16, 16) and data.y is None
    grey = load_dataset(data_config(*over, "data.skip_bad=true", "data.channels=1"))
    assert grey.x.shape == (len(tree["valid"]), 1, 16, 16)
    labelled = load_dataset(
        data_config(*over, "data.skip_bad=true", "data.labels=subfolders", "data.num_classes=2")
    )
    names = sorted(tree["valid"])
    assert labelled.y.tolist() == [tree["classes"].index(Path(n).parts[0]) for n in names]


def test_rgba_is_composited_on_white(tmp_path):
    from PIL import Image

    img = np.zeros((8, 8, 4), dtype=np.uint8)  # fully transparent black
    Image.fromarray(img, "RGBA").save(tmp_path / "clear.png")
    data = load_dataset(data_config("data=image_folder", f"data.root={tmp_path}", "data.image_size=8"))
    assert data.x.min() == 255


def test_image_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images in"):
        load_dataset(data_config("data=image_folder", f"data.root={tmp_path / 'empty'}"))
    (tmp_path / "flat").mkdir()
    write_image_folder(tmp_path / "flat")
    (tmp_path / "flat" / "loose.png").write_bytes((tmp_path / "flat" / "cats" / "tabby.png").read_bytes())
    with pytest.raises(DataError, match="lie directly in"):
        load_dataset(
            data_config(
                "data=image_folder",
                f"data.root={tmp_path / 'flat'}",
                "data.skip_bad=true",
                "data.labels=subfolders",
            )
        )


def test_missing_set_names_folder_files_and_how(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset(data_config("data=cifar10", f"data.root={tmp_path}"))
    msg = str(err.value)
    for text in (
        "data=cifar10",
        str(tmp_path / "cifar-10-batches-py"),
        "data_batch_1",
        "batches.meta",
        "data.download=true",
        "cifar-10-python.tar.gz",
    ):
        assert text in msg, msg


def test_failed_download_is_one_paragraph(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_utils, "download_url", no_network)
    with pytest.raises(DataError) as err:
        load_dataset(data_config("data=cifar10", f"data.root={tmp_path}", "data.download=true"))
    msg = str(err.value)
    assert (
        "downloading into" in msg and "failed" in msg and "URLError" in msg and "data.download=false" in msg
    )


def test_cli_missing_set_has_no_traceback(tmp_path):
    result = run_cli("data=svhn", f"data.root={tmp_path}", "trainer.device=cpu", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "train_32x32.mat" in result.stderr and str(tmp_path) in result.stderr
    assert "Traceback" not in result.stderr


def test_subset_and_classes(tmp_path, monkeypatch):
    bypass_checksums(monkeypatch)
    _, labels = write_cifar10(tmp_path, n_train=40)
    root = f"data.root={tmp_path}"
    assert len(load_dataset(data_config("data=cifar10", root, "data.subset=7")).x) == 7
    picked = load_dataset(data_config("data=cifar10", root, "data.classes=[3,1]"))
    assert len(picked.x) == int(np.isin(labels, [3, 1]).sum())
    assert sorted(set(picked.y.tolist())) == [0, 1] and picked.num_classes == 2
    originals = [int(v) for v in labels if v in (3, 1)]
    assert picked.y.tolist() == [0 if v == 3 else 1 for v in originals]  # in the order given
    both = load_dataset(data_config("data=cifar10", root, "data.classes=[3,1]", "data.subset=2"))
    assert len(both.x) == 2


def test_decoded_folder_is_cached(tmp_path, monkeypatch):
    write_image_folder(tmp_path)
    cfg = data_config(
        "data=image_folder", f"data.root={tmp_path}", "data.skip_bad=true", "data.image_size=16"
    )
    first = load_dataset(cfg)
    assert list((tmp_path / ".gan_cli_cache").glob("image_folder-*.pt"))

    import gan_cli.data as data_module

    def must_not_decode(*args, **kwargs):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(data_module, "decode_all", must_not_decode)
    assert torch.equal(load_dataset(cfg).x, first.x)


def _folder_batches(tmp_path, preload_mb: int, workers: int):
    write_image_folder(tmp_path)
    cfg = data_config(
        "data=image_folder",
        f"data.root={tmp_path}",
        "data.skip_bad=true",
        "data.image_size=16",
        "data.labels=subfolders",
        "data.num_classes=2",
        f"data.preload_max_mb={preload_mb}",
        f"data.num_workers={workers}",
        "data.hflip=true",
        "data.cache=false",
    )
    return make_batches(cfg, 3, seed=5, device=CPU)[0]


def test_preloaded_and_dataloader_paths_serve_the_same_batches(tmp_path):
    memory = _folder_batches(tmp_path, 1024, 0)
    stream = _folder_batches(tmp_path, 0, 2)
    assert isinstance(memory, Batches) and isinstance(stream, LoaderBatches)
    for _ in range(7):  # across epochs (7 images, batch 3: 2 batches an epoch)
        (xa, ya), (xb, yb) = memory.next(), stream.next()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_dataloader_path_resumes_exactly(tmp_path):
    a = _folder_batches(tmp_path, 0, 2)
    for _ in range(3):
        a.next()
    b = _folder_batches(tmp_path, 0, 1)
    b.load_state_dict(a.state_dict())
    for _ in range(5):
        (xa, ya), (xb, yb) = a.next(), b.next()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_hflip_flips_about_half(tmp_path):
    cfg = data_config("data=fake", "data.size=512", "data.hflip=true")
    batches, _ = make_batches(cfg, 512, seed=0, device=CPU)
    x, _ = batches.next()
    raw = load_dataset(cfg).x.float().mul(2 / 255).sub(1)
    perm = batches.perm
    flipped = [not torch.equal(x[i], raw[perm[i]]) for i in range(512)]
    assert all(torch.equal(x[i], raw[perm[i]].flip(-1)) for i in range(512) if flipped[i])
    assert 0.4 < sum(flipped) / 512 < 0.6


def test_cgan_on_subfolder_labels_discovers_classes(tmp_path):
    write_image_folder(tmp_path / "pets")
    cfg = compose_config(
        "model=cgan",
        "data=image_folder",
        f"data.root={tmp_path / 'pets'}",
        "data.skip_bad=true",
        "data.image_size=16",
        "data.labels=subfolders",
        "trainer.batch_size=3",
        "trainer.steps=2",
        "trainer.n_samples=4",
    )
    trainer = Trainer(cfg, tmp_path / "run")
    assert cfg.data.num_classes == 2 and trainer.game.fixed_y.tolist() == [0, 0, 1, 1]
    fit(trainer, tmp_path / "run")
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert state["config"]["data"]["num_classes"] == 2
