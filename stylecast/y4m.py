"""YUV4MPEG2 (.y4m) clips: what Chromium's fake camera plays (`--use-file-for-fake-video-capture=
FILE.y4m`, looped), so the page's tests and the browser benchmark see real pictures instead of the
built-in test pattern.

4:2:0 planar, full-range BT.601 (`C420jpeg`, the JPEG matrix): every frame is Y (H×W) then Cb and
Cr (H/2×W/2, 2×2 means). Uncompressed: a 640×480 frame is 460 KB, so clips are written to a
temp folder at the time they are needed, a few seconds long. numpy only (no torch).
"""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np

# full-range BT.601 (JFIF): Y, Cb, Cr from R, G, B in 0..255
_RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)


def to_i420(rgb: np.ndarray) -> bytes:
    """HxWx3 RGB (uint8, or float in [0, 1]) with even H and W -> the frame's Y, Cb, Cr planes."""
    if rgb.dtype != np.uint8:
        rgb = np.clip(np.rint(rgb * 255.0), 0, 255)
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"a 4:2:0 frame needs an even width and height, got {w}x{h}")
    ycc = rgb.astype(np.float32) @ _RGB_TO_YCBCR.T
    ycc[..., 1:] += 128.0
    y = ycc[..., 0]
    chroma = ycc[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
    planes = [y, chroma[..., 0], chroma[..., 1]]
    return b"".join(np.clip(np.rint(p), 0, 255).astype(np.uint8).tobytes() for p in planes)


def write_y4m(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: int = 30) -> int:
    """Write `frames` (each HxWx3 RGB, all one size) as a .y4m at `fps`; returns the frame count."""
    count = 0
    with open(path, "wb") as f:
        for frame in frames:
            if count == 0:
                h, w = frame.shape[:2]
                f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
            elif frame.shape[:2] != (h, w):
                raise ValueError(f"frame {count} is {frame.shape[1]}x{frame.shape[0]}, the clip is {w}x{h}")
            f.write(b"FRAME\n" + to_i420(frame))
            count += 1
    if count == 0:
        raise ValueError("a clip needs at least one frame")
    return count
