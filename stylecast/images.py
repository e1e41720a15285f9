"""Image decoding and encoding with numpy + Pillow: the one place images enter and leave stylecast.

Torch code (losses, training, optimization) and the torch-free inference path both call these, so
EXIF orientation, colour-mode conversion and atomic writes are written once.

Arrays are float32, HxWx3, RGB in [0, 1] unless a function says otherwise.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from stylecast.errors import UserError
from stylecast.io import RunOutputs, atomic_write_bytes  # noqa: F401  (the one atomic writer; re-exported)

Source = Union[str, os.PathLike, bytes]

# Pillow's own bomb check warns at ~89 MPix and fails at twice that; we check our own cap
# ourselves (before decoding) and let Pillow's stand as a second line.
DEFAULT_MAX_PIXELS = 64_000_000

SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}


def _label(source: Source, name: str | None) -> str:
    if name:
        return name
    return "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)


def open_image(source: Source, *, name: str | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode a file path or bytes into an upright 8-bit RGB Pillow image.

    - the pixel count is checked against `max_pixels` from the header, before pixels are decoded
      (a 20000x20000 PNG of a few hundred bytes must not allocate 1.2 GB);
    - animated images give their first frame;
    - EXIF orientation is applied (phones store portraits rotated);
    - CMYK, palette, grayscale, 16-bit and alpha modes become RGB (alpha composited on white).
    Raises UserError naming the file for anything that is not a readable image.
    """
    label = _label(source, name)
    if isinstance(source, (bytes, bytearray)):
        fp = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.exists():
            raise UserError(f"{label}: no such file")
        if path.is_dir():
            raise UserError(f"{label}: is a directory, not an image")
        fp = path
    try:
        img = Image.open(fp)
        width, height = img.size
        if width < 1 or height < 1:
            raise UserError(f"{label}: image has zero size ({width}x{height})")
        if max_pixels is not None and width * height > max_pixels:
            raise UserError(f"{label}: {width}x{height} is {width * height} pixels, over the limit of {max_pixels}")
        img.seek(0)
        img.load()
        img = ImageOps.exif_transpose(img)
        return to_rgb(img)
    except UserError:
        raise
    except Image.DecompressionBombError as exc:
        # Pillow's own header check (2x its MAX_IMAGE_PIXELS) fired before ours could.
        raise UserError(f"{label}: image too large ({exc})") from None
    except UnidentifiedImageError as exc:
        raise UserError(f"{label}: not a readable image ({type(exc).__name__})") from None
    except PermissionError:
        raise UserError(f"{label}: permission denied") from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Truncated or corrupt data surfaces from Pillow's decoders as OSError/SyntaxError.
        raise UserError(f"{label}: corrupt or truncated image ({exc.__class__.__name__})") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB. Alpha is composited on white, 16/32-bit ranges scaled to 8-bit."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        # 16-bit PNGs decode to mode I or I;16 with values up to 65535; float TIFFs lie in [0, 1].
        top = 65535.0 if arr.max(initial=0) > 255 else (1.0 if mode == "F" and arr.max(initial=0) <= 1 else 255.0)
        arr8 = np.clip(np.rint(arr / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def longer_side_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) scaled so the longer side is `size`, aspect kept, no side below 1 px."""
    if size < 1:
        raise UserError(f"size must be a positive number of pixels, got {size}")
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_longer(img: Image.Image, size: int | None) -> Image.Image:
    """Resize so the longer side is `size` (aspect kept). None keeps the image as is."""
    if size is None:
        return img
    w, h = img.size
    new_h, new_w = longer_side_shape(h, w, size)
    return img if (new_w, new_h) == (w, h) else img.resize((new_w, new_h), Image.Resampling.LANCZOS)


def pil_to_array(img: Image.Image) -> np.ndarray:
    """8-bit RGB Pillow image -> float32 HxWx3 in [0, 1]."""
    return np.asarray(img, dtype=np.float32) / 255.0


def array_to_pil(arr: np.ndarray) -> Image.Image:
    """float HxWx3 in [0, 1] (clipped) or uint8 HxWx3 -> Pillow RGB image."""
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(np.asarray(arr, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def load_image(source: Source, size: int | tuple[int, int] | None = None, *, name: str | None = None) -> np.ndarray:
    """Read an image as float32 HxWx3 RGB in [0, 1].

    `size`: an int resizes the longer side to it; (height, width) resizes exactly; None keeps it.
    """
    img = open_image(source, name=name)
    if isinstance(size, tuple):
        h, w = size
        if h < 1 or w < 1:
            raise UserError(f"size must be positive, got {h}x{w}")
        img = img.resize((w, h), Image.Resampling.LANCZOS)
    else:
        img = resize_longer(img, size)
    return pil_to_array(img)


def encode_image(arr: np.ndarray | Image.Image, fmt: str = "PNG", quality: int = 92) -> bytes:
    """Encode to bytes in `fmt` (PNG, JPEG, WEBP)."""
    img = arr if isinstance(arr, Image.Image) else array_to_pil(arr)
    buf = io.BytesIO()
    fmt = fmt.upper()
    kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def format_for_path(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in SAVE_FORMATS:
        raise UserError(f"{path}: unsupported output format {suffix or '(none)'!r}; use one of {', '.join(SAVE_FORMATS)}")
    return SAVE_FORMATS[suffix]


def save_image(arr: np.ndarray | Image.Image, path: str | os.PathLike, quality: int = 92, *, outputs: RunOutputs | None = None) -> None:
    """Save atomically; the format follows the file's suffix. With `outputs` the file is recorded
    there, so a run that fails later removes it (stylecast.io.RunOutputs)."""
    data = encode_image(arr, format_for_path(path), quality=quality)
    if outputs is not None:
        outputs.write_bytes(path, data)
    else:
        atomic_write_bytes(path, data)
