"""The stylization service: decode -> predict -> encode, without HTTP (LitServe's "API object").

    service = StylizeService()
    out = service(stylizer, jpeg_bytes, StylizeOptions(size=512, format="JPEG"), ImageLimits(40_000_000, 32.0, 2048))
    out.payload, (out.width, out.height), out.stages   # encoded image, its size, seconds per stage

The routes (server_routes.py, server_stream.py) turn a request into these calls and the result
into a response; the inference pool (server_queue.py) runs `job(...)` on a worker thread with a
`check` that gives up between stages once the deadline has passed or the client has left.

Decoding is the memory-hungry stage: a small PNG may declare 40 MPix. So the header is checked
first (`admit`, no pixels decoded), the decode holds its pixels in a shared `PixelBudget` and
scales the 8-bit image down to the working size before anything is converted to float (a 40 MPix
float32 copy alone is 480 MB); the stylizer then only sees the working size. Measured: ~7.5 bytes
per decoded pixel at the peak (the 8-bit image, the decoder's and EXIF-transpose's copies).
glibc keeps what a worker thread freed in that thread's arena (~100-170 MB after a 40 MPix
decode, per thread), so after a large decode the freed memory is handed back (malloc_trim).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from stylecast.images import encode_image, open_image, pil_to_array, resize_longer
from stylecast.inference.server_limits import ImageHeader, PixelBudget, sniff_image
from stylecast.inference.stylizer import target_size


# Decodes of at least this many pixels give their freed memory back to the OS afterwards.
TRIM_PIXELS = 4_000_000


def _no_check() -> None:
    return None


def _find_malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): the allocator keeps its own policy
        return None


_malloc_trim = _find_malloc_trim()


@dataclass(frozen=True)
class ImageLimits:
    """What an input may be: pixels and aspect ratio from the header (checked before decoding), and
    the longer side it is scaled down to when no size is asked for."""

    max_pixels: int
    max_aspect: float
    max_side: int


@dataclass(frozen=True)
class StylizeOptions:
    size: int | None = None  # longer side of the output; None = the input's, at most `native` and the limit's max_side
    native: int | None = None  # the style's native size (stylizer.target_size): a larger input is scaled down to it
    strength: float = 1.0
    preserve_color: bool = False
    format: str = "PNG"  # PNG, JPEG or WEBP
    quality: int = 90  # JPEG / WebP


@dataclass(frozen=True)
class StylizeOutput:
    payload: bytes
    width: int
    height: int
    stages: dict[str, float]  # seconds: decode, stylize, encode


class StylizeService:
    """decode_request -> predict -> encode_response for one image; `budget` (optional) bounds the
    pixels decoded at once over every thread that uses this service."""

    def __init__(self, budget: PixelBudget | None = None):
        self.budget = budget

    # -- the three stages ----------------------------------------------------------------------

    def decode_request(
        self,
        data: bytes,
        header: ImageHeader,
        size: int | None,
        limits: ImageLimits,
        check: Callable[[], None] = _no_check,
        native: int | None = None,
    ) -> np.ndarray:
        """Image bytes -> float32 HxWx3 in [0, 1] at the working size (the shared decoder: EXIF
        orientation, CMYK/palette/16-bit/alpha to RGB, first frame)."""
        longer = max(header.width, header.height)
        working = target_size(size or None, min(native or limits.max_side, limits.max_side), longer)
        pixels = header.width * header.height
        hold = self.budget.hold(pixels, check) if self.budget is not None else contextlib.nullcontext()
        with hold:
            # the full-size 8-bit image lives only inside the hold; what leaves it is working-size
            small = resize_longer(open_image(data, name="upload", max_pixels=limits.max_pixels), working)
            if pixels >= TRIM_PIXELS and _malloc_trim is not None:
                _malloc_trim(0)
        return pil_to_array(small)

    @staticmethod
    def predict(stylizer, image: np.ndarray, options: StylizeOptions) -> np.ndarray:
        return stylizer(image, strength=options.strength, preserve_color=options.preserve_color)

    @staticmethod
    def encode_response(image: np.ndarray, options: StylizeOptions) -> bytes:
        return encode_image(image, options.format, quality=options.quality)

    # -- composed ------------------------------------------------------------------------------

    @staticmethod
    def admit(data: bytes, limits: ImageLimits) -> ImageHeader:
        """Format and size from the header: ApiError 415/422 before any pixel is decoded."""
        return sniff_image(data, max_pixels=limits.max_pixels, max_aspect=limits.max_aspect)

    def job(
        self,
        stylizer,
        data: bytes,
        options: StylizeOptions,
        limits: ImageLimits,
        after: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    ) -> Callable[[Callable[[], None]], StylizeOutput]:
        """Admit `data` now (raises ApiError), and return the rest as one job for a worker thread:
        `job(check)`, where `check()` raises between stages to give up. `after(image, stylized)`:
        a step between predict and encode (the webcam stream's temporal filter), timed as "steady"."""
        header = self.admit(data, limits)

        def job(check: Callable[[], None]) -> StylizeOutput:
            t0 = time.perf_counter()
            image = self.decode_request(data, header, options.size, limits, check, native=options.native)
            check()
            t1 = time.perf_counter()
            out = self.predict(stylizer, image, options)
            check()
            t2 = time.perf_counter()
            stages = {"decode": t1 - t0, "stylize": t2 - t1}
            if after is not None:
                out = after(image, out)
                stages["steady"] = time.perf_counter() - t2
            t3 = time.perf_counter()
            payload = self.encode_response(out, options)
            stages["encode"] = time.perf_counter() - t3
            return StylizeOutput(payload, out.shape[1], out.shape[0], stages)

        return job

    def __call__(self, stylizer, data: bytes, options: StylizeOptions, limits: ImageLimits) -> StylizeOutput:
        """One image, now, on this thread."""
        return self.job(stylizer, data, options, limits)(_no_check)
