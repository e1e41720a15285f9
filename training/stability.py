"""Random small camera motions for stability training (losses.functional.stability_loss).

A batch transform T = a random affine map per image: a shift of up to `shift` pixels (sub-pixel
included), a rotation of up to `rotation` degrees and a zoom of up to ±`zoom`, applied with
bilinear sampling (torch's affine_grid/grid_sample in pixel-aligned coordinates). The same T moves
the input and the network's output; the mask keeps the pixels that came from inside the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Perturbation:
    shift: float = 2.0  # px, uniform in [-shift, shift] on each axis
    rotation: float = 1.0  # degrees, uniform in [-rotation, rotation]
    zoom: float = 0.02  # relative, uniform in [1 - zoom, 1 + zoom]
    noise: float = 0.01  # std of Gaussian noise added to the moved input ([0, 1] units)


def random_theta(batch: int, height: int, width: int, p: Perturbation, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, 2, 3) affine matrices in affine_grid's normalized coordinates (align_corners=False)."""
    u = torch.rand(batch, 4, generator=generator) * 2 - 1
    angle = u[:, 0] * math.radians(p.rotation)
    scale = 1.0 + u[:, 1] * p.zoom
    # a shift of s pixels is 2s/size in normalized coordinates
    tx, ty = u[:, 2] * p.shift * 2 / width, u[:, 3] * p.shift * 2 / height
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # rotation in pixel space on a non-square image: scale the off-diagonal terms by the aspect
    aspect = height / width
    row0 = torch.stack([cos, -sin * aspect, tx], 1)
    row1 = torch.stack([sin / aspect, cos, ty], 1)
    return torch.stack([row0, row1], 1)


def warp(images: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(moved images, mask (B, 1, H, W) of pixels sampled from inside the frame)."""
    theta = theta.to(images.device, torch.float32)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    moved = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    ones = torch.ones_like(images[:, :1], dtype=torch.float32)
    mask = F.grid_sample(ones, grid, mode="bilinear", padding_mode="zeros", align_corners=False) > 0.999
    return moved.to(images.dtype), mask
