"""The Gatys et al. (2015) losses and the total-variation prior: ONE definition of each formula.

Everything in stylecast that scores an image (the slow optimizer, the trainer, `compare`) calls
these. Shapes: features are (B, C, H, W); Gram matrices are (B, C, C).
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """G = F·Fᵀ / (C·H·W), batched: (B, C, H, W) -> (B, C, C), always in float32.

    Normalizing by C·H·W makes a Gram target independent of the image size, so a style image
    of any size can supply targets for an output of another size. The product runs in fp32 even
    under bf16/fp16 autocast: sums over H·W terms lose too many bits in half precision.
    """
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w).float()
    with torch.autocast(device_type=f.device.type, enabled=False):
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Feature reconstruction loss: mean squared error between activations (Gatys eq. 1, mean-normalized)."""
    return F.mse_loss(features.float(), target.float())


def style_loss(
    grams: Mapping[str, torch.Tensor],
    targets: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float],
    per_sample: bool = False,
) -> torch.Tensor:
    """Σ_l w_l · mean((G_l − A_l)²) over the layers named in `layer_weights` (Gatys eq. 5).

    `targets[l]` is (1, C, C) or (B, C, C); a (1, C, C) target is shared by the whole batch.
    per_sample: (B,) losses, one per image (each mean over its own C·C entries), whose mean is
    the batch loss; a multi-style batch weights and logs them per style.
    """
    total = None
    for name, weight in layer_weights.items():
        g, a = grams[name], targets[name]
        if per_sample:
            term = weight * (g - a.expand_as(g)).square().mean(dim=(1, 2))
        else:
            term = weight * F.mse_loss(g, a.expand_as(g))
        total = term if total is None else total + term
    if total is None:
        raise ValueError("style_loss needs at least one layer")
    return total


def total_variation(image: torch.Tensor, exponent: float = 1.0) -> torch.Tensor:
    """Anisotropic total variation: mean |Δx|^β + mean |Δy|^β over neighbouring pixels.

    Means (not sums) keep the weight independent of image size. With β = 1 a 0/1 checkerboard
    scores exactly 2 (every horizontal and vertical difference is 1); a constant image scores 0.
    """
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    if exponent == 1.0:
        return dy.abs().mean() + dx.abs().mean()
    return dy.abs().pow(exponent).mean() + dx.abs().pow(exponent).mean()


def alpha_norm(image: torch.Tensor, alpha: float = 6.0) -> torch.Tensor:
    """α-norm image prior (Mahendran & Vedaldi 2015, eq. 3): mean |x|^α over every element.

    The caller centres and scales x (e.g. 2·(pixel − 0.5), so ±1 at the ends of the range); a large
    α (the paper uses 6) barely touches values inside the range and grows steeply past it, which
    keeps an unbounded reconstruction within [0, 1]. The mean keeps the weight size-independent.
    """
    return image.float().abs().pow(alpha).mean()


def blend_grams(grams: list[Mapping[str, torch.Tensor]], weights: list[float] | None = None) -> dict[str, torch.Tensor]:
    """Mix Gram targets of several style images: Σ_i w_i G_i with w normalized to sum 1."""
    if not grams:
        raise ValueError("blend_grams needs at least one style")
    if weights is None:
        weights = [1.0] * len(grams)
    if len(weights) != len(grams):
        raise ValueError(f"{len(weights)} blend weights for {len(grams)} styles")
    total = float(sum(weights))
    if total <= 0 or any(w < 0 for w in weights):
        raise ValueError(f"blend weights must be non-negative with a positive sum, got {weights}")
    return {name: sum((w / total) * g[name] for w, g in zip(weights, grams)) for name in grams[0]}


def stability_loss(perturbed_output: torch.Tensor, transformed_output: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Temporal-stability penalty from still images: mean (f(T(x) + n) − T(f(x)))² over valid pixels.

    A network that flickers on video answers a small camera motion T (sub-pixel shift, rotation,
    zoom) or fresh sensor noise n with a different stylization instead of the moved one; this
    penalizes the difference (the "compound regularization" of Wang et al. 2020, ReReVST, without
    video or optical flow). `mask` (B, 1, H, W) in {0, 1} marks the pixels T brings in from inside
    the frame; the mean is over those. Images in [0, 1]; fp32.
    """
    diff = (perturbed_output.float() - transformed_output.float()) ** 2
    if mask is None:
        return diff.mean()
    mask = mask.float().expand_as(diff)
    return (diff * mask).sum() / mask.sum().clamp_min(1.0)
