"""The HTTP routes: request -> StylizeService call -> response, and the JSON error handlers.

Each `add_*` function registers one group of routes on the app; the work itself is the service's
(server_service.py), what may enter is decided by server_limits.py and the middleware.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path
from typing import Callable

from fastapi import Depends, FastAPI, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from stylecast.inference.server_browser import add_browser_routes, runtime_info, style_browser_info
from stylecast.inference.server_jobs import run_job
from stylecast.inference.server_limits import (
    MEDIA_TYPES,
    OUTPUT_FORMATS,
    ApiError,
    bearer_token,
    choose_format,
    drain,
    json_error,
    read_body,
    token_ok,
)
from stylecast.inference.server_metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from stylecast.inference.server_service import StylizeOptions
from stylecast.inference.server_state import ServerState
from stylecast.inference.server_stream import stream as stream_frames
from stylecast.inference.server_swatches import add_swatch_routes, swatch_url
from stylecast.inference.server_v2 import add_v2_routes
from stylecast.inference.stylizer import ORIGINAL_SIZE

log = logging.getLogger("stylecast.server")

WEB_DIR = Path(__file__).resolve().parent / "web"
MIN_OUTPUT_SIDE = 8  # a smaller ?size= is refused (0 asks for the input's own size)
SIZE_DOC = (
    "longer side of the output in px; default: the style's native size (GET /v1/styles: native_size) "
    "for a larger input, else the input's; 0: the input's own (at most max_side)"
)


def check_size(size: int | None, max_side: int) -> None:
    """?size= of POST /v1/stylize: 422 past the server's limit or below MIN_OUTPUT_SIDE (0 is allowed)."""
    if size is not None and size > max_side:
        raise ApiError(422, "invalid_parameter", f"size: at most {max_side} px, got {size}")
    if size is not None and 0 < size < MIN_OUTPUT_SIDE:
        raise ApiError(422, "invalid_parameter", f"size: at least {MIN_OUTPUT_SIDE} px (or 0 for the input's own), got {size}")


# 'wasm-unsafe-eval' lets the page compile WebAssembly (in-browser inference with onnxruntime-web,
# served from /ort/) and nothing else: no eval, no inline script. worker-src 'self': onnxruntime-web's
# WASM threads are module workers started from its own files (default-src would allow the same;
# said here so it is not widened by accident, e.g. to blob:).
PAGE_CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# Cross-origin isolation: SharedArrayBuffer, and with it WASM threads, exist only in an isolated page.
# Everything the page loads is same-origin, so require-corp costs nothing.
PAGE_ISOLATION = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}
TIMING_HEADERS = ("Server-Timing", "X-Stylecast-Style", "X-Stylecast-Backend", "X-Stylecast-Size", "X-Stylecast-Queue-Ms", "X-Stylecast-Infer-Ms")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_parameter",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
    504: "deadline_exceeded",
}

BODY_DOC = {
    "requestBody": {
        "required": True,
        "description": "A JPEG, PNG or WebP image: the raw bytes, or multipart/form-data with one file field.",
        "content": {
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/webp": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {"image": {"type": "string", "format": "binary"}}}},
        },
    }
}
ERROR_DOC = {
    code: {"description": desc, "content": {"application/json": {"example": {"error": err, "detail": "…"}}}}
    for code, err, desc in (
        (401, "unauthorized", "token configured and missing or wrong"),
        (404, "unknown_style", "no such style"),
        (413, "payload_too_large", "body over max_body_bytes"),
        (415, "unsupported_media_type", "not JPEG/PNG/WebP"),
        (422, "invalid_image", "too many pixels, zero size, absurd aspect, corrupt image, bad or repeated parameter"),
        (503, "overloaded", "queue full (Retry-After) or not ready"),
        (504, "deadline_exceeded", "not done within the deadline"),
    )
}
ERROR_DOC[200] = {"description": "The stylized image", "content": {t: {} for t in MEDIA_TYPES.values()}}


def add_routes(app: FastAPI, state: ServerState) -> None:
    add_error_handlers(app)
    require_token = token_dependency(state)
    add_page_routes(app)
    add_health_routes(app, state, require_token)
    add_api_routes(app, state, require_token)
    add_browser_routes(app, state, require_token)
    add_swatch_routes(app, state, require_token)
    add_v2_routes(app, state, require_token)  # the Open Inference Protocol (Triton/KServe clients)

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket):
        await stream_frames(ws, state)


def add_error_handlers(app: FastAPI) -> None:
    """Always JSON {"error", "detail"}; never a traceback or a path."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return json_error(exc.status, exc.error, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        return json_error(exc.status_code, _STATUS_CODES.get(exc.status_code, "error"), detail, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        parts = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err.get("loc", ())[1:]) or "request"
            parts.append(f"{loc}: {err.get('msg', 'invalid')}")
        return json_error(422, "invalid_parameter", "; ".join(parts)[:500])

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.error("unhandled error on %s", request.url.path, exc_info=exc)
        return json_error(500, "internal_error", "unexpected server error; the server log has the details")


def token_dependency(state: ServerState) -> Callable[[Request], None]:
    """HTTP routes take the token from headers only: a URL's query string ends up in proxy logs and
    browser history (the WebSocket, where browsers cannot set headers, also reads ?token=)."""

    def require_token(request: Request) -> None:
        given = bearer_token(request.headers.get("authorization"), request.headers.get("x-api-token"), None)
        if not token_ok(state.config.token, given):
            raise ApiError(
                401, "unauthorized", "missing or wrong API token (send Authorization: Bearer TOKEN)", {"WWW-Authenticate": 'Bearer realm="stylecast"'}
            )

    return require_token


def add_page_routes(app: FastAPI) -> None:
    page_headers = {"Content-Security-Policy": PAGE_CSP, "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache", **PAGE_ISOLATION}

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8", headers=page_headers)

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")


def add_health_routes(app: FastAPI, state: ServerState, require_token) -> None:
    @app.get("/healthz", tags=["health"], summary="Alive (the process answers)")
    async def healthz():
        return {"status": "ok", "uptime_s": round(time.monotonic() - state.started, 1)}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Ready: models loaded and warmed up, not draining",
        responses={503: {"description": "loading, no styles, or draining"}},
    )
    async def readyz():
        reason = state.ready_reason()
        if reason is not None:
            return json_error(503, "draining" if state.draining else "not_ready", reason, {"Retry-After": "2"})
        return {"status": "ready", "styles": len(state.models.current), "workers": state.workers, "queue_size": state.config.queue_size}

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics (text format 0.0.4)", dependencies=[Depends(require_token)])
    async def metrics():
        return Response(state.metrics.render(), media_type=METRICS_CONTENT_TYPE)


# A multi-style model's style or mix ("painters/starry_night:0.7,great_wave:0.3") as a file name.
FILE_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


def add_api_routes(app: FastAPI, state: ServerState, require_token) -> None:
    config = state.config

    @app.get("/v1/styles", tags=["styles"], summary="The styles being served, with their model metadata", dependencies=[Depends(require_token)])
    async def styles():
        current = state.models.current
        styles = [
            {**current[n].info, "browser": style_browser_info(current[n], config), "swatch_url": swatch_url(n, current[n].sha256)} for n in sorted(current)
        ]
        return {
            "styles": styles,
            "default": min(current) if current else None,
            "ready": state.ready_reason() is None,
            "workers": state.workers,
            "threads": state.threads,
            "limits": state.limits_info(),
            "browser_runtime": runtime_info(state),
        }

    @app.post(
        "/v1/stylize",
        tags=["styles"],
        summary="Stylize one image",
        openapi_extra=BODY_DOC,
        responses=ERROR_DOC,
        response_class=Response,
        dependencies=[Depends(require_token)],
    )
    async def stylize(
        request: Request,
        style: str | None = Query(
            None,
            max_length=200,
            description="style name from GET /v1/styles (default: the first), or a mix of one multi-style model's styles: starry_night:0.7,great_wave:0.3",
        ),
        size: int | None = Query(None, ge=0, description=SIZE_DOC),
        strength: float = Query(1.0, ge=0.0, le=1.0, description="0 = the input, 1 = fully stylized"),
        preserve_color: bool = Query(False, description="keep the photo's colours, take the style's luminance"),
        format: str | None = Query(None, description="png, jpeg or webp (default: by Accept, else the server's default)"),
        timeout: float | None = Query(None, gt=0, description="seconds; the server's deadline applies if shorter"),
    ):
        log_fields = request.scope.setdefault("stylecast.log", {})
        state.require_ready()
        loaded = state.style(style)
        log_fields["style"] = loaded.name
        check_size(size, config.max_side)
        fmt = choose_format(format, request.headers.get("accept"), OUTPUT_FORMATS[config.default_format.lower()])
        data = await _read_image_body(request, state)
        log_fields["bytes_in"] = len(data)
        native = None if size == ORIGINAL_SIZE else loaded.stylizer.native_size
        options = StylizeOptions(size=size or None, native=native, strength=strength, preserve_color=preserve_color, format=fmt, quality=config.jpeg_quality)
        job = state.service.job(loaded.stylizer, data, options, state.http_limits)
        deadline_s = min(timeout, config.deadline) if timeout else config.deadline
        result = await run_job(request, state, job, deadline_s)
        out = result.value
        queue_ms, run_ms = result.queue_seconds * 1000, result.run_seconds * 1000
        state.metrics.inference_seconds.observe(result.run_seconds, style=loaded.metric_label or loaded.name)
        state.metrics.queue_seconds.observe(result.queue_seconds)
        log_fields.update(queue_ms=round(queue_ms, 1), infer_ms=round(run_ms, 1), size=f"{out.width}x{out.height}", format=fmt.lower())
        headers = _stylize_headers(loaded, out, fmt, queue_ms, run_ms)
        return Response(out.payload, media_type=MEDIA_TYPES[fmt], headers=headers)

    @app.post(
        "/v1/reload",
        tags=["admin"],
        summary="Re-read the models folder; keep a model whose new file fails to load or check",
        dependencies=[Depends(require_token)],
        responses={403: {"description": "the server was started without a token"}},
    )
    async def reload():
        if config.token is None:
            raise ApiError(403, "forbidden", "reload needs the server to be started with --token (or STYLECAST_TOKEN)")
        async with state.reload_lock:
            report = await asyncio.to_thread(state.models.reload)
        result = "ok" if not (report.kept_old or report.failed) else "partial"
        state.metrics.reloads.inc(result=result)
        return {"result": result, **report.as_dict(), "styles": state.models.names()}


def _stylize_headers(loaded, out, fmt: str, queue_ms: float, run_ms: float) -> dict[str, str]:
    timing = ", ".join([f"queue;dur={queue_ms:.1f}"] + [f"{k};dur={v * 1000:.1f}" for k, v in out.stages.items()])
    return {
        "Server-Timing": timing,
        "X-Stylecast-Style": loaded.name,
        "X-Stylecast-Backend": f"{loaded.stylizer.backend}/{loaded.stylizer.device}",
        "X-Stylecast-Size": f"{out.width}x{out.height}",
        "X-Stylecast-Queue-Ms": f"{queue_ms:.1f}",
        "X-Stylecast-Infer-Ms": f"{run_ms:.1f}",
        "Content-Disposition": f'inline; filename="{FILE_UNSAFE.sub("_", loaded.name)}.{fmt.lower().replace("jpeg", "jpg")}"',
        "Cache-Control": "no-store",
        "Vary": "Accept",
    }


async def _read_image_body(request: Request, state: ServerState) -> bytes:
    config = state.config
    stream = request.stream()
    try:
        data = await read_body(stream, request.headers.get("content-length"), config.max_body_bytes, config.body_timeout)
    except ApiError as exc:
        if exc.status == 413:
            # read (and drop) a bounded amount more so the client can read the 413 rather than
            # a reset; then the connection is closed. 5 s, not 2: on a loaded 2-core machine (load
            # average 8) a client sending the rest of a 20 MB body took longer than 2 s and the
            # test client saw a reset instead of the 413.
            await drain(stream, budget_bytes=config.max_body_bytes, timeout=min(5.0, config.body_timeout))
            exc.headers.setdefault("Connection", "close")
        raise
    except ClientDisconnect:
        raise ApiError(499, "client_closed_request", "the client went away while sending the body") from None
    ctype = (request.headers.get("content-type") or "").lower()
    if ctype.startswith("multipart/form-data"):
        data = await _multipart_file(request, data)
    return data


async def _multipart_file(request: Request, body: bytes) -> bytes:
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, receive=replay).form(max_files=1, max_fields=16)
    except Exception:  # starlette's MultiPartException and parser errors
        raise ApiError(400, "bad_request", "malformed multipart/form-data body") from None
    try:
        for value in form.values():
            if hasattr(value, "read"):
                return await value.read()
    finally:
        await form.close()
    raise ApiError(422, "invalid_parameter", "multipart body has no file field (send e.g. -F image=@photo.jpg)")
