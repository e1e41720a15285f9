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
