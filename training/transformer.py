"""The feed-forward image transformation network of Johnson et al. 2016 (plain nn.Module).

Architecture (paper, supplementary Table 1) with the two well-known fixes:
- instance normalization instead of batch norm (Ulyanov et al. 2016/2017),
- nearest-neighbour upsample + convolution instead of transposed convolution, which removes the
  checkerboard artifacts of strided deconvolution (Odena et al. 2016, "Deconvolution and
  Checkerboard Artifacts"),
and reflection padding everywhere so borders carry no zero-padding frame.

Contract: input (B, 3, H, W) RGB in [0, 1] -> output (B, 3, H, W) RGB in [0, 1], any H, W >= 8.
Sizes that are not multiples of 4 work: the stride-2 convs round up, the upsampled map is one or
more pixels larger, and the output is cropped back to H x W (plain Slice ops in ONNX).
"""

from __future__ import annotations

import torch
import torch.nn as nn


class ConvLayer(nn.Sequential):
    """Reflection pad + convolution: same-size output at stride 1, ceil(H/2) at stride 2."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__(nn.ReflectionPad2d(kernel_size // 2), nn.Conv2d(in_channels, out_channels, kernel_size, stride))


class ConvNormReLU(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__(
            ConvLayer(in_channels, out_channels, kernel_size, stride),
            nn.InstanceNorm2d(out_channels, affine=True),
            nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    """Two 3x3 conv + instance norm layers with an identity shortcut (He et al. 2016; Gross & Wilber)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
            nn.ReLU(inplace=True),
            ConvLayer(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleConvLayer(nn.Sequential):
    """x2 nearest upsample, then conv + instance norm + ReLU (resize-convolution)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"),
            ConvNormReLU(in_channels, out_channels, kernel_size),
        )


class TransformerNet(nn.Module):
    """Johnson et al. 2016 style network.

    width: channel multiplier (1.0 -> 32/64/128 channels; 0.5 -> 16/32/64, the slim real-time net).
    residual_blocks: 5 in the paper; 3 in the slim net.
    """

    def __init__(self, width: float = 1.0, residual_blocks: int = 5):
        super().__init__()
        if width <= 0 or residual_blocks < 0:
            raise ValueError(f"width must be > 0 and residual_blocks >= 0, got {width}, {residual_blocks}")
        self.width, self.residual_blocks = float(width), int(residual_blocks)
        c1, c2, c3 = (max(1, round(c * width)) for c in (32, 64, 128))
        self.encoder = nn.Sequential(
            ConvNormReLU(3, c1, 9),
            ConvNormReLU(c1, c2, 3, stride=2),
            ConvNormReLU(c2, c3, 3, stride=2),
        )
        self.residuals = nn.Sequential(*[ResidualBlock(c3) for _ in range(residual_blocks)])
        self.decoder = nn.Sequential(
            UpsampleConvLayer(c3, c2),
            UpsampleConvLayer(c2, c1),
            ConvLayer(c1, 3, 9),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = self.decoder(self.residuals(self.encoder(x)))
        # A sigmoid keeps the output in [0, 1] with a gradient everywhere; clamping inside the
        # training loss zeroes gradients and collapsed a CPU run (DESIGN.md).
        return torch.sigmoid(y[..., :h, :w])
