"""What the server refuses, and with which status, before any pixel is decoded.

- bodies: counted while they stream in (a missing or lying Content-Length changes nothing) -> 413;
- formats: Pillow's detected format, not the Content-Type or a file name -> 415 outside JPEG/PNG/WebP;
- sizes: width x height from the header, before decoding (a 300-byte PNG may declare 20000x20000)
  -> 422, as are zero sizes and absurd aspect ratios;
- tokens: constant-time comparison (hmac.compare_digest) -> 401; WebSocket Origin allow-list -> 403;
- query strings: a parameter given twice -> 422 (which one wins differs between frameworks and proxies);
- WebSocket text messages: size and nesting depth bounded before json.loads -> an error message;
- decoding: `PixelBudget` bounds the pixels being decoded at once over all workers.
Every refusal is an ApiError, rendered by `json_error` as {"error", "detail"}; `job_error` maps
what an inference job raised (queue full, deadline, bad image, a bug) to one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import io
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Iterator
from urllib.parse import parse_qsl, urlsplit

from PIL import Image, UnidentifiedImageError
from starlette.responses import JSONResponse

from stylecast.inference.server_queue import Abandoned, DeadlineExceeded, Draining, Overloaded
from stylecast.errors import UserError

log = logging.getLogger("stylecast.server")

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
OUTPUT_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}

# Leading bytes of formats people send by mistake, to name them in the 415 message. Pillow is not
# asked to parse these at all (Image.open gets formats=ALLOWED_FORMATS).
_MAGIC = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"%!PS", "EPS/PostScript"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"%PDF", "PDF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "PSD"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
)


class ApiError(Exception):
    """An HTTP error with a stable machine-readable code and a human sentence (no paths, no traces)."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers or {}


def json_error(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one shape of every error response: {\"error\": code, \"detail\": sentence}."""
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def job_error(exc: BaseException, deadline_s: float) -> ApiError:
    """Map what a pool job raised to an ApiError."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, Overloaded):
        return ApiError(503, "overloaded", "every worker is busy and the queue is full; retry later", {"Retry-After": str(exc.retry_after)})
    if isinstance(exc, Draining):
        return ApiError(503, "draining", "the server is shutting down", {"Retry-After": "5", "Connection": "close"})
    if isinstance(exc, (DeadlineExceeded, Abandoned)):
        stage = getattr(exc, "stage", "running")
        return ApiError(504, "deadline_exceeded", f"not finished within the deadline of {deadline_s:g} s (while {stage})")
    if isinstance(exc, UserError):
        return ApiError(422, "invalid_image", str(exc))
    log.error("stylize job failed", exc_info=exc)
    return ApiError(500, "internal_error", "the stylizer failed on this image; the server log has the details")


def body_too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body is over the limit of {limit} bytes")


async def read_body(chunks: AsyncIterator[bytes], content_length: str | None, limit: int, timeout: float) -> bytes:
    """Read at most `limit` bytes from a streaming body; 413 as soon as it is exceeded.

    A declared Content-Length over the limit is refused before reading. A body that streams past
    the limit (chunked, or a Content-Length that lies) is refused at the first byte over it.
    A body that trickles in slower than `timeout` seconds in all -> 408.
    """
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise ApiError(400, "bad_request", "Content-Length is not a number") from None
        if declared > limit:
            raise body_too_large(limit)
    parts: list[bytes] = []
    total = 0
    deadline = time.monotonic() + timeout
    iterator = chunks.__aiter__()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ApiError(408, "request_timeout", f"request body not received within {timeout:g} s")
        try:
            chunk = await asyncio.wait_for(iterator.__anext__(), remaining)
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise ApiError(408, "request_timeout", f"request body not received within {timeout:g} s") from None
        total += len(chunk)
        if total > limit:
            raise body_too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


async def drain(chunks: AsyncIterator[bytes], budget_bytes: int, timeout: float) -> None:
    """Read and discard what is left of a refused body (bounded), so the client gets to read our
    413 instead of a reset connection while it is still sending."""
    total = 0
    deadline = time.monotonic() + timeout
    iterator = chunks.__aiter__()
    try:
        while total <= budget_bytes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            chunk = await asyncio.wait_for(iterator.__anext__(), remaining)
            total += len(chunk)
    except Exception:  # end of body, timeout, or a client disconnect (Starlette's ClientDisconnect)
        return


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int
    frames: int


def sniff_image(data: bytes, *, max_pixels: int, max_aspect: float) -> ImageHeader:
    """Format and size from the header only. Raises ApiError 415 / 422; decodes no pixels."""
    if not data:
        raise ApiError(415, "unsupported_media_type", "empty body: send a JPEG, PNG or WebP image")
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as img:
            fmt, (width, height) = img.format, img.size
            frames = int(getattr(img, "n_frames", 1) or 1)
    except Image.DecompressionBombError:
        # Pillow refuses headers over 2x its own MAX_IMAGE_PIXELS while opening; ours is stricter.
        raise ApiError(422, "too_many_pixels", f"image declares more pixels than the limit of {max_pixels}") from None
    except UnidentifiedImageError:
        what = _describe(data)
        if what in ("JPEG", "PNG", "WebP"):  # the right signature, a header Pillow rejects (e.g. zero size)
            raise ApiError(422, "invalid_image", f"corrupt {what} header") from None
        got = f"got {what}" if what else "not an image Pillow recognises"
        raise ApiError(415, "unsupported_media_type", f"{got}: send a JPEG, PNG or WebP image") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise ApiError(422, "invalid_image", f"corrupt {_describe(data) or 'image'} header") from None
    if fmt not in ALLOWED_FORMATS:  # pragma: no cover - formats= already restricts it
        raise ApiError(415, "unsupported_media_type", f"{fmt} is not accepted: send a JPEG, PNG or WebP image")
    if width < 1 or height < 1:
        raise ApiError(422, "invalid_image", f"image has zero size ({width}x{height})")
    if width * height > max_pixels:
        raise ApiError(422, "too_many_pixels", f"{width}x{height} is {width * height} pixels, over the limit of {max_pixels}")
    aspect = max(width, height) / min(width, height)
    if aspect > max_aspect:
        raise ApiError(422, "bad_aspect_ratio", f"{width}x{height} has an aspect ratio of {aspect:.0f}:1, over the limit of {max_aspect:g}:1")
    return ImageHeader(fmt, width, height, frames)


def _describe(data: bytes) -> str | None:
    """A name for the leading bytes, for error messages only."""
    head = data[:16]
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head.startswith(b"\xff\xd8"):
        return "JPEG"
    if head.startswith(b"\x89PNG"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:8] == b"ftyp":
        return "HEIF/AVIF/MP4"
    if head.lstrip()[:1] == b"<":
        return "XML/SVG/HTML"
    return None


def choose_format(fmt: str | None, accept: str | None, default: str) -> str:
    """Output format: the `format` parameter wins, then the Accept header (q-values), then `default`."""
    if fmt:
        key = fmt.lower()
        if key not in OUTPUT_FORMATS:
            raise ApiError(422, "invalid_parameter", f"format must be one of png, jpeg, webp; got {fmt!r}")
        return OUTPUT_FORMATS[key]
    if not accept:
        return default
    best, best_q = None, 0.0
    for i, item in enumerate(accept.split(",")):
        media, _, params = item.strip().partition(";")
        media = media.strip().lower()
        q = 1.0
        for param in params.split(";"):
            k, _, v = param.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if media in ("*/*", "image/*"):
            cand = default
        else:
            cand = {v: k for k, v in MEDIA_TYPES.items()}.get(media)
        # ties keep the earlier entry
        if cand and q > best_q:
            best, best_q = cand, q
    if best is None:
        raise ApiError(406, "not_acceptable", "Accept allows none of image/png, image/jpeg, image/webp")
    return best


def bearer_token(authorization: str | None, header_token: str | None, query_token: str | None) -> str | None:
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip()
    return header_token or query_token


def token_ok(expected: str | None, given: str | None) -> bool:
    """No token configured: everything passes. Otherwise a constant-time comparison of the bytes."""
    if expected is None:
        return True
    if given is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def origin_ok(origin: str | None, host: str | None, allowed: tuple[str, ...], scheme: str = "http") -> bool:
    """WebSocket Origin check. Browsers always send Origin on a WebSocket handshake; non-browser
    clients usually do not, and cannot be cross-site-forged, so a missing Origin passes.
    Allowed: the page's own origin (same host:port as the request) or one in the allow-list ("*" = any)."""
    if origin is None:
        return True
    if "*" in allowed:
        return True
    norm = origin.rstrip("/").lower()
    if norm in (a.rstrip("/").lower() for a in allowed):
        return True
    parts = urlsplit(norm)
    if parts.scheme not in ("http", "https") or not host:
        return False
    return parts.netloc == host.lower()


# A name a response may echo back (a style, a parameter): anything else is never shown.
PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def repeated_parameter(query_string: bytes) -> ApiError | None:
    """422 when a query parameter appears twice (`style=a&style=b`): frameworks, proxies and caches
    disagree on which value wins, so the request is ambiguous. Names are compared after
    percent-decoding, as the routes read them."""
    seen: set[str] = set()
    for key, _ in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if key in seen:
            shown = key if PLAIN_NAME.fullmatch(key) else "a parameter"
            return ApiError(422, "invalid_parameter", f"{shown} given more than once; send each parameter once")
        seen.add(key)
    return None


# A settings message is a flat object of a few short fields (~100 bytes).
MAX_MESSAGE_BYTES = 4096
MAX_MESSAGE_DEPTH = 4


def parse_json_message(text: str, max_bytes: int = MAX_MESSAGE_BYTES, max_depth: int = MAX_MESSAGE_DEPTH) -> Any:
    """json.loads for a client's text message, bounded first: over `max_bytes` or nested deeper than
    `max_depth` is refused before parsing (the json module recurses per level: 1000 `[` raise
    RecursionError). ApiError 422 "invalid_message" for anything that is not bounded valid JSON."""
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise ApiError(422, "invalid_message", f"text messages are at most {max_bytes} bytes")
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                raise ApiError(422, "invalid_message", f"text messages may nest at most {max_depth} levels")
        elif ch in "]}":
            depth -= 1
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ApiError(422, "invalid_message", "text messages must be JSON objects") from None


class PixelBudget:
    """The pixels being decoded at once, over all worker threads: a weighted, first-come-first-served
    semaphore. Decoding costs memory in proportion to the pixels the header declares (~3-4 bytes
    each for 8-bit RGB, plus the decoder's working copy) whatever the file's size: a 116 KB PNG can
    hold 40 MPix. Waiting takes turns (a small image does not pass a large one that waits, so the
    large one cannot starve), and an image larger than the whole budget waits until it is alone."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.used = 0
        self._turns: collections.deque[object] = collections.deque()
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int, check: Callable[[], None]) -> Iterator[None]:
        """Hold `pixels` of the budget for the block; `check()` runs while waiting (it raises to
        give up: the deadline passed or the client left)."""
        need = min(max(1, int(pixels)), self.capacity)
        turn = object()
        with self._cond:
            self._turns.append(turn)
            try:
                while self._turns[0] is not turn or self.used + need > self.capacity:
                    check()
                    self._cond.wait(0.05)
            except BaseException:
                self._turns.remove(turn)
                self._cond.notify_all()
                raise
            self._turns.popleft()
            self.used += need
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self.used -= need
                self._cond.notify_all()
