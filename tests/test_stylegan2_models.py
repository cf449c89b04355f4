"""StyleGAN2 networks (gan_cli/models/stylegan2.py): hand-computed modulation, equalised learning
rate, the mapping network's w_avg and truncation, resampling filters, shapes, the minibatch-std
feature, projection conditioning and style mixing."""

import math

import pytest
import torch
import torch.nn.functional as F

from gan_cli.models.stylegan2 import (
    Discriminator,
    EqualConv2d,
    EqualLinear,
    Generator,
    MappingNetwork,
    channels_per_resolution,
    downsample2d,
    fir_filter,
    modulated_conv2d,
    upsample2d,
)

TINY = dict(channel_base=64, channel_max=8)  # 8 channels up to 8 px, 4 at 16 px, ...


def tiny_g(size=16, channels=1, c_dim=0, **kw):
    return Generator(8, 8, size, channels, c_dim=c_dim, mapping_depth=2, **TINY, **kw)


def tiny_d(size=16, channels=1, c_dim=0):
    return Discriminator(size, channels, c_dim=c_dim, mapping_depth=2, **TINY)


def zero_insert(x):
    n, c, h, w = x.shape
    y = x.new_zeros(n, c, 2 * h, 2 * w)
    y[:, :, ::2, ::2] = x
    return y


def valid_filter(x, f, gain=1.0):
    c = x.shape[1]
    return F.conv2d(x, (f * gain)[None, None].repeat(c, 1, 1, 1), groups=c)


# --- modulated convolution ------------------------------------------------------------------------


def test_modulated_conv_matches_hand_computation():
    torch.manual_seed(0)
    x, weight = torch.randn(2, 2, 4, 4), torch.randn(3, 2, 3, 3)
    styles, bias = torch.tensor([[0.5, 2.0], [1.5, -1.0]]), torch.tensor([0.1, -0.2, 0.3])
    xp = F.pad(x, (1, 1, 1, 1))
    for demodulate in (True, False):
        expected = torch.zeros(2, 3, 4, 4)
        for n in range(2):
            for o in range(3):
                w = [
                    [[weight[o, i, a, b] * styles[n, i] for b in range(3)] for a in range(3)]
                    for i in range(2)
                ]
                norm = math.sqrt(sum(v.item() ** 2 for plane in w for row in plane for v in row) + 1e-8)
                d = 1 / norm if demodulate else 1.0
                for h in range(4):
                    for c in range(4):
                        acc = sum(
                            xp[n, i, h + a, c + b] * w[i][a][b]
                            for i in range(2)
                            for a in range(3)
                            for b in range(3)
                        )
                        expected[n, o, h, c] = 1.7 * (acc * d + bias[o])
        out = modulated_conv2d(x, weight, styles, demodulate=demodulate, bias=bias, gain=1.7)
        assert torch.allclose(out, expected, atol=1e-5)


def test_demodulation_keeps_unit_variance_for_any_style():
    torch.manual_seed(0)
    x, weight = torch.randn(8, 64, 18, 18), torch.randn(32, 64, 3, 3)
    styles = torch.randn(8, 64).mul(1.5).exp()  # log-normal styles, spread over two orders of magnitude
    out = modulated_conv2d(x, weight, styles)[:, :, 1:-1, 1:-1]  # borders see zero padding
    assert out.std().item() == pytest.approx(1.0, abs=0.03)
    assert out.flatten(2).std(dim=2).mean().item() == pytest.approx(1.0, abs=0.05)  # per sample/channel
    undemodulated = modulated_conv2d(x, weight / math.sqrt(64 * 9), styles, demodulate=False)
    assert undemodulated.std().item() > 2  # the styles' scale leaks through without eq. 3


def test_upsampling_modulated_conv_is_the_reference_definition():
    """conv2d_resample(up=2) is: zero insertion, pad (3, 2), the [1,3,3,1] filter times 4, then a
    convolution (flipped kernel) without padding; equal everywhere, borders included."""
    torch.manual_seed(0)
    x, weight, styles = torch.randn(2, 3, 6, 6), torch.randn(4, 3, 3, 3), torch.rand(2, 3) + 0.5
    f = fir_filter()
    out = modulated_conv2d(x, weight, styles, demodulate=False, up=f)
    up = valid_filter(F.pad(zero_insert(x * styles.view(2, 3, 1, 1)), (3, 2, 3, 2)), f, gain=4)
    assert out.shape == (2, 4, 12, 12)
    assert torch.allclose(out, F.conv2d(up, weight.flip([2, 3])), atol=1e-5)


# --- equalised learning rate ----------------------------------------------------------------------


def test_equal_linear_runtime_weight_init_and_gradients():
    torch.manual_seed(0)
    layer = EqualLinear(64, 32, bias_init=1.0, lr_mul=0.1)
    assert layer.weight.std().item() == pytest.approx(10.0, rel=0.05)  # N(0, 1) / lr_mul
    assert torch.allclose(layer.bias, torch.full((32,), 10.0))  # stored bias_init / lr_mul
    x, r = torch.randn(5, 64), torch.randn(5, 32)
    w_rt = (layer.weight * 0.1 / 8).detach().requires_grad_()
    b_rt = (layer.bias * 0.1).detach().requires_grad_()
    expected = F.linear(x, w_rt, b_rt)
    out = layer(x)
    assert torch.allclose(out, expected, atol=1e-5)
    (out * r).sum().backward()
    (expected * r).sum().backward()
    assert torch.allclose(layer.weight.grad, w_rt.grad * 0.1 / 8, atol=1e-6)
    assert torch.allclose(layer.bias.grad, b_rt.grad * 0.1, atol=1e-6)
    act = EqualLinear(64, 32, activation=True)
    plain = F.linear(x, act.weight / 8, act.bias)
    assert torch.allclose(act(x), F.leaky_relu(plain, 0.2) * math.sqrt(2), atol=1e-5)


def test_equal_conv_runtime_weight_and_gradients():
    torch.manual_seed(0)
    layer = EqualConv2d(4, 6, 3, lr_mul=0.5)
    x, r = torch.randn(2, 4, 5, 5), torch.randn(2, 6, 5, 5)
    scale = 0.5 / math.sqrt(4 * 9)
    w_rt = (layer.weight * scale).detach().requires_grad_()
    expected = F.conv2d(x, w_rt, layer.bias.detach() * 0.5, padding=1)
    out = layer(x)
    assert torch.allclose(out, expected, atol=1e-5)
    (out * r).sum().backward()
    (expected * r).sum().backward()
    assert torch.allclose(layer.weight.grad, w_rt.grad * scale, atol=1e-5)


def test_downsampling_conv_is_the_reference_definition():
    """conv2d_resample(down=2, padding=1): pad 2, conv, the [1,3,3,1] filter, every other pixel;
    a 1x1 skip: filter (pad 1) and subsample, then the conv."""
    torch.manual_seed(0)
    x, f = torch.randn(2, 3, 8, 8), fir_filter()
    conv = EqualConv2d(3, 4, 3, down=True)
    expected = valid_filter(F.conv2d(F.pad(x, (2, 2, 2, 2)), conv.weight * conv.weight_gain, conv.bias), f)
    assert torch.allclose(conv(x), expected[:, :, ::2, ::2], atol=1e-5)
    skip = EqualConv2d(3, 4, 1, bias=False, down=True, gain=0.5)
    expected = valid_filter(F.pad(F.conv2d(x, skip.weight * skip.weight_gain), (1, 1, 1, 1)), f)
    assert torch.allclose(skip(x), 0.5 * expected[:, :, ::2, ::2], atol=1e-5)


# --- resampling filters ---------------------------------------------------------------------------


def test_filters_preserve_a_constant_and_are_half_pixel_aligned():
    f = fir_filter()
    assert f.shape == (4, 4) and f.sum().item() == pytest.approx(1.0)
    assert torch.allclose(f[0], torch.tensor([1.0, 3, 3, 1]) / 64)
    const = torch.full((1, 2, 8, 8), 0.7)
    assert torch.allclose(upsample2d(const, f)[..., 1:-1, 1:-1], torch.full((1, 2, 14, 14), 0.7))
    assert torch.allclose(downsample2d(const, f)[..., 1:-1, 1:-1], torch.full((1, 2, 2, 2), 0.7))
    ramp = torch.arange(8.0).expand(1, 1, 8, 8)  # x[i] = i along the width
    up = upsample2d(ramp, f)[0, 0, 4]
    assert torch.allclose(up[2:-2:2], torch.arange(1.0, 7) - 0.25)  # output 2i sits at i - 1/4
    assert torch.allclose(up[3:-2:2], torch.arange(1.0, 7) + 0.25)
    down = downsample2d(ramp, f)[0, 0, 2]
    assert torch.allclose(down[1:-1], torch.tensor([2.5, 4.5]))  # output i sits at 2i + 1/2


# --- mapping network ------------------------------------------------------------------------------


def test_mapping_lr_mul_slows_adam_by_lr_mul():
    """The same function at init (weights stored x 1/lr_mul, used x lr_mul); the stored weights'
    gradients scale by lr_mul, so Adam's first step, lr * g / (|g| + eps) (written out: importing
    torch.optim's step costs seconds), moves them as far and the runtime weights lr_mul times as far."""
    z = torch.randn(8, 16, generator=torch.Generator().manual_seed(1))
    runs = []
    for lr_mul in (1.0, 0.01):
        torch.manual_seed(0)
        net = MappingNetwork(16, 16, None, depth=2, lr_mul=lr_mul, w_avg_beta=None)
        first = net.layers[0]
        stored = first.weight.detach().clone()
        out = net(z)
        out.square().mean().backward()
        grad = first.weight.grad
        runs.append((stored, out.detach(), grad, -1e-3 * grad / (grad.abs() + 1e-8) * first.weight_gain))
    (stored1, out1, grad1, step1), (stored2, out2, grad2, step2) = runs
    assert torch.allclose(stored2 * 0.01, stored1, atol=1e-6)
    assert torch.allclose(out1, out2, atol=1e-5)
    assert torch.allclose(grad2, grad1 * 0.01, rtol=1e-3, atol=1e-9)
    assert torch.allclose(step2, step1 * 0.01, rtol=0.02, atol=0)  # eps matters for tiny g
    assert step2.abs().max().item() == pytest.approx(1e-3 * 0.01 / 4, rel=1e-3)  # lr * lr_mul / sqrt(16)


def test_w_avg_tracks_the_mean_w_in_training_only():
    torch.manual_seed(0)
    net = MappingNetwork(8, 8, num_ws=3, depth=2)
    z1, z2 = torch.randn(16, 8), torch.randn(16, 8)
    ws1 = net(z1)
    m1 = ws1[:, 0].mean(0)
    assert torch.allclose(net.w_avg, 0.005 * m1, atol=1e-7)
    ws2 = net(z2)
    assert torch.allclose(net.w_avg, 0.995 * 0.005 * m1 + 0.005 * ws2[:, 0].mean(0), atol=1e-7)
    snapshot = net.w_avg.clone()
    net(z1, update_w_avg=False)
    net.eval()
    net(z1)
    assert torch.equal(net.w_avg, snapshot)


def test_truncation_psi_and_cutoff():
    torch.manual_seed(0)
    net = MappingNetwork(8, 8, num_ws=6, depth=2).eval()
    net.w_avg.copy_(torch.randn(8))
    z = torch.randn(4, 8)
    ws = net(z)
    assert ws.shape == (4, 6, 8) and torch.equal(ws[:, 0], ws[:, 5])  # broadcast
    assert torch.allclose(net(z, truncation_psi=0.0), net.w_avg.expand(4, 6, 8))
    assert torch.equal(net(z, truncation_psi=1.0), ws)
    cut = net(z, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.allclose(cut[:, :2], net.w_avg + 0.5 * (ws[:, :2] - net.w_avg), atol=1e-6)
    assert torch.equal(cut[:, 2:], ws[:, 2:])


def test_conditional_mapping_takes_ids_or_one_hot_and_needs_labels():
    torch.manual_seed(0)
    net = MappingNetwork(8, 8, num_ws=2, depth=2, c_dim=5).eval()
    z, c = torch.randn(3, 8), torch.tensor([0, 4, 2])
    assert torch.equal(net(z, c), net(z, F.one_hot(c, 5).float()))
    assert not torch.allclose(net(z, c), net(z, torch.tensor([1, 4, 2])))
    with pytest.raises(ValueError, match="conditional"):
        net(z)
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        net(z, torch.zeros(3, 4))


# --- generator ------------------------------------------------------------------------------------


@pytest.mark.parametrize("c_dim", [0, 10])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_shapes(size, channels, c_dim):
    torch.manual_seed(0)
    g, d = tiny_g(size, channels, c_dim), tiny_d(size, channels, c_dim)
    z, c = torch.randn(5, 8), (torch.tensor([0, 1, 2, 3, 9]) if c_dim else None)
    img, ws = g(z, c, return_ws=True)
    assert g.num_ws == 2 * int(math.log2(size)) - 2
    assert img.shape == (5, channels, size, size) and ws.shape == (5, g.num_ws, 8)
    assert torch.isfinite(img).all() and 0.05 < img.std().item() < 5  # roughly [-1, 1], no tanh
    assert d(img, c).shape == (5,)
    assert d.features(img, c).shape == (5, 8)


def test_channel_budget():
    assert channels_per_resolution(64, 32768, 512) == {4: 512, 8: 512, 16: 512, 32: 512, 64: 512}
    assert channels_per_resolution(32, 4096, 128) == {4: 128, 8: 128, 16: 128, 32: 128}
    assert channels_per_resolution(64, 1024, 128) == {4: 128, 8: 128, 16: 64, 32: 32, 64: 16}
    g = Generator(8, 8, 16, 1, channel_base=64, channel_max=8)
    assert [b.conv1.weight.shape[0] for b in g.synthesis.blocks] == [8, 8, 4]


@pytest.mark.parametrize("size", [4, 12, 48])
def test_bad_image_size(size):
    with pytest.raises(ValueError, match=f"power of two >= 8, got {size}"):
        tiny_g(size)
    with pytest.raises(ValueError, match=f"power of two >= 8, got {size}"):
        tiny_d(size)


def test_tanh_output_squashes_the_skip_sum():
    """output="tanh" is tanh of what the reference's linear output gives with the same weights."""
    torch.manual_seed(0)
    linear = tiny_g().eval()
    torch.manual_seed(0)
    squashed = tiny_g(output="tanh").eval()
    for p in linear.synthesis.blocks[-1].torgb.parameters():  # push the sum well past +-1
        p.data.mul_(20)
    squashed.load_state_dict(linear.state_dict())
    z = torch.randn(6, 8)
    a, b = linear(z), squashed(z)
    assert a.abs().max() > 3  # the linear sum leaves [-1, 1]
    assert torch.allclose(b, torch.tanh(a), atol=1e-6) and b.abs().max() <= 1
    with pytest.raises(ValueError, match="output must be one of linear, tanh; got 'sigmoid'"):
        tiny_g(output="sigmoid")


def set_noise_strength(g, value):
    for name, p in g.named_parameters():
        if name.endswith("noise_strength"):
            p.data.fill_(value)


def test_noise_modes_and_generators():
    torch.manual_seed(0)
    g = tiny_g().eval()
    set_noise_strength(g, 0.5)
    z = torch.randn(2, 8)
    seeded = [g(z, noise_mode="random", generator=torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert torch.equal(seeded[0], seeded[1]) and not torch.allclose(seeded[0], seeded[2])
    torch.manual_seed(3)
    a = g(z, noise_mode="random")
    torch.manual_seed(3)
    assert torch.equal(a, g(z, noise_mode="random"))  # the global RNG when no generator is given
    const = g(z, noise_mode="const")
    assert torch.equal(const, g(z, noise_mode="const"))
    assert torch.equal(const, g(z))  # eval mode: constant noise by default (deterministic sampling)
    g.train()
    torch.manual_seed(3)
    assert torch.equal(a, g(z))  # training mode: random noise by default
    g.eval()
    none = g(z, noise_mode="none")
    assert not torch.allclose(const, none) and not torch.allclose(a, none)
    set_noise_strength(g, 0.0)
    assert torch.allclose(g(z, noise_mode="random"), g(z, noise_mode="none"))  # strength 0 at init
    with pytest.raises(ValueError, match="noise_mode must be one of random, const, none; got 'fixed'"):
        g(z, noise_mode="fixed")


def test_style_mixing_through_ws():
    torch.manual_seed(0)
    g = Generator(8, 8, 32, 3, mapping_depth=2, **TINY).eval()
    ws1, ws2 = g.mapping(torch.randn(2, 8)), g.mapping(torch.randn(2, 8))
    for crossover, same in ((8, ws1), (0, ws2)):  # all layers from one side
        mixed = torch.cat([ws1[:, :crossover], ws2[:, crossover:]], 1)
        assert torch.equal(g.synthesis(mixed, "const"), g.synthesis(same, "const"))
    mixed = torch.cat([ws1[:, :3], ws2[:, 3:]], 1)  # crossover at 3: block 4 uses ws 0-1, block 8 1-3

    def block_outputs(ws):
        outs = []
        hooks = [b.register_forward_hook(lambda m, i, o: outs.append(o)) for b in g.synthesis.blocks]
        g.synthesis(ws, "const")
        for h in hooks:
            h.remove()
        return outs

    ref, mix = block_outputs(ws1), block_outputs(mixed)
    assert torch.equal(mix[0][0], ref[0][0]) and torch.equal(mix[0][1], ref[0][1])  # 4x4: features, image
    assert torch.equal(mix[1][0], ref[1][0])  # 8x8 features: ws 1 and 2
    assert not torch.allclose(mix[1][1], ref[1][1])  # its toRGB uses ws 3, from the second
    assert not torch.allclose(mix[2][0], ref[2][0])
    with pytest.raises(ValueError, match=r"ws must be \(N, 8, 8\), got \(2, 7, 8\)"):
        g.synthesis(ws1[:, :7])


def test_path_length_and_r1_double_backward():
    torch.manual_seed(0)
    g, d = tiny_g(), tiny_d()
    ws = g.mapping(torch.randn(4, 8)).requires_grad_()
    img = g.synthesis(ws)
    (grad,) = torch.autograd.grad((img * torch.randn_like(img)).sum(), ws, create_graph=True)
    grad.square().sum().backward()
    assert g.synthesis.blocks[-1].conv1.weight.grad.abs().sum() > 0
    x = torch.randn(4, 1, 16, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
    grad.square().sum().backward()
    assert d.fromrgb.weight.grad.abs().sum() > 0


def test_same_seed_same_networks():
    torch.manual_seed(5)
    a = tiny_g(c_dim=3).state_dict()
    torch.manual_seed(5)
    b = tiny_g(c_dim=3).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert "mapping.w_avg" in a and "synthesis.blocks.1.conv0.noise_const" in a


# --- discriminator --------------------------------------------------------------------------------


@pytest.mark.parametrize("n,groups", [(8, [[0, 2, 4, 6], [1, 3, 5, 7]]), (6, [list(range(6))])])
def test_minibatch_std_feature_is_the_group_std(n, groups):
    """Groups of 4 taken with a stride (sample i in group i mod N/4), as the reference; a batch
    that 4 does not divide is one group."""
    torch.manual_seed(0)
    mbstd = tiny_d().epilogue.mbstd
    x = torch.randn(n, 3, 4, 4)
    out = mbstd(x)
    assert out.shape == (n, 4, 4, 4) and torch.equal(out[:, :3], x)
    for members in groups:
        grp = x[members]
        expected = ((grp - grp.mean(0)).square().mean(0) + 1e-8).sqrt().mean()
        for i in members:
            assert torch.allclose(out[i, 3], expected.expand(4, 4), atol=1e-6)


def test_discriminator_projection_conditioning():
    torch.manual_seed(0)
    d = tiny_d(c_dim=5).eval()
    x, c = torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 4])
    out = d.epilogue(d.blocks(d.fromrgb(x)))  # (4, cmap_dim)
    cmap = d.mapping(None, c)
    assert d.cmap_dim == 8 and out.shape == cmap.shape == (4, 8)
    assert torch.allclose(d(x, c), (out * cmap).sum(1) / math.sqrt(8), atol=1e-6)
    assert torch.allclose(d(x, F.one_hot(c, 5).float()), d(x, c))
    with pytest.raises(ValueError, match="conditional"):
        d(x)


def test_discriminator_residual_block_scaling():
    """x_out = (skip(x) + conv1(conv0(x))) / sqrt(2), each part with its own 1/sqrt(2) gain."""
    torch.manual_seed(0)
    block = tiny_d().blocks[0]
    x = torch.randn(2, 4, 16, 16)
    skip = block.skip.gain
    block.skip.gain = block.conv1.gain = 1.0
    unscaled = block.skip(x) + block.conv1(block.conv0(x))
    block.skip.gain = block.conv1.gain = skip
    assert skip == pytest.approx(1 / math.sqrt(2))
    assert torch.allclose(block(x), unscaled / math.sqrt(2), atol=1e-6)


@pytest.mark.parametrize(
    "width,expected_g,expected_d",
    [(64, 339_788, 337_281), pytest.param(512, 21_527_052, 21_507_073, marks=pytest.mark.slow)],
)
def test_reference_parameter_counts_at_32px(width, expected_g, expected_d):
    """stylegan2-ada-pytorch at 32 px, z = w = width, 8 mapping layers, 3 channels, channel_max =
    width = channel_base / 64, so every resolution has `width` channels (512: the reference's
    32768 / 512). Layer by layer from the reference's networks.py; our noise strength is per
    channel where the reference has one scalar. 512 builds 43 M weights (2 s): slow."""
    c = width
    g, d = Generator(c, c, 32, 3, channel_base=64 * c, channel_max=c), Discriminator(32, 3, 0, 64 * c, c)
    affine, conv3 = c * c + c, c * c * 9
    mapping = 8 * (c * c + c)
    layers = 7 * (affine + conv3 + c + c)  # modulated convs: affine, weight, bias, noise strength
    torgb = 4 * (affine + 3 * c + 3)
    assert sum(p.numel() for p in g.parameters()) == mapping + c * 16 + layers + torgb == expected_g
    blocks = 3 * (2 * (conv3 + c) + c * c)  # conv0, conv1 (down), 1x1 skip without bias
    epilogue = ((c + 1) * c * 9 + c) + (c * 16 * c + c) + (c + 1)
    assert sum(p.numel() for p in d.parameters()) == 3 * c + c + blocks + epilogue == expected_d
