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

Many styles in one network (Dumoulin et al. 2017, "A Learned Representation for Artistic Style"):
with n_styles > 1 every instance norm is a `ConditionalInstanceNorm2d` whose scale and shift are
rows of (n_styles, C) tables; the convolutions are shared. forward(x, style_weights) takes a
weight per style, (N,) for the whole batch or (B, N) per image: a one-hot picks a style, a convex
mix blends styles by blending their γ, β. n_styles == 1 is the single-style net, unchanged (same
modules, same state-dict keys and shapes as before conditional norms existed).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm whose affine scale γ and shift β are picked or mixed per image (Dumoulin et al.
    2017): γ = w·Γ, β = w·B with Γ, B the (n_styles, C) tables and w (B, n_styles) style weights.

    Normalizing without affine and then scaling (rather than passing γ, β into instance_norm)
    keeps the per-image γ, β possible and exports as InstanceNormalization(scale 1, shift 0)
    followed by Mul/Add, the shape the tiled stylizer's graph rewrite understands
    (inference/tiling.py). Its output differs from nn.InstanceNorm2d(affine=True)'s by rounding only
    (the net's output moves by up to 2e-6).
    """

    def __init__(self, channels: int, n_styles: int, eps: float = 1e-5):
        super().__init__()
        self.channels, self.n_styles, self.eps = int(channels), int(n_styles), float(eps)
        # weight/bias: nn.InstanceNorm2d's names, so a single-style net's γ, β load into a row
        self.weight = nn.Parameter(torch.ones(n_styles, channels))
        self.bias = nn.Parameter(torch.zeros(n_styles, channels))

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        # (B, N, 1) * (N, C) summed over N: elementwise, so bf16 autocast leaves it in fp32 (a
        # matmul would run in bf16), and a one-hot w gives exactly one row.
        w = style_weights.to(self.weight.dtype)[:, :, None]
        gamma, beta = (w * self.weight).sum(1), (w * self.bias).sum(1)
        return F.instance_norm(x, eps=self.eps) * gamma[:, :, None, None] + beta[:, :, None, None]

    def extra_repr(self) -> str:
        return f"{self.channels}, n_styles={self.n_styles}"


def instance_norm(channels: int, n_styles: int) -> nn.Module:
    """The single-style net's affine instance norm, or the conditional one for several styles."""
    return nn.InstanceNorm2d(channels, affine=True) if n_styles == 1 else ConditionalInstanceNorm2d(channels, n_styles)


class StyleSequential(nn.Sequential):
    """nn.Sequential that hands the style weights to the layers that take them (None: single style)."""

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self:
            x = layer(x, style_weights) if isinstance(layer, STYLED) else layer(x)
        return x


class ConvLayer(nn.Sequential):
    """Reflection pad + convolution: same-size output at stride 1, ceil(H/2) at stride 2."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__(nn.ReflectionPad2d(kernel_size // 2), nn.Conv2d(in_channels, out_channels, kernel_size, stride))


class ConvNormReLU(StyleSequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, n_styles: int = 1):
        super().__init__(
            ConvLayer(in_channels, out_channels, kernel_size, stride),
            instance_norm(out_channels, n_styles),
            nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    """Two 3x3 conv + instance norm layers with an identity shortcut (He et al. 2016; Gross & Wilber)."""

    def __init__(self, channels: int, n_styles: int = 1):
        super().__init__()
        self.body = StyleSequential(
            ConvLayer(channels, channels, 3),
            instance_norm(channels, n_styles),
            nn.ReLU(inplace=True),
            ConvLayer(channels, channels, 3),
            instance_norm(channels, n_styles),
        )

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        return x + self.body(x, style_weights)


class UpsampleConvLayer(StyleSequential):
    """x2 nearest upsample, then conv + instance norm + ReLU (resize-convolution)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, n_styles: int = 1):
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"),
            ConvNormReLU(in_channels, out_channels, kernel_size, n_styles=n_styles),
        )


class Blur(nn.Module):
    """Fixed low-pass [1, 2, 1] ⊗ [1, 2, 1] / 16 per channel, reflection-padded, same size: put before a
    stride-2 convolution it removes what subsampling would alias (Zhang 2019, "Making Convolutional
    Networks Shift-Invariant Again"), so a one-pixel camera move changes the features less (flicker).
    A constant depthwise Conv in ONNX; the kernel is not a trained weight (not in the state dict)."""

    def __init__(self, channels: int):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (k[:, None] * k[None, :] / 16).expand(channels, 1, 3, 3).contiguous(), persistent=False)
        self.pad = nn.ReflectionPad2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.pad(x), self.kernel.to(x.dtype), groups=x.shape[1])


class SeparableConv(nn.Sequential):
    """Reflection pad + depthwise k×k + pointwise 1×1 (MobileNet): k²·C + C·C' multiply-adds per
    pixel instead of k²·C·C' — 8× fewer for the 64-channel 3×3 blocks of the tiny net."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__(
            nn.ReflectionPad2d(kernel_size // 2), nn.Conv2d(in_channels, in_channels, kernel_size, groups=in_channels), nn.Conv2d(in_channels, out_channels, 1)
        )


class SeparableResidualBlock(nn.Module):
    """ResidualBlock with depthwise-separable convolutions."""

    def __init__(self, channels: int, n_styles: int = 1):
        super().__init__()
        self.body = StyleSequential(
            SeparableConv(channels, channels),
            instance_norm(channels, n_styles),
            nn.ReLU(inplace=True),
            SeparableConv(channels, channels),
            instance_norm(channels, n_styles),
        )

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        return x + self.body(x, style_weights)


def blur_down(in_channels: int, out_channels: int, n_styles: int) -> StyleSequential:
    """Anti-aliased stride-2 stage: Blur, then the strided 3×3 conv + norm + ReLU."""
    return StyleSequential(Blur(in_channels), ConvLayer(in_channels, out_channels, 3, stride=2), instance_norm(out_channels, n_styles), nn.ReLU(inplace=True))


def separable_up(in_channels: int, out_channels: int, n_styles: int) -> StyleSequential:
    """×2 nearest upsample, then a separable 3×3 conv + norm + ReLU (resize-convolution, no checkerboard)."""
    return StyleSequential(
        nn.Upsample(scale_factor=2, mode="nearest"), SeparableConv(in_channels, out_channels), instance_norm(out_channels, n_styles), nn.ReLU(inplace=True)
    )


class FullResolutionHead(StyleSequential):
    """Stride-1 refinement at full resolution after the tiny net (issue 16, flicker): three 3×3
    conv layers that see the input photo and the tiny net's RGB logits and add a residual to the
    logits. The tiny net draws on an 8-px grid: a camera pan of 8 px moved its output by 1.2 8-bit
    levels, one of 1 px by 6.6 — nearly all its flicker is the grid's phase. Nothing here is
    strided, so what the head draws moves with the camera; with the stability loss the texture
    moves here. The last conv starts at zero: a head grown on a trained tiny net starts as that net.
    """

    def __init__(self, width: int, n_styles: int = 1):
        super().__init__(
            ConvLayer(6, width, 3),
            instance_norm(width, n_styles),
            nn.ReLU(inplace=True),
            ConvLayer(width, width, 3),
            instance_norm(width, n_styles),
            nn.ReLU(inplace=True),
            ConvLayer(width, 3, 3),
        )
        nn.init.zeros_(self[-1][1].weight)
        nn.init.zeros_(self[-1][1].bias)

    def forward(self, x: torch.Tensor, logits: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        return logits + super().forward(torch.cat([x, logits], 1), style_weights)


STYLED = (StyleSequential, ResidualBlock, SeparableResidualBlock, ConditionalInstanceNorm2d)
# The network variants by name (a registry, not knobs): "johnson" is the paper's layout; "tiny" is the
# real-time one for 640×480 on a CPU without AMX — three anti-aliased stride-2 stages (BlurPool, the
# first on the 3-channel input), depthwise-separable residual blocks at 1/8 resolution and separable
# upsampling convs, and a 3×3 conv to 12 channels at 1/2 resolution with a pixel shuffle (depth to
# space) to full size instead of a 9×9 conv there (tests/test_transformer.py has its size and cost).
# "tiny_fullres" is "tiny" with a FullResolutionHead (8 channels): steadier on video, sharper detail,
# 1.8-2.3× the tiny net's time on ONNX Runtime (BENCHMARKS.md, Inference latency). It grows from a
# trained "tiny" net (GROWS_FROM: a warm start from one leaves only the head at its init, which
# outputs exactly what the tiny net did).
VARIANTS = ("johnson", "tiny", "tiny_fullres")
GROWS_FROM = {"tiny_fullres": "tiny"}
FULLRES_HEAD_WIDTH = 8


class TransformerNet(nn.Module):
    """Johnson et al. 2016 style network.

    width: channel multiplier (1.0 -> 32/64/128 channels; 0.5 -> 16/32/64, the slim real-time net).
    residual_blocks: 5 in the paper; 3 in the slim net.
    n_styles: 1 for one style per network; more makes every instance norm conditional (Dumoulin
        et al. 2017): 2·Σ channels = 3,200 parameters per style in the full net (1,088 slim),
        beside 1.68 M shared ones.
    """

    def __init__(self, width: float = 1.0, residual_blocks: int = 5, n_styles: int = 1, variant: str = "johnson"):
        super().__init__()
        if width <= 0 or residual_blocks < 0 or n_styles < 1:
            raise ValueError(f"width must be > 0, residual_blocks >= 0 and n_styles >= 1, got {width}, {residual_blocks}, {n_styles}")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        self.width, self.residual_blocks, self.n_styles, self.variant = float(width), int(residual_blocks), int(n_styles), variant
        c1, c2, c3 = (max(1, round(c * width)) for c in (32, 64, 128))
        n = self.n_styles
        # Reflection margin added around the input and cropped off the output (tiny only). The tiny
        # net's first cells are 8×8 px; along the image's edges they drew a band of their own texture
        # (the mean horizontal gradient of the last 6 rows was up to 1.5-2.0× the interior's on four
        # test photos at 640 px; with 8 px of margin 0.8-1.4×, no band to the eye). +6 % pixels at
        # 640×480.
        tiny = variant in ("tiny", "tiny_fullres")
        self.margin = 8 if tiny else 0
        self.head = FullResolutionHead(FULLRES_HEAD_WIDTH, n) if variant == "tiny_fullres" else None
        if tiny:
            # Nothing but the input's blur and the output's pixel shuffle runs at full resolution:
            # on 2 CPU cores the full-resolution maps (memory traffic, not multiply-adds) were most
            # of the time — a first tiny layout with 16 channels at full size took 152 ms at 640×480
            # for 2.0 GMAC (slim: 246 ms, 10.2 GMAC).
            self.encoder = StyleSequential(blur_down(3, c1, n), blur_down(c1, c2, n), blur_down(c2, c3, n))
            self.residuals = StyleSequential(*[SeparableResidualBlock(c3, n_styles=n) for _ in range(residual_blocks)])
            self.decoder = StyleSequential(separable_up(c3, c2, n), separable_up(c2, c1, n), ConvLayer(c1, 12, 3), nn.PixelShuffle(2))
            return
        self.encoder = StyleSequential(
            ConvNormReLU(3, c1, 9, n_styles=n),
            ConvNormReLU(c1, c2, 3, stride=2, n_styles=n),
            ConvNormReLU(c2, c3, 3, stride=2, n_styles=n),
        )
        self.residuals = StyleSequential(*[ResidualBlock(c3, n_styles=n) for _ in range(residual_blocks)])
        self.decoder = StyleSequential(
            UpsampleConvLayer(c3, c2, n_styles=n),
            UpsampleConvLayer(c2, c1, n_styles=n),
            ConvLayer(c1, 3, 9),
        )

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, 3, H, W) in [0, 1]; style_weights (N,) or (B, N) when n_styles > 1, else None."""
        w = self._check_style_weights(x, style_weights)
        h, wd = x.shape[-2:]
        m = self.margin
        if m:
            x = F.pad(x, (m, m, m, m), mode="reflect")
        y = self.decoder(self.residuals(self.encoder(x, w), w), w)
        if self.head is not None:
            y = self.head(x, y[..., : x.shape[-2], : x.shape[-1]], w)
        # A sigmoid keeps the output in [0, 1] with a gradient everywhere; clamping inside the
        # training loss zeroes gradients and collapsed a CPU run (DESIGN.md).
        return torch.sigmoid(y[..., m : m + h, m : m + wd])

    def _check_style_weights(self, x: torch.Tensor, style_weights: torch.Tensor | None) -> torch.Tensor | None:
        if self.n_styles == 1:
            if style_weights is not None:
                raise ValueError("a single-style TransformerNet takes no style_weights")
            return None
        if style_weights is None:
            raise ValueError(f"this TransformerNet holds {self.n_styles} styles: pass style_weights, (N,) or (B, N)")
        if style_weights.dim() == 1:
            style_weights = style_weights[None]  # one mix for the whole batch (broadcast over B)
        if style_weights.dim() != 2 or style_weights.shape[-1] != self.n_styles:
            raise ValueError(f"style_weights must be ({self.n_styles},) or (B, {self.n_styles}), got {tuple(style_weights.shape)}")
        return style_weights

    def style_parameters(self) -> list[nn.Parameter]:
        """The per-style tables (γ, β of every conditional norm), in module order."""
        return [p for m in self.modules() if isinstance(m, ConditionalInstanceNorm2d) for p in (m.weight, m.bias)]
