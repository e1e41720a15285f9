"""Labelled picture rows for README figures and reports (Pillow only, no torch)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from stylecast.images import array_to_pil


def label(img: Image.Image, text: str) -> Image.Image:
    """A copy of `img` with `text` in white on a black box in its top-left corner."""
    img = img.copy()
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = draw.textbbox((6, 4), text)
    draw.rectangle((left - 4, top - 3, right + 4, bottom + 3), fill=(0, 0, 0))
    draw.text((6, 4), text, fill=(255, 255, 255))
    return img


def row(panels: list[tuple[np.ndarray, str]], gap: int = 4) -> Image.Image:
    """HxWx3 float images in [0, 1], each labelled, side by side on white with `gap` px between."""
    images = [label(array_to_pil(a), t) for a, t in panels]
    h = max(i.height for i in images)
    canvas = Image.new("RGB", (sum(i.width for i in images) + gap * (len(images) - 1), h), (255, 255, 255))
    x = 0
    for i in images:
        canvas.paste(i, (x, 0))
        x += i.width + gap
    return canvas


def stack(rows: list[Image.Image], gap: int = 4) -> Image.Image:
    """Rows one above the other, left-aligned, on white."""
    canvas = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows) + gap * (len(rows) - 1)), (255, 255, 255))
    y = 0
    for r in rows:
        canvas.paste(r, (0, y))
        y += r.height + gap
    return canvas
