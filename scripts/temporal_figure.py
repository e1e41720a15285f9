"""README figure: what the temporal filter does to a webcam net's flicker, frame by frame vs filtered.

    python scripts/temporal_figure.py [--style starry_night_tiny]

The bundled cat photo (stylecast/samples/chelsea.jpg) at 480 px, filmed by the synthetic camera of
stylecast/flicker.py: a 1-px pan and a still camera with σ = 3/255 sensor noise, 8 frames of 320x240.
Row 1: every frame on its own; row 2: through the temporal filter at the default weight. Columns: the
last frame of the pan; where it flickers (|O_t − warp(O_t−1)|, 8-bit levels ×10: white = 25.5+); and
the still camera's flicker (the std over the 8 frames, ×40: white = 6.4+). Writes docs/figures/temporal_filter.jpg
and prints the mean of each map.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylecast.figures import row, stack  # noqa: E402  (after the sys.path line)
from stylecast.flicker import Motion, bilinear, make_clip  # noqa: E402
from stylecast.images import load_image  # noqa: E402
from stylecast.inference.stylizer import Stylizer  # noqa: E402
from stylecast.inference.temporal import Steadied, TemporalSettings  # noqa: E402

FRAMES = 8


def gray(levels: np.ndarray, gain: float) -> np.ndarray:
    """HxW map in 8-bit levels -> HxWx3 in [0, 1], ×gain (white from 255/gain levels up)."""
    return np.repeat(np.clip(levels * gain / 255.0, 0.0, 1.0)[..., None], 3, axis=2)


def maps(stylize, photo: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(last frame of the pan, its flicker map, the still camera's std map), maps in levels."""
    pan = make_clip(photo, Motion("pan 1 px", pan=(1.0, 0.0)), FRAMES)
    if hasattr(stylize, "reset"):
        stylize.reset()
    out = [np.clip(stylize(f), 0.0, 1.0) for f in pan.frames]
    x, y, inside = pan.previous_coords(FRAMES - 1)
    flicker = np.abs(out[-1] - bilinear(out[-2], x, y)).mean(axis=2) * 255.0 * inside
    still = make_clip(photo, Motion("noise", noise=3 / 255), FRAMES)
    if hasattr(stylize, "reset"):
        stylize.reset()
    std = np.std(np.stack([np.clip(stylize(f), 0.0, 1.0) for f in still.frames]), axis=0).mean(axis=2) * 255.0
    return out[-1], flicker, std


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--style", default="starry_night_tiny")
    p.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "figures" / "temporal_filter.jpg")
    a = p.parse_args(argv)
    photo = load_image(ROOT / "stylecast" / "samples" / "chelsea.jpg", 480)
    s = Stylizer(ROOT / "checkpoints" / f"{a.style}.onnx", backend="ort")
    t = TemporalSettings()
    rows = []
    for name, fn in (
        (f"{a.style}, frame by frame", lambda f: s(f)),
        (f"with the filter (steady {t.history}, still {t.still_history})", Steadied(lambda f: s(f))),
    ):
        frame, flicker, std = maps(fn, photo)
        print(f"{name}: pan flicker {flicker.mean():.2f} levels, still-camera std {std.mean():.2f} levels")
        rows.append(row([(frame, name), (gray(flicker, 10), "1-px pan: |O_t - warp(O_t-1)| x10"), (gray(std, 40), "still camera: std over 8 frames x40")]))
    a.output.parent.mkdir(parents=True, exist_ok=True)
    stack(rows).save(a.output, quality=88)
    print(f"wrote {a.output.relative_to(ROOT) if a.output.is_relative_to(ROOT) else a.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
