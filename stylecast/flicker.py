"""Temporal stability of a per-frame stylizer, measured on synthetic clips with exactly known motion.

Flicker is the warping error of Lai et al. 2018 ("Learning Blind Video Temporal Consistency"):
the mean |O_t − warp(O_{t−1})| over the pixels visible in both frames. Video datasets need an
optical-flow model to warp; here every clip is made from one still photo by a known camera motion
(pans, zoom, brightness ramp, sensor noise), so the warp is exact and needs no flow model:

- frame t samples the photo at P = c + s_t · (q − q0) + d_t for each frame pixel q (bilinear;
  c the photo's centre, q0 the frame's, s_t the zoom, d_t the pan);
- warp(O_{t−1}) samples the previous output at q' = q0 + (P − c − d_{t−1}) / s_{t−1}, where that
  point lies inside frame t−1.

An integer pan samples at integer positions, so for the photo itself (or any pointwise function of
it) the error is exactly 0: a network's error there is its own, from the stride-2 convolutions'
aliasing and its border handling. Sub-pixel pans and zooms also blur through the interpolation;
the photo's own error is the floor to compare with. Sensor noise on a still camera is measured as
noise amplification: the output's mean temporal std over the input's (1 = passes noise through,
< 1 = suppresses it).

Errors are in 8-bit levels (0–255). numpy only: the torch-free stylizer and the trainer both use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

Stylize = Callable[[np.ndarray], np.ndarray]  # HxWx3 float32 [0, 1] -> HxWx3 float32 [0, 1]


@dataclass(frozen=True)
class Motion:
    """A camera motion over a still photo, per frame: pan (px of the frame), zoom factor, gain, noise."""

    name: str
    pan: tuple[float, float] = (0.0, 0.0)  # (dx, dy) per frame, in frame pixels
    zoom: float = 1.0  # scale factor per frame (>1 zooms in)
    gain: float = 0.0  # brightness change per frame (0.01 = +1 % a frame)
    noise: float = 0.0  # sensor noise std, in [0, 1] units, fresh each frame

    def scale(self, t: int) -> float:
        return 1.0 / self.zoom**t  # photo pixels per frame pixel

    def offset(self, t: int) -> np.ndarray:
        return np.array([self.pan[0] * t, self.pan[1] * t], np.float64)  # (x, y), photo pixels


# The benchmark's clips: integer and sub-pixel pans, a slow zoom, a brightness ramp, still noise.
MOTIONS: tuple[Motion, ...] = (
    Motion("pan 1 px", pan=(1.0, 0.0)),
    Motion("pan 4 px", pan=(4.0, 0.0)),
    Motion("pan 0.5 px", pan=(0.5, 0.25)),
    Motion("zoom 1 %", zoom=1.01),
    Motion("brightness +1 %", gain=0.01),
    Motion("noise 3/255", noise=3 / 255),
)


def bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample HxWxC `image` at float pixel-centre coordinates (x, y) (clamped to the edge)."""
    h, w = image.shape[:2]
    x = np.clip(x, 0, w - 1)
    y = np.clip(y, 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2) if w > 1 else np.zeros_like(x, np.int64)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2) if h > 1 else np.zeros_like(y, np.int64)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


@dataclass
class Clip:
    """Frames made from `photo` by `motion`, and what is needed to warp between them."""

    photo: np.ndarray
    motion: Motion
    frames: list[np.ndarray]
    size: tuple[int, int]  # (H, W) of a frame
    grid: tuple[np.ndarray, np.ndarray] = field(repr=False, default=None)  # frame pixel centres (x, y)

    def photo_coords(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        ph, pw = self.photo.shape[:2]
        h, w = self.size
        qx, qy = self.grid
        s, d = self.motion.scale(t), self.motion.offset(t)
        return (pw - 1) / 2 + s * (qx - (w - 1) / 2) + d[0], (ph - 1) / 2 + s * (qy - (h - 1) / 2) + d[1]

    def previous_coords(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where each pixel of frame t lies in frame t−1, and whether it is inside it."""
        ph, pw = self.photo.shape[:2]
        h, w = self.size
        px, py = self.photo_coords(t)
        s, d = self.motion.scale(t - 1), self.motion.offset(t - 1)
        x = (w - 1) / 2 + (px - (pw - 1) / 2 - d[0]) / s
        y = (h - 1) / 2 + (py - (ph - 1) / 2 - d[1]) / s
        eps = 1e-6
        inside = (x >= -eps) & (x <= w - 1 + eps) & (y >= -eps) & (y <= h - 1 + eps)
        return x, y, inside


def make_clip(photo: np.ndarray, motion: Motion, frames: int = 8, size: tuple[int, int] = (240, 320), seed: int = 0) -> Clip:
    """`frames` frames of `size` from `photo` (HxWx3 float [0, 1], larger than the path of the frame)."""
    h, w = size
    qy, qx = np.mgrid[0:h, 0:w].astype(np.float64)
    clip = Clip(photo, motion, [], size, (qx, qy))
    rng = np.random.default_rng(seed)
    ph, pw = photo.shape[:2]
    for t in range(frames):
        x, y = clip.photo_coords(t)
        if x.min() < 0 or y.min() < 0 or x.max() > pw - 1 or y.max() > ph - 1:
            raise ValueError(f"{motion.name}: frame {t} leaves the {pw}x{ph} photo; use a larger photo or fewer frames")
        frame = bilinear(photo, x, y) * (1.0 + motion.gain * t)
        if motion.noise:
            frame = frame + rng.normal(0.0, motion.noise, frame.shape).astype(np.float32)
        clip.frames.append(np.clip(frame, 0.0, 1.0).astype(np.float32))
    return clip


def warping_error(clip: Clip, outputs: Sequence[np.ndarray]) -> float:
    """Mean over frame pairs of mean |O_t − warp(O_{t−1})| on pixels visible in both, 8-bit levels."""
    errors = []
    for t in range(1, len(outputs)):
        x, y, inside = clip.previous_coords(t)
        warped = bilinear(outputs[t - 1], x, y)
        diff = np.abs(outputs[t].astype(np.float64) - warped)[inside]
        errors.append(diff.mean() * 255.0)
    return float(np.mean(errors))


def temporal_std(frames: Sequence[np.ndarray]) -> float:
    """Mean over pixels of the std over time (a still camera): 8-bit levels."""
    return float(np.std(np.stack(frames).astype(np.float64), axis=0).mean() * 255.0)


def measure(
    stylize: Stylize, photo: np.ndarray, motions: Sequence[Motion] = MOTIONS, frames: int = 8, size: tuple[int, int] = (240, 320), seed: int = 0
) -> dict[str, float]:
    """{motion name: warping error (levels)} and, for noise motions, `NAME amplification` (out/in std).
    A stateful `stylize` (one with a reset(), e.g. inference.temporal.Steadied) is reset before each clip."""
    out: dict[str, float] = {}
    for motion in motions:
        clip = make_clip(photo, motion, frames, size, seed)
        if hasattr(stylize, "reset"):
            stylize.reset()
        outputs = [np.clip(stylize(f), 0.0, 1.0) for f in clip.frames]
        if motion.noise:
            out[f"{motion.name} amplification"] = temporal_std(outputs) / max(temporal_std(clip.frames), 1e-12)
        else:
            out[motion.name] = warping_error(clip, outputs)
    return out
