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
