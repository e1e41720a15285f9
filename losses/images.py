"""Images as torch tensors: thin wrappers over `stylecast.images` (the one decoder)."""

from __future__ import annotations

import numpy as np
import torch

from stylecast.images import Source, load_image, save_image


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 float [0, 1] -> (1, 3, H, W) float32 (a copy: the caller's array is never aliased)."""
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32).transpose(2, 0, 1).copy()).unsqueeze(0)


def to_array(tensor: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) -> HxWx3 float32 in [0, 1] (clamped; detached, on CPU)."""
    t = tensor.detach().float().cpu()
    if t.ndim == 4:
        t = t[0]
    return t.clamp(0, 1).permute(1, 2, 0).numpy()


def load_tensor(source: Source, size: int | tuple[int, int] | None = None, device: str | torch.device = "cpu") -> torch.Tensor:
    return to_tensor(load_image(source, size)).to(device)


def save_tensor(tensor: torch.Tensor, path) -> None:
    save_image(to_array(tensor), path)
