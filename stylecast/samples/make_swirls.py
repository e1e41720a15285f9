"""Generate `swirls.png`, the bundled style image: brush strokes along a swirling flow field.

No public-domain painting ships in a package on the registries we can use, so the demo's style is
drawn here (numpy + Pillow, deterministic): short thick strokes in a night-sky palette of blues
with yellow/white highlights follow the streamlines of a few vortices, the texture Gram matrices
pick up. Run `python stylecast/samples/make_swirls.py` to recreate it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 384  # output side (square)
SUPER = 2  # supersampling for anti-aliased strokes
PALETTE = np.array(
    [
        [18, 36, 92],
        [30, 60, 140],
        [52, 96, 178],
        [86, 132, 200],
        [38, 78, 120],  # blues
        [120, 168, 210],
        [230, 200, 70],
        [245, 225, 120],
        [250, 245, 210],
        [60, 110, 90],  # light, yellows, green
    ],
    dtype=np.float64,
)
WEIGHTS = np.array([14, 18, 16, 10, 8, 6, 6, 4, 2, 3], dtype=np.float64)


def flow(x: np.ndarray, y: np.ndarray, vortices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit direction field: a gentle left-to-right drift plus point vortices (cx, cy, strength)."""
    u, v = np.full_like(x, 0.6), 0.15 * np.sin(y * 6.0)
    for cx, cy, s in vortices:
        dx, dy = x - cx, y - cy
        r2 = dx * dx + dy * dy + 0.004
        u += -s * dy / r2 * 0.12
        v += s * dx / r2 * 0.12
    n = np.sqrt(u * u + v * v) + 1e-9
    return u / n, v / n


def make(seed: int = 7) -> Image.Image:
    rng = np.random.default_rng(seed)
    side = SIZE * SUPER
    img = Image.new("RGB", (side, side), (24, 44, 100))
    draw = ImageDraw.Draw(img)
    vortices = np.array([[0.3, 0.35, 1.0], [0.68, 0.3, -0.8], [0.5, 0.72, 1.2], [0.15, 0.8, -0.6], [0.85, 0.75, 0.7]])
    probs = WEIGHTS / WEIGHTS.sum()
    for layer, (count, width, length) in enumerate([(2500, 9, 14), (3500, 6, 10), (2500, 4, 7)]):
        for _ in range(count):
            p = rng.uniform(0, 1, 2)
            base = PALETTE[rng.choice(len(PALETTE), p=probs)]
            # strokes near a vortex centre are brighter (the "stars")
            near = min(np.hypot(*(p - v[:2])) for v in vortices)
            if near < 0.07 and rng.uniform() < 0.7:
                base = PALETTE[rng.choice([6, 7, 8])]
            col = tuple(int(c) for c in np.clip(base + rng.normal(0, 12, 3), 0, 255))
            pts = [tuple(p * side)]
            q = p.copy()
            sign = 1 if rng.uniform() < 0.5 else -1
            for _ in range(length):
                u, v = flow(np.array([q[0]]), np.array([q[1]]), vortices)
                q = q + sign * 0.006 * np.array([u[0], v[0]])
                pts.append(tuple(q * side))
            draw.line(pts, fill=col, width=width * SUPER // 2 + layer, joint="curve")
    img = img.filter(ImageFilter.GaussianBlur(0.6 * SUPER))
    return img.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


if __name__ == "__main__":
    out = Path(__file__).with_name("swirls.png")
    make().save(out, optimize=True)
    print(f"wrote {out}")
