"""Swatches: the bundled sample photo (stylecast/samples/chelsea.jpg) stylized by each served style,
small, for the page's style picker.

    GET /v1/swatches/{name}[?v=HASH]    a JPEG, SWATCH_SIDE px on its longer side

A swatch is made once per model file and kept in memory: the cache key is the style's name and its
model's sha256, so a reload that changes a model makes a new swatch on the next request, and entries
of models no longer served are dropped then. Making one runs on the shared inference pool like any
request (bounded queue, deadline), so a page asking for every swatch at once cannot starve the
webcam streams of more than one pool slot per swatch. Caching follows the model download route
(server_browser.py): the listing links `?v=<first 16 hex of the model's sha256>`; that URL is
cached for a year, any other revalidates; ETag, 304 on If-None-Match. `{name}` is a path
parameter because a multi-style model's styles are named MODEL/STYLE; it is looked up among the
served names, never opened as a path, and mixes are not swatched.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from importlib import resources
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response

from stylecast.inference.server_browser import VERSION_CHARS, YEAR_S, etag_matches
from stylecast.inference.server_limits import ApiError, job_error
from stylecast.inference.server_service import ImageLimits, StylizeOptions
from stylecast.inference.server_state import ServerState

SAMPLE = "chelsea.jpg"  # the demo's photo: the same cat on every swatch, so they compare
SWATCH_SIDE = 192  # px, the longer side: 2x the page's 96 px tiles, for high-DPI screens
SWATCH_QUALITY = 85
SWATCH_LIMITS = ImageLimits(max_pixels=4096 * 4096, max_aspect=20.0, max_side=SWATCH_SIDE)


def swatch_url(name: str, sha256: str) -> str:
    return f"v1/swatches/{quote(name, safe='/')}?v={sha256[:VERSION_CHARS]}"


class SwatchCache:
    """(style name, model sha256) -> JPEG bytes; one build at a time per key."""

    def __init__(self):
        self.sample = (resources.files("stylecast") / "samples" / SAMPLE).read_bytes()
        self.made: dict[tuple[str, str], bytes] = {}
        self.locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def get(self, state: ServerState, name: str) -> tuple[bytes, str]:
        loaded = state.models.get(name)
        if loaded is None:
            state.style(name)  # an unknown name or a malformed mix: the API's own 404 / 422
            raise ApiError(404, "unknown_style", "swatches exist for served styles only, not for mixes")
        key = (loaded.name, loaded.sha256)
        if key not in self.made:
            lock = self.locks.setdefault(key, asyncio.Lock())
            async with lock:
                if key not in self.made:
                    options = StylizeOptions(size=SWATCH_SIDE, format="JPEG", quality=SWATCH_QUALITY)
                    job = state.service.job(loaded.stylizer, self.sample, options, SWATCH_LIMITS)
                    try:
                        result = await state.pool.submit(job, time.monotonic() + state.config.deadline)
                    except Exception as exc:  # noqa: BLE001 - busy / draining / deadline as the API's errors
                        raise job_error(exc, state.config.deadline) from None
                    self._forget_stale(state)
                    self.made[key] = result.value.payload
            self.locks.pop(key, None)
        return self.made[key], loaded.sha256

    def _forget_stale(self, state: ServerState) -> None:
        current = {(n, s.sha256) for n, s in state.models.current.items()}
        for key in [k for k in self.made if k not in current]:
            del self.made[key]


def add_swatch_routes(app: FastAPI, state: ServerState, require_token) -> None:
    cache = SwatchCache()
    state.swatches = cache

    @app.get(
        "/v1/swatches/{name:path}",
        tags=["styles"],
        response_class=Response,
        dependencies=[Depends(require_token)],
        summary="The bundled sample photo stylized by this style, small (a JPEG; cached per model file; ETag, 304)",
        responses={200: {"content": {"image/jpeg": {}}}, 304: {"description": "not modified"}, 404: {"description": "no such style"}},
    )
    async def swatch(request: Request, name: str, v: str | None = None):
        state.require_ready()
        payload, sha256 = await cache.get(state, name)
        current = v is not None and v == sha256[:VERSION_CHARS]
        # per style and model file: a multi-style model's styles share the file, not the picture
        tag = hashlib.sha256(f"{name}\0{sha256}".encode()).hexdigest()[:32]
        headers = {"ETag": f'"swatch-{tag}"', "Cache-Control": f"private, max-age={YEAR_S}, immutable" if current else "private, no-cache"}
        if etag_matches(request.headers.get("if-none-match"), headers["ETag"]):
            return Response(status_code=304, headers=headers)
        return Response(payload, media_type="image/jpeg", headers=headers)
