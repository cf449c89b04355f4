"""Each loss variant against values worked out by hand."""

import math

import pytest
import torch

from gan_cli.losses import LOSSES, clip_weights, gradient_penalty, mmd2

REAL = torch.tensor([2.0, 0.0])
FAKE = torch.tensor([-1.0, 0.5])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_gan_d_loss_is_binary_cross_entropy():
    # -log sigmoid(2) - log sigmoid(0) over 2, plus -log(1 - sigmoid(-1)) - log(1 - sigmoid(.5)) over 2
    expected = (softplus(-2) + softplus(0)) / 2 + (softplus(-1) + softplus(0.5)) / 2
    for name in ("minimax", "nonsaturating"):
        assert LOSSES[name].d_loss(REAL, FAKE).item() == pytest.approx(expected, rel=1e-6)


def test_minimax_g_loss_is_log_one_minus_d():
    expected = (math.log(1 - 1 / (1 + math.exp(1))) + math.log(1 - 1 / (1 + math.exp(-0.5)))) / 2
    assert LOSSES["minimax"].g_loss(FAKE).item() == pytest.approx(expected, rel=1e-6)


def test_nonsaturating_g_loss_is_minus_log_d():
    expected = -(math.log(1 / (1 + math.exp(1))) + math.log(1 / (1 + math.exp(-0.5)))) / 2
    assert LOSSES["nonsaturating"].g_loss(FAKE).item() == pytest.approx(expected, rel=1e-6)


def test_wgan_losses():
    # critic: E[D(fake)] - E[D(real)] = (-0.25) - 1.0
    for name in ("wgan", "wgan_gp"):
        assert LOSSES[name].d_loss(REAL, FAKE).item() == pytest.approx(-1.25)
        assert LOSSES[name].g_loss(FAKE).item() == pytest.approx(0.25)


def test_hinge_losses():
    # D: mean(relu(1 - [2, 0])) + mean(relu(1 + [-1, .5])) = 0.5 + 0.75 ; G: -mean(fake)
    assert LOSSES["hinge"].d_loss(REAL, FAKE).item() == pytest.approx(1.25)
    assert LOSSES["hinge"].g_loss(FAKE).item() == pytest.approx(0.25)


def test_lsgan_losses():
    # D: .5*mean([(2-1)^2, (0-1)^2]) + .5*mean([1, .25]) = .5 + .3125 ; G: .5*mean([4, .25])
    assert LOSSES["lsgan"].d_loss(REAL, FAKE).item() == pytest.approx(0.8125)
    assert LOSSES["lsgan"].g_loss(FAKE).item() == pytest.approx(1.0625)


def test_gradient_penalty_of_linear_critic():
    # D(x) = w.x has gradient w everywhere: penalty = (|w| - 1)^2 = (5 - 1)^2
    d = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        d.weight.copy_(torch.tensor([[3.0, 4.0]]))
    critic = lambda x, y=None: d(x).view(-1)  # noqa: E731
    real, fake = torch.randn(5, 2), torch.randn(5, 2)
    gp = gradient_penalty(critic, real, fake, None, torch.Generator().manual_seed(0))
    assert gp.item() == pytest.approx(16.0, rel=1e-5)
    assert gp.dtype == torch.float32


def test_gradient_penalty_is_fp32_under_autocast():
    d = torch.nn.Linear(2, 1)
    critic = lambda x, y=None: d(x).view(-1)  # noqa: E731
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gp = gradient_penalty(critic, torch.randn(4, 2), torch.randn(4, 2), None, torch.Generator())
    assert gp.dtype == torch.float32


def test_clip_weights():
    d = torch.nn.Linear(3, 3)
    with torch.no_grad():
        d.weight.fill_(0.5)
    clip_weights(d, 0.01)
    assert d.weight.abs().max().item() == pytest.approx(0.01)


def test_mmd2_against_a_hand_computation():
    # k(a, b) = exp(-(a - b)^2 / 2): xx = e^-1/2, yy = e^-2, xy = (1 + e^-2 + 2 e^-1/2) / 4
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [2.0]])
    want = 0.5 * math.exp(-2) - 0.5
    assert mmd2(x, y, [1.0]).item() == pytest.approx(want, rel=1e-6)
    # a sum of kernels is the sum of the MMDs
    assert mmd2(x, y, [1.0, 0.5]).item() == pytest.approx(want + mmd2(x, y, [0.5]).item(), rel=1e-6)


def test_mmd2_is_near_zero_for_one_distribution_and_grows_with_the_mismatch():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(2000, 2, generator=g)
    same = mmd2(torch.randn(2000, 2, generator=g), real, [0.5, 1.0, 2.0]).item()
    narrow = mmd2(0.5 * torch.randn(2000, 2, generator=g), real, [0.5, 1.0, 2.0]).item()
    assert abs(same) < 2e-3
    assert narrow > 0.05


def test_mmd2_pushes_a_too_narrow_batch_apart():
    """The G-side gradient of the term widens fakes that are tighter than the data (the narrow
    clusters of the 2-D recipes)."""
    g = torch.Generator().manual_seed(1)
    real = 0.01 * torch.randn(256, 2, generator=g)
    fake = (0.004 * torch.randn(256, 2, generator=g)).requires_grad_(True)
    (grad,) = torch.autograd.grad(mmd2(fake, real, [0.005, 0.01, 0.02]), fake)
    moved = fake.detach() - 1e-4 * grad.sign()
    assert moved.std() > fake.detach().std()


def test_mmd2_value_and_gradients_equal_autograd_of_the_formula():
    """The fused kernel (its own derivative, exponents floored at EXP_FLOOR) against plain autograd
    of eq. 3, in x and in y, at a cluster's bandwidth where most pairs' kernels underflow."""
    g = torch.Generator().manual_seed(2)
    x = (0.3 * torch.randn(64, 2, generator=g)).requires_grad_(True)
    y = (0.3 * torch.randn(48, 2, generator=g)).requires_grad_(True)
    bandwidths = [0.01, 0.05, 0.2]

    def reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        def k(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
            d2 = (p[:, None, :] - q[None, :, :]).square().sum(-1)
            return sum(torch.exp(-d2 / (2 * s * s)) for s in bandwidths)

        n, m = len(a), len(b)
        xx, yy = k(a, a), k(b, b)
        return (
            (xx.sum() - xx.diagonal().sum()) / (n * (n - 1))
            + (yy.sum() - yy.diagonal().sum()) / (m * (m - 1))
            - 2 * k(a, b).mean()
        )

    got = mmd2(x, y, bandwidths)
    want = reference(x.double(), y.double())
    assert got.item() == pytest.approx(want.item(), abs=1e-6)
    gx, gy = torch.autograd.grad(got, (x, y))
    wx, wy = torch.autograd.grad(want, (x, y))
    assert torch.allclose(gx, wx.float(), atol=1e-5, rtol=1e-3)
    assert torch.allclose(gy, wy.float(), atol=1e-5, rtol=1e-3)
