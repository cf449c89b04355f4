"""Class-conditional CycleGAN discriminators (model.cond=projection): the projection per patch,
labels through the game and the image pool, exact resume, and the config checks."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_cli.models.cyclegan import PatchDiscriminator
from gan_cli.pool import ImagePool
from gan_cli.schema import ConfigError, check_config, inert_settings
from gan_cli.trainer import Trainer
from tests.test_cyclegan import _tensors, tiny
from tests.test_training import fit


def test_projection_adds_the_label_embedding_inner_product_per_patch():
    torch.manual_seed(0)
    d = PatchDiscriminator(1, 4, 2, "instance", num_classes=3)
    x, y = torch.randn(2, 1, 16, 16), torch.tensor([2, 0])
    h = d.net[:-1](x)  # (2, 8, 3, 3): the last features, before the final 4x4 conv
    plain = d.net[-1](h)  # (2, 1, 2, 2): one logit per patch
    # by hand: patch (i, j) reads the zero-padded 4x4 window rows i-1..i+2, cols j-1..j+2 of h
    padded = F.pad(h, (1, 1, 1, 1))
    expected = torch.empty(2, 2, 2)
    for n in range(2):
        e = d.embed.weight[y[n]]
        for i in range(2):
            for j in range(2):
                window = padded[n, :, i : i + 4, j : j + 4]  # (8, 4, 4)
                expected[n, i, j] = plain[n, 0, i, j] + (e[:, None, None] * window).sum() / 16
    assert torch.allclose(d(x, y), expected.flatten(1), atol=1e-6)
    # another label moves every patch's logit; no label is an error, not a silent default
    assert not torch.allclose(d(x, torch.tensor([1, 1])), d(x, y))
    with pytest.raises(ValueError, match="needs labels y"):
        d(x)


def test_unconditional_patch_discriminator_keeps_its_checkpoint_keys():
    d = PatchDiscriminator(1, 4, 2, "instance")
    assert d.embed is None and all(k.startswith("net.") for k in d.state_dict())
    assert "embed.weight" in PatchDiscriminator(1, 4, 2, "instance", num_classes=10).state_dict()


def test_pool_swaps_labels_with_their_images():
    pool = ImagePool(4, seed=0, device=torch.device("cpu"))
    first = torch.arange(4.0).view(4, 1, 1, 1)
    out, labels = pool.query_labelled(first, torch.tensor([10, 11, 12, 13]))
    assert torch.equal(out, first) and labels.tolist() == [10, 11, 12, 13]
    new = torch.arange(100.0, 140.0).view(40, 1, 1, 1)
    out, labels = pool.query_labelled(new, torch.arange(200, 240))
    # an image that came in with label L leaves with label L: 0-3 with 10-13, 100+k with 200+k
    for value, label in zip(out.flatten().tolist(), labels.tolist(), strict=True):
        assert label == (10 + int(value) if value < 4 else 100 + int(value))
    assert (out.flatten() != new.flatten()).any()  # some were swapped
    again = ImagePool(4, seed=9, device=torch.device("cpu"))
    again.load_state_dict(pool.state_dict())
    more, more_labels = torch.arange(500.0, 520.0).view(20, 1, 1, 1), torch.arange(600, 620)
    a, b = pool.query_labelled(more, more_labels), again.query_labelled(more, more_labels)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


class LabelRecorder(nn.Module):
    """A discriminator that records the labels it is given; its logit is the image mean."""

    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.zeros(()))
        self.seen: list[list[int]] = []

    def forward(self, x, y):
        self.seen.append(y.tolist())
        return x.mean(dim=(1, 2, 3))[:, None] + self.b


def test_translations_are_judged_with_their_source_labels(tmp_path):
    trainer = Trainer(tiny("model.cond=projection", "trainer.pool_size=0"), tmp_path)
    game = trainer.game
    assert game.conditional and game.D_A.embed.num_embeddings == 10
    game.D_A, game.D_B = LabelRecorder(), LabelRecorder()
    game.d_params = [game.D_A.b, game.D_B.b]
    game.opt_d = torch.optim.SGD(game.d_params, lr=0.0)
    a, b = torch.zeros(4, 1, 16, 16), torch.zeros(4, 1, 16, 16)
    y_a, y_b = torch.tensor([1, 2, 3, 4]), torch.tensor([7, 7, 0, 9])
    game.batches_a.next = lambda: (a, y_a)
    game.batches_b.next = lambda: (b, y_b)
    game.train_step()
    # G step: D_B(G_AB(a)) with a's labels, D_A(G_BA(b)) with b's; D step: real, then pooled fakes
    assert game.D_B.seen == [y_a.tolist(), y_b.tolist(), y_a.tolist()]
    assert game.D_A.seen == [y_b.tolist(), y_a.tolist(), y_b.tolist()]


def test_conditional_stopped_and_resumed_equals_straight(tmp_path):
    over = ["model.cond=projection", "trainer.pool_size=3", "trainer.log_every=2", "optim.schedule_steps=6"]
    straight = Trainer(tiny(*over, "trainer.steps=6"), tmp_path / "a")
    fit(straight, tmp_path / "a")
    first = Trainer(tiny(*over, "trainer.steps=3"), tmp_path / "b")
    fit(first, tmp_path / "b")
    resumed = Trainer(tiny(*over, "trainer.steps=6"), tmp_path / "b")
    resumed.load_state_dict(
        torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True), tmp_path
    )
    fit(resumed, tmp_path / "b")
    a = dict(_tensors(torch.load(tmp_path / "a" / "checkpoints" / "last.pt", weights_only=True)))
    b = dict(_tensors(torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)))
    assert a.keys() == b.keys() and "models.d_b.embed.weight" in a and "pool.a.labels" in a
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(
    "over,text",
    [
        (
            ["model.cond=projection", "data.b.num_classes=0"],
            "model.cond=projection conditions CycleGAN's discriminators on the class labels of both "
            "domains, but data.b=mnist5k has none",
        ),
        (["model.cond=projection", "data.a.num_classes=5"], "data.a.num_classes=5 and data.b.num_classes=10"),
        (["model.cond=concat"], "model.cond=projection|none"),
    ],
)
def test_conditioning_needs_labels_in_both_domains(over, text):
    with pytest.raises(ConfigError, match=text.replace("(", r"\(").replace("|", r"\|")):
        check_config(tiny(*over))


def test_default_cyclegan_is_unconditional_and_the_choice_is_not_called_inert():
    assert tiny().model.cond.value == "none"
    cfg = tiny("model.cond=projection")
    check_config(cfg)
    assert not [n for n in inert_settings(cfg) if "model.cond" in n]
