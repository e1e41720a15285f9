"""TransformerNet: shape contract, output range, parameter count, instance norm, gradients."""

from __future__ import annotations

import pytest
import torch

from stylecast.training.transformer import TransformerNet


def johnson_param_count(c1: int = 32, c2: int = 64, c3: int = 128, blocks: int = 5) -> int:
    """Worked out from the architecture (conv weights + biases, instance-norm affine pairs)."""
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731
    norm = lambda c: 2 * c  # noqa: E731
    encoder = conv(3, c1, 9) + norm(c1) + conv(c1, c2, 3) + norm(c2) + conv(c2, c3, 3) + norm(c3)
    residual = 2 * (conv(c3, c3, 3) + norm(c3))
    decoder = conv(c3, c2, 3) + norm(c2) + conv(c2, c1, 3) + norm(c1) + conv(c1, 3, 9)
    return encoder + blocks * residual + decoder


def test_parameter_count_matches_the_paper_architecture():
    net = TransformerNet()
    assert sum(p.numel() for p in net.parameters()) == johnson_param_count() == 1_679_235
    slim = TransformerNet(width=0.5, residual_blocks=3)
    assert sum(p.numel() for p in slim.parameters()) == johnson_param_count(16, 32, 64, blocks=3) == 276_675


@pytest.mark.parametrize("h,w", [(8, 8), (17, 23), (32, 48), (31, 33), (64, 64), (45, 12)])
def test_keeps_size_and_range(h, w):
    torch.manual_seed(0)
    net = TransformerNet(width=0.25, residual_blocks=1).eval()
    x = torch.rand(2, 3, h, w)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, 3, h, w)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()
    assert y.min() >= 0 and y.max() <= 1


def test_multiple_of_four_needs_no_crop():
    net = TransformerNet(width=0.25, residual_blocks=1)
    x = torch.rand(1, 3, 36, 20)
    inner = net.decoder(net.residuals(net.encoder(x)))
    assert inner.shape[-2:] == (36, 20)
    odd = net.decoder(net.residuals(net.encoder(torch.rand(1, 3, 37, 21))))
    assert odd.shape[-2:] == (40, 24)  # ceil to a multiple of 4, cropped back by forward()


def test_instance_norm_makes_samples_independent():
    # Batch statistics would couple the images of a batch; instance norm must not.
    torch.manual_seed(1)
    net = TransformerNet(width=0.25, residual_blocks=2)
    x = torch.rand(3, 3, 24, 24)
    with torch.no_grad():
        together = net(x)
        alone = torch.cat([net(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


def test_gradients_reach_every_parameter():
    torch.manual_seed(2)
    net = TransformerNet(width=0.25, residual_blocks=2)
    net(torch.rand(2, 3, 16, 16)).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_channels_last_and_bf16_autocast_agree_with_fp32():
    torch.manual_seed(3)
    net = TransformerNet(width=0.5, residual_blocks=1).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ref = net(x)
        cl = net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf = net(x)
    torch.testing.assert_close(cl, ref, atol=1e-5, rtol=0)
    assert (bf.float() - ref).abs().max() < 0.05  # bf16 has 8 bits of mantissa


def test_rejects_bad_shape_arguments():
    with pytest.raises(ValueError):
        TransformerNet(width=0)
    with pytest.raises(ValueError):
        TransformerNet(residual_blocks=-1)


# ---- conditional instance norm (Dumoulin et al. 2017) -------------------------------------------


def conditional_from_singles(singles: list[TransformerNet]) -> TransformerNet:
    """An n-style net with the first single net's convolutions and row k = single k's γ, β."""
    net = TransformerNet(singles[0].width, singles[0].residual_blocks, n_styles=len(singles)).eval()
    own = net.state_dict()
    with torch.no_grad():
        for key, value in own.items():
            if value.dim() == 2 and key.endswith((".weight", ".bias")) and value.shape[0] == len(singles):
                value.copy_(torch.stack([s.state_dict()[key] for s in singles]))
            else:
                value.copy_(singles[0].state_dict()[key])
    return net


def textured_singles(n: int) -> list[TransformerNet]:
    """n quarter-width nets sharing convolutions, each with its own random γ, β."""
    from conftest import textured_net

    base = textured_net(0.25, 2, seed=0).state_dict()
    nets = []
    for k in range(n):
        net = textured_net(0.25, 2, seed=k).eval()
        norms = {f"{name}.{p}" for name, m in net.named_modules() if isinstance(m, torch.nn.InstanceNorm2d) for p in ("weight", "bias")}
        net.load_state_dict({key: v if key in norms else base[key] for key, v in net.state_dict().items()})
        nets.append(net)
    return nets


def test_single_style_net_keeps_its_keys_and_shapes():
    single, multi = TransformerNet(), TransformerNet(n_styles=4)
    assert list(single.state_dict()) == list(multi.state_dict())
    norms = [k for k, v in multi.state_dict().items() if v.dim() == 2]
    assert norms and all(single.state_dict()[k].shape == (multi.state_dict()[k].shape[1],) for k in norms)
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in multi.modules())
    # 2 x (32+64+128 + 5·2·128 + 64+32) channels = 3,200 γ, β per style (Dumoulin et al.: ~3 k)
    assert sum(p.numel() for p in multi.style_parameters()) == 4 * 3200
    assert sum(p.numel() for p in TransformerNet(0.5, 3, n_styles=2).style_parameters()) == 2 * 1088
    with pytest.raises(ValueError, match="n_styles"):
        TransformerNet(n_styles=0)


def test_one_hot_style_weights_reproduce_each_single_style_net():
    singles = textured_singles(3)
    multi = conditional_from_singles(singles)
    x = torch.rand(2, 3, 36, 44, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for k, single in enumerate(singles):
            one_hot = torch.nn.functional.one_hot(torch.tensor(k), 3).float()
            ref, got = single(x), multi(x, one_hot)
            # Not bitwise: instance_norm(x)·γ + β rounds differently from instance_norm(x, γ, β)
            # (measured max 2.0e-6 on these textured nets' [0, 1] outputs, 1/2000 of an 8-bit level).
            assert (got - ref).abs().max() < 5e-6, k
            assert (ref - singles[(k + 1) % 3](x)).abs().max() > 0.05  # the styles do differ


def test_mixing_styles_is_mixing_their_gamma_and_beta():
    singles = textured_singles(2)
    multi = conditional_from_singles(singles)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    # a third row holding the average of the first two, picked by a one-hot: the 50/50 mix exactly
    averaged = TransformerNet(0.25, 2, n_styles=3).eval()
    state = {k: torch.cat([v, v.mean(0, keepdim=True)]) if v.dim() == 2 else v for k, v in multi.state_dict().items()}
    averaged.load_state_dict(state)
    single_avg = TransformerNet(0.25, 2).eval()
    single_avg.load_state_dict({k: v.mean(0) if v.dim() == 2 else v for k, v in multi.state_dict().items()})
    with torch.no_grad():
        mixed = multi(x, torch.tensor([0.5, 0.5]))
        assert torch.equal(mixed, averaged(x, torch.tensor([0.0, 0.0, 1.0])))
        assert (mixed - single_avg(x)).abs().max() < 5e-6
        ends = multi(x, torch.tensor([1.0, 0.0])), multi(x, torch.tensor([0.0, 1.0]))
    # ... and visibly between the two styles (the net is not linear in w, but this mix sits inside)
    d_mix, d_ends = (mixed - ends[0]).abs().mean(), (ends[1] - ends[0]).abs().mean()
    assert 0.2 * d_ends < d_mix < 0.8 * d_ends


def test_per_image_style_weights_in_one_batch():
    multi = conditional_from_singles(textured_singles(3))
    x = torch.rand(3, 3, 24, 24, generator=torch.Generator().manual_seed(2))
    w = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [0.2, 0.3, 0.5]])
    with torch.no_grad():
        together = multi(x, w)
        alone = torch.cat([multi(x[i : i + 1], w[i]) for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


def test_style_weights_are_checked():
    multi, single = TransformerNet(0.25, 1, n_styles=3), TransformerNet(0.25, 1)
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="holds 3 styles"):
        multi(x)
    with pytest.raises(ValueError, match=r"\(3,\) or \(B, 3\)"):
        multi(x, torch.ones(2))
    with pytest.raises(ValueError, match="single-style"):
        single(x, torch.ones(1))


def test_conditional_gradients_reach_only_the_styles_used():
    torch.manual_seed(4)
    multi = TransformerNet(0.25, 1, n_styles=3)
    multi(torch.rand(2, 3, 16, 16), torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])).square().mean().backward()
    for p in multi.style_parameters():
        assert p.grad[:2].abs().sum() > 0 and p.grad[2].abs().sum() == 0


# ---- the tiny real-time variant (BlurPool, separable blocks, pixel shuffle) -------------------------


def tiny_param_count(c1: int = 16, c2: int = 32, c3: int = 64, blocks: int = 3) -> int:
    """Worked out from the layout: three blur+stride-2 convs, separable blocks and upsampling, a 3×3 conv to 12 channels."""
    conv = lambda cin, cout, k, groups=1: cin // groups * cout * k * k + cout  # noqa: E731
    norm = lambda c: 2 * c  # noqa: E731
    sep = lambda cin, cout: conv(cin, cin, 3, groups=cin) + conv(cin, cout, 1)  # noqa: E731
    encoder = conv(3, c1, 3) + norm(c1) + conv(c1, c2, 3) + norm(c2) + conv(c2, c3, 3) + norm(c3)
    residual = 2 * (sep(c3, c3) + norm(c3))
    decoder = sep(c3, c2) + norm(c2) + sep(c2, c1) + norm(c1) + conv(c1, 12, 3)
    return encoder + blocks * residual + decoder


def conv_macs(net: torch.nn.Module, h: int, w: int) -> int:
    """Multiply-adds of every convolution (the blur's included) for one h×w image, from the output sizes."""
    total = []

    def hook(module, _, out):
        total.append(out.shape[1] * out.shape[2] * out.shape[3] * module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1])

    def blur_hook(module, inp, out):
        total.append(out.shape[1] * out.shape[2] * out.shape[3] * 9)

    from stylecast.training.transformer import Blur

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    handles += [m.register_forward_hook(blur_hook) for m in net.modules() if isinstance(m, Blur)]
    with torch.no_grad():
        net(torch.rand(1, 3, h, w))
    for handle in handles:
        handle.remove()
    return sum(total)


def test_tiny_variant_size_and_cost():
    tiny = TransformerNet(0.5, 3, variant="tiny")
    assert sum(p.numel() for p in tiny.parameters()) == tiny_param_count() == 58_780
    # 640×480: 0.65 G multiply-adds with the 8 px border margin (656×496 inside; 0.614 G without),
    # 16× fewer than the slim johnson net's 10.2 G
    macs, slim = conv_macs(tiny, 480, 640), conv_macs(TransformerNet(0.5, 3), 480, 640)
    assert 0.64e9 < macs < 0.66e9 and 10.0e9 < slim < 10.3e9 and slim / macs > 15
    assert tiny.margin == 8 and TransformerNet(0.5, 3).margin == 0


def test_tiny_margin_is_a_reflection_border_cropped_off():
    # the margin is reflection padding around the input, cropped off the output: the net with the
    # margin equals the net without it run on the reflection-padded input, cropped
    import torch.nn.functional as F

    torch.manual_seed(2)
    net = TransformerNet(0.5, 3, variant="tiny").eval()
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        y = net(x)
        net.margin = 0
        z = net(F.pad(x, (8, 8, 8, 8), mode="reflect"))[..., 8:48, 8:64]
    assert y.shape == x.shape and torch.allclose(y, z, atol=1e-6)


def test_tiny_fullres_is_tiny_plus_a_stride1_head():
    full = TransformerNet(0.5, 3, variant="tiny_fullres")
    conv = lambda cin, cout: cin * cout * 9 + cout  # noqa: E731
    head = conv(6, 8) + 2 * 8 + conv(8, 8) + 2 * 8 + conv(8, 3)  # 1,275
    assert sum(p.numel() for p in full.parameters()) == tiny_param_count() + head == 60_055
    # the head's 1,224 multiply-adds per pixel over the 656×496 margin-padded frame: 0.40 G more
    macs = conv_macs(full, 480, 640) - conv_macs(TransformerNet(0.5, 3, variant="tiny"), 480, 640)
    assert macs == 656 * 496 * (6 * 8 * 9 + 8 * 8 * 9 + 8 * 3 * 9)
    assert full.margin == 8 and all(m.stride == (1, 1) for m in full.head.modules() if isinstance(m, torch.nn.Conv2d))


def test_the_fullres_head_moves_with_the_camera_where_the_tiny_net_does_not():
    # a 1-px pan: the tiny net's output changes on its 8-px grid's phase; the head alone (stride 1)
    # answers the moved input with its moved answer, up to the instance norms' statistics and the
    # pixels near the edge that see the new column
    from stylecast.training.transformer import FullResolutionHead

    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 97)
    a, b = x[..., :96], x[..., 1:]  # the camera moved one pixel
    head = FullResolutionHead(8).eval()
    torch.nn.init.normal_(head[-1][1].weight, std=0.3)  # a trained head's last conv is not zero
    tiny = TransformerNet(0.5, 3, variant="tiny").eval()
    for m in tiny.modules():  # texture-like weights (random init draws a near-constant image)
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, std=(2 / (m.in_channels // m.groups * m.kernel_size[0] ** 2)) ** 0.5)
    with torch.no_grad():
        moved_head = (head(a, a)[..., 8:-8, 9:-8] - head(b, b)[..., 8:-8, 8:-9]).abs().mean()
        moved_tiny = (tiny(a)[..., 8:-8, 9:-8] - tiny(b)[..., 8:-8, 8:-9]).abs().mean()
        scale = head(a, a).std()
    # measured: head 0.0062 (0.4 % of its output's std: the norms' statistics see one other column),
    # tiny 0.20
    assert moved_head < 0.01 * scale and moved_tiny > 20 * moved_head, (float(moved_head), float(moved_tiny), float(scale))


@pytest.mark.parametrize("variant", ["tiny", "tiny_fullres"])
@pytest.mark.parametrize("h, w", [(64, 64), (37, 53), (16, 16)])
def test_tiny_keeps_size_and_range_and_exports(h, w, variant, tmp_path):
    import numpy as np
    import onnxruntime as ort

    from stylecast.training.export import export_onnx

    torch.manual_seed(1)
    net = TransformerNet(0.5, 3, variant=variant).eval()
    if net.head is not None:
        torch.nn.init.normal_(net.head[-1][1].weight, std=0.1)  # export what a trained head computes
    x = torch.rand(2, 3, h, w)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1
    meta = {
        "style_name": "t",
        "style_image": "t.jpg",
        "recipe": "realtime-tiny",
        "steps": "1",
        "content_weight": "1",
        "style_weight": "1",
        "tv_weight": "1",
        "content_layers": "relu2_2",
        "style_layers": "relu1_2",
    }
    path = export_onnx(net, tmp_path / "t.onnx", meta, exporter="legacy")
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"content": x.numpy()})[0]
    assert float(np.abs(got - y.numpy()).max()) < 1e-4


def test_blur_is_the_binomial_filter_with_reflection():
    from stylecast.training.transformer import Blur

    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 16.0
    out = Blur(1)(x)[0, 0]
    want = torch.tensor([[0, 0, 0, 0, 0], [0, 1, 2, 1, 0], [0, 2, 4, 2, 0], [0, 1, 2, 1, 0], [0, 0, 0, 0, 0]], dtype=torch.float32)
    assert torch.equal(out, want)
    edge = torch.zeros(1, 1, 3, 3)
    edge[0, 0, 0, 0] = 16.0  # reflection: the corner's mirror images add to it
    assert float(Blur(1)(edge)[0, 0, 0, 0]) == 4.0 and "kernel" not in Blur(2).state_dict()


def test_blur_before_subsampling_moves_less_under_a_one_pixel_shift():
    # Zhang 2019: subsampling aliases, so a 1-px move changes a stride-2 conv's output a lot; the
    # low-pass before it removes most of that (the fixed image and conv weights make it exact).
    from stylecast.training.transformer import Blur, ConvLayer

    torch.manual_seed(0)
    x = torch.rand(1, 3, 66, 66)
    conv = ConvLayer(3, 8, 3, stride=2)
    blur = Blur(3)

    def change(f) -> float:
        with torch.no_grad():
            a, b = f(x[..., :64, :64]), f(x[..., :64, 1:65])  # the camera moved one pixel
        return float((a - b).abs().mean() / a.abs().mean())

    plain, blurred = change(conv), change(lambda t: conv(blur(t)))
    assert blurred < 0.6 * plain, (blurred, plain)


def test_variant_names_are_checked_and_recorded():
    from stylecast.training.export import architecture

    with pytest.raises(ValueError, match="variant must be one of johnson, tiny"):
        TransformerNet(variant="small")
    assert architecture(TransformerNet(0.5, 3, variant="tiny")) == "TransformerNet(width=0.5, residual_blocks=3, variant=tiny)"
    assert architecture(TransformerNet(0.5, 3)) == "TransformerNet(width=0.5, residual_blocks=3)"  # old models read as before
