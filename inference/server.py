"""The stylization server: `create_app(ServerConfig(...))` -> a FastAPI app (no torch).

Routes (OpenAPI at /openapi.json, docs at /docs):
    GET  /                 the web page (upload + live webcam), files in inference/web/
    GET  /v1/styles        names and metadata of the styles being served
    POST /v1/stylize       image bytes in (raw body or multipart), image out (PNG/JPEG/WebP)
    WS   /v1/stream        webcam frames in, stylized frames out, latest frame wins
    POST /v1/reload        re-read the models folder (needs the token)
    GET  /healthz /readyz  alive / loaded, warmed up and not draining
    GET  /metrics          Prometheus text

Every request is decode -> stylize -> encode (server_models.stylize_job) in one job on the bounded
InferencePool (server_queue.py); what may enter is decided before that, from the header bytes
(server_limits.py). The WebSocket path is server_stream.py; metrics server_metrics.py. Errors are JSON {"error": code, "detail": sentence}, never a traceback or
a path; each request is one JSON line on the "stylecast.access" logger.

WebSocket protocol (/v1/stream?style=NAME[&strength=&size=&preserve_color=&format=&token=]):
    client -> server  binary: one JPEG/PNG/WebP frame
                      text: JSON settings {"style", "strength", "size", "preserve_color",
                            "format", "quality"} (any subset), or {"type": "stats"}
    server -> client  binary: 4-byte big-endian length N, N bytes of JSON header
                            {"type": "frame", "seq", "width", "height", "format", timings, "stats"},
                            then the encoded image (one message, so header and image never part)
                      text: {"type": "hello"|"config"|"stats"|"dropped"|"error", ...}
    Every binary frame the client sends gets exactly one answer: a frame, or "dropped" (a newer
    frame arrived before it started: latest frame wins; or the server was busy), or "error".
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from stylecast.inference.registry import resolve_models_dir
from stylecast.inference.server_limits import (
    MEDIA_TYPES,
    OUTPUT_FORMATS,
    ApiError,
    bearer_token,
    choose_format,
    drain,
    job_error,
    json_error,
    read_body,
    sniff_image,
    token_ok,
)
from stylecast.inference.server_metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from stylecast.inference.server_metrics import Metrics
from stylecast.inference.server_models import ServedModels, stylize_job
from stylecast.inference.server_queue import InferencePool
from stylecast.inference.server_stream import stream as stream_frames
from stylecast import __version__
from stylecast.errors import UserError

log = logging.getLogger("stylecast.server")
access_log = logging.getLogger("stylecast.access")

WEB_DIR = Path(__file__).resolve().parent / "web"
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
            "media-src 'self' blob: mediastream:; connect-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
TIMING_HEADERS = ("Server-Timing", "X-Stylecast-Style", "X-Stylecast-Backend", "X-Stylecast-Size", "X-Stylecast-Queue-Ms", "X-Stylecast-Infer-Ms")


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _env_token() -> str | None:
    return os.environ.get("STYLECAST_TOKEN") or None


@dataclass
class ServerConfig:
    """Everything the server does by default; `stylecast serve --help` mirrors these fields."""

    models_dir: str = field(default_factory=lambda: str(resolve_models_dir()))  # $STYLECAST_MODELS > ./checkpoints > shipped
    host: str = "127.0.0.1"                       # loopback unless asked: no token by default
    port: int = 8000
    token: str | None = field(default_factory=_env_token)  # or env STYLECAST_TOKEN; None = open
    allowed_origins: tuple[str, ...] = ()         # extra WebSocket/CORS origins; the page's own is always allowed
    allowed_hosts: tuple[str, ...] | None = None  # Host header names accepted; None = loopback names when bound to
                                                  # loopback (DNS rebinding), any otherwise; "*" = any
    max_body_bytes: int = 20 * 2**20              # a 24 MPix phone JPEG is ~10 MB
    max_pixels: int = 40_000_000                  # header-declared width x height, checked before decoding
    max_side: int = 2048                          # larger images are scaled down to this longer side
    max_aspect: float = 32.0                      # 1x20000 strips are refused (422)
    concurrency: int | None = None                # jobs at once; None = matched to cores/GPU (resolve_concurrency)
    queue_size: int = 8                           # jobs waiting beyond `concurrency`; more -> 503
    deadline: float = 30.0                        # seconds from admission to answer; -> 504
    body_timeout: float = 30.0                    # seconds to receive a request body; -> 408
    ws_max_frame_bytes: int = 2 * 2**20           # a 640x480 JPEG is ~50 kB; larger -> close 1009
    ws_max_side: int = 1280                       # webcam frames are scaled down to this longer side
    default_format: str = "png"                   # when neither `format` nor Accept says
    jpeg_quality: int = 90                        # JPEG/WebP quality of /v1/stylize responses
    ws_quality: int = 80                          # JPEG/WebP quality of webcam frames
    device: str = "auto"                          # Stylizer device / backend / threads
    backend: str = "auto"
    threads: int | None = None                    # per job; None = cores / concurrency
    warmup_sizes: tuple[tuple[int, int], ...] = ((256, 256), (240, 320), (480, 640))
    watch_interval: float = 0.0                   # seconds between models-folder checks; 0 = only /v1/reload
    max_connections: int = 64                     # requests + streams at once; more -> 503 (uvicorn's own cap is 2x)
    drain_seconds: float | None = None            # SIGTERM: wait this long for in-flight work; None = deadline + 5

    def resolve_concurrency(self) -> tuple[int, int | None]:
        """(jobs at once, threads per job). CPU: ONNX Runtime / OpenVINO spread one image over
        several cores, so few jobs with many threads each (1 job x all cores up to 4 cores; then
        one job per 4 cores). CUDA: 2 jobs, so one decodes/encodes while the other is on the GPU."""
        cores = _cores()
        if self.concurrency is not None:
            workers = max(1, int(self.concurrency))
        elif self.device == "cuda" or (self.device == "auto" and self.backend != "openvino" and _has_cuda()):
            workers = 2
        else:
            workers = max(1, min(8, cores // 4))
        threads = self.threads
        if threads is None and self.device != "cuda":
            threads = max(1, cores // workers)
        return workers, threads

    def host_names(self) -> tuple[str, ...] | None:
        """Host header names to accept (without port), or None for any."""
        if self.allowed_hosts is not None:
            return None if "*" in self.allowed_hosts else tuple(h.lower() for h in self.allowed_hosts)
        try:
            loopback = ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            loopback = self.host == "localhost"
        return ("localhost", "127.0.0.1", "[::1]", "::1") if loopback else None

    def validate(self) -> None:
        checks = [
            (self.max_body_bytes > 0, "max_body_bytes must be positive"),
            (self.max_pixels > 0, "max_pixels must be positive"),
            (self.max_side >= 8, "max_side must be at least 8"),
            (self.max_aspect >= 1, "max_aspect must be at least 1"),
            (self.queue_size >= 0, "queue_size must be >= 0"),
            (self.deadline > 0, "deadline must be positive"),
            (self.body_timeout > 0, "body_timeout must be positive"),
            (self.ws_max_frame_bytes > 0, "ws_max_frame_bytes must be positive"),
            (self.default_format.lower() in OUTPUT_FORMATS, "default_format must be png, jpeg or webp"),
            (self.concurrency is None or self.concurrency >= 1, "concurrency must be >= 1"),
            (self.max_connections >= 1, "max_connections must be >= 1"),
            (1 <= self.jpeg_quality <= 100 and 1 <= self.ws_quality <= 100, "quality must be 1..100"),
            (self.token is None or len(self.token) > 0, "token must not be empty"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)


def _has_cuda() -> bool:
    try:
        from stylecast.inference.backends import cuda_available

        return cuda_available()
    except Exception:
        return False


# ------------------------------------------------------------------------------------------------
# State shared by the routes


class ServerState:
    def __init__(self, config: ServerConfig):
        self.config = config
        workers, threads = config.resolve_concurrency()
        self.workers, self.threads = workers, threads
        options: dict[str, Any] = {"device": config.device, "backend": config.backend, "threads": threads}
        self.models = ServedModels(config.models_dir, options, config.warmup_sizes)
        self.pool = InferencePool(workers, config.queue_size)
        self.draining = False
        self.started = time.monotonic()
        self.reload_lock = asyncio.Lock()
        self.metrics = Metrics(
            queue_depth=lambda: self.pool.queue_depth,
            inflight=lambda: self.pool.running,
            capacity=lambda: self.pool.capacity,
            models=lambda: len(self.models.current),
            ready=lambda: 1.0 if self.ready_reason() is None else 0.0,
        )

    def ready_reason(self) -> str | None:
        """None when ready; else why not (for /readyz and 503s)."""
        if self.draining:
            return "the server is shutting down"
        if not self.models.loaded_once:
            return "models are loading and warming up"
        if not self.models.current:
            return "no styles loaded: put STYLE.onnx files in the models folder and POST /v1/reload"
        return None

    def require_ready(self) -> None:
        reason = self.ready_reason()
        if reason is not None:
            error = "draining" if self.draining else "not_ready"
            raise ApiError(503, error, reason, {"Retry-After": "5" if self.draining else "2"})

    def style(self, name: str | None):
        if not name:
            names = self.models.names()
            if not names:
                self.require_ready()
            name = names[0]
        loaded = self.models.get(name)
        if loaded is None:
            known = self.models.names()
            listed = ", ".join(known[:20]) + (" …" if len(known) > 20 else "")
            # echo the name only when it is a plain one: a request's string is never shown as a path
            shown = f" named {name!r}" if _PLAIN_NAME.fullmatch(name) and ".." not in name else " by that name"
            raise ApiError(404, "unknown_style", f"no style{shown}; available: {listed or 'none'}")
        return loaded


_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
                 406: "not_acceptable", 408: "request_timeout", 413: "payload_too_large", 415: "unsupported_media_type",
                 422: "invalid_parameter", 429: "too_many_requests", 500: "internal_error", 503: "unavailable", 504: "deadline_exceeded"}


async def _wait_disconnect(receive) -> None:
    """Returns when the client goes away (after its body was read, receive() blocks until then)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


# ------------------------------------------------------------------------------------------------
# Access log + request metrics (pure ASGI, so streamed bodies are untouched)


def _host_name(scope) -> str:
    for key, value in scope.get("headers", ()):
        if key == b"host":
            host = value.decode("latin-1").strip().lower()
            if host.startswith("["):  # [::1]:8000
                return host[: host.find("]") + 1]
            return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return ""


class AccessLogMiddleware:
    """JSON-lines access log and request metrics; also the two checks that apply to every route:
    the Host header (a page on another site reaching 127.0.0.1 through DNS rebinding sends its own
    host name) and the cap on requests + streams at once (JSON 503, where uvicorn's own would be
    plain text)."""

    def __init__(self, app, state: ServerState):
        self.app, self.state = app, state
        self.hosts = state.config.host_names()
        self.active = 0

    async def _refuse(self, scope, receive, send, err: ApiError) -> None:
        response = json_error(err.status, err.error, err.detail, err.headers)
        if scope["type"] == "http":
            await response(scope, receive, send)
        elif "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": response.status_code, "headers": response.raw_headers})
            await send({"type": "websocket.http.response.body", "body": response.body})
        else:  # pragma: no cover - uvicorn supports the extension
            await send({"type": "websocket.close", "code": 1008})

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        fields: dict[str, Any] = {}
        scope["stylecast.log"] = fields
        status = {"code": 500 if scope["type"] == "http" else 0, "bytes": 0}

        async def send_wrapper(message):
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            elif kind in ("http.response.body", "websocket.http.response.body"):
                status["bytes"] += len(message.get("body", b""))
            elif kind == "websocket.accept":
                status["code"] = 101
            elif kind == "websocket.close" and not status["code"]:
                status["code"] = 403  # closed before accept: uvicorn answers the handshake with 403
            await send(message)

        refusal = None
        if self.hosts is not None and _host_name(scope) not in self.hosts:
            refusal = ApiError(400, "invalid_host", "this server answers only to its own host names (see --allow-host)")
        elif self.active >= self.state.config.max_connections:
            refusal = ApiError(503, "overloaded", "too many requests and streams at once; retry later", {"Retry-After": "1"})
        self.active += 1
        try:
            if refusal is not None:
                await self._refuse(scope, receive, send_wrapper, refusal)
            else:
                await self.app(scope, receive, send_wrapper)
        finally:
            self.active -= 1
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or ("/static" if scope["path"].startswith("/static/") else "other")
            if scope["type"] == "http":
                self.state.metrics.requests.inc(route=route, method=scope["method"], status=str(status["code"]))
                self.state.metrics.request_seconds.observe(seconds, route=route)
            client = scope.get("client")
            record = {
                "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z",
                "type": scope["type"],
                "method": scope.get("method", "WS"),
                "path": scope["path"][:200],  # the query string is left out: it may carry the token
                "status": status["code"],
                "ms": round(seconds * 1000, 1),
                "bytes_out": status["bytes"],
                "client": f"{client[0]}:{client[1]}" if client else None,
                **fields,
            }
            access_log.info(json.dumps(record, separators=(",", ":")))


# ------------------------------------------------------------------------------------------------
# The app


def create_app(config: ServerConfig | None = None) -> FastAPI:
    config = config or ServerConfig()
    config.validate()
    state = ServerState(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        loader = asyncio.create_task(_initial_load(state))
        watcher = asyncio.create_task(_watch(state)) if config.watch_interval > 0 else None
        try:
            yield
        finally:
            state.draining = True
            for task in (loader, watcher):
                if task is not None:
                    task.cancel()
            drained = await state.pool.drain(config.drain_seconds if config.drain_seconds is not None else config.deadline + 5)
            log.info("drained: %s", "all in-flight work finished" if drained else "gave up waiting for in-flight work")

    app = FastAPI(
        title="stylecast",
        version=__version__,
        description="Fast neural style transfer server: one feed-forward network per style (Johnson et al. 2016), run with ONNX Runtime / OpenVINO.",
        lifespan=lifespan,
    )
    app.state.stylecast = state
    app.add_middleware(AccessLogMiddleware, state=state)
    if config.allowed_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=list(config.allowed_origins), allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-API-Token", "Accept"], expose_headers=list(TIMING_HEADERS),
        )

    # -- errors: always JSON {"error", "detail"} -------------------------------------------------
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

    # -- auth ----------------------------------------------------------------------------------
    def require_token(request: Request) -> None:
        given = bearer_token(request.headers.get("authorization"), request.headers.get("x-api-token"), None)
        if not token_ok(config.token, given):
            raise ApiError(401, "unauthorized", "missing or wrong API token (send Authorization: Bearer TOKEN)",
                           {"WWW-Authenticate": 'Bearer realm="stylecast"'})

    # -- page ----------------------------------------------------------------------------------
    page_headers = {"Content-Security-Policy": PAGE_CSP, "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8", headers=page_headers)

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    # -- health ----------------------------------------------------------------------------------
    @app.get("/healthz", tags=["health"], summary="Alive (the process answers)")
    async def healthz():
        return {"status": "ok", "uptime_s": round(time.monotonic() - state.started, 1)}

    @app.get("/readyz", tags=["health"], summary="Ready: models loaded and warmed up, not draining",
             responses={503: {"description": "loading, no styles, or draining"}})
    async def readyz():
        reason = state.ready_reason()
        if reason is not None:
            return json_error(503, "draining" if state.draining else "not_ready", reason, {"Retry-After": "2"})
        return {"status": "ready", "styles": len(state.models.current), "workers": state.workers, "queue_size": config.queue_size}

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics (text format 0.0.4)", dependencies=[Depends(require_token)])
    async def metrics():
        return Response(state.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    # -- API -------------------------------------------------------------------------------------
    @app.get("/v1/styles", tags=["styles"], summary="The styles being served, with their model metadata",
             dependencies=[Depends(require_token)])
    async def styles():
        current = state.models.current
        return {
            "styles": [current[n].info for n in sorted(current)],
            "default": min(current) if current else None,
            "ready": state.ready_reason() is None,
            "workers": state.workers,
            "threads": state.threads,
            "limits": {"max_body_bytes": config.max_body_bytes, "max_pixels": config.max_pixels, "max_side": config.max_side,
                       "ws_max_frame_bytes": config.ws_max_frame_bytes, "ws_max_side": config.ws_max_side, "deadline_s": config.deadline},
        }

    body_doc = {"requestBody": {"required": True, "description": "A JPEG, PNG or WebP image: the raw bytes, or multipart/form-data with one file field.",
                                "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                                            "image/png": {"schema": {"type": "string", "format": "binary"}},
                                            "image/webp": {"schema": {"type": "string", "format": "binary"}},
                                            "multipart/form-data": {"schema": {"type": "object", "properties": {"image": {"type": "string", "format": "binary"}}}}}}}
    error_doc = {code: {"description": desc, "content": {"application/json": {"example": {"error": err, "detail": "…"}}}} for code, err, desc in (
        (401, "unauthorized", "token configured and missing or wrong"), (404, "unknown_style", "no such style"),
        (413, "payload_too_large", "body over max_body_bytes"), (415, "unsupported_media_type", "not JPEG/PNG/WebP"),
        (422, "invalid_image", "too many pixels, zero size, absurd aspect, corrupt image, bad parameter"),
        (503, "overloaded", "queue full (Retry-After) or not ready"), (504, "deadline_exceeded", "not done within the deadline"))}
    error_doc[200] = {"description": "The stylized image", "content": {t: {} for t in MEDIA_TYPES.values()}}

    @app.post("/v1/stylize", tags=["styles"], summary="Stylize one image", openapi_extra=body_doc, responses=error_doc,
              response_class=Response, dependencies=[Depends(require_token)])
    async def stylize(
        request: Request,
        style: str | None = Query(None, max_length=200, description="style name from GET /v1/styles (default: the first)"),
        size: int | None = Query(None, ge=8, description="longer side of the output in px (default: the input's, at most max_side)"),
        strength: float = Query(1.0, ge=0.0, le=1.0, description="0 = the input, 1 = fully stylized"),
        preserve_color: bool = Query(False, description="keep the photo's colours, take the style's luminance"),
        format: str | None = Query(None, description="png, jpeg or webp (default: by Accept, else the server's default)"),
        timeout: float | None = Query(None, gt=0, description="seconds; the server's deadline applies if shorter"),
    ):
        log_fields = request.scope.setdefault("stylecast.log", {})
        state.require_ready()
        loaded = state.style(style)
        log_fields["style"] = loaded.name
        if size is not None and size > config.max_side:
            raise ApiError(422, "invalid_parameter", f"size: at most {config.max_side} px, got {size}")
        fmt = choose_format(format, request.headers.get("accept"), OUTPUT_FORMATS[config.default_format.lower()])
        data = await _read_image_body(request)
        log_fields["bytes_in"] = len(data)
        header = sniff_image(data, max_pixels=config.max_pixels, max_aspect=config.max_aspect)
        longer = max(header.width, header.height)
        effective = size if size is not None else (config.max_side if longer > config.max_side else None)
        deadline_s = min(timeout, config.deadline) if timeout else config.deadline
        job = stylize_job(loaded.stylizer, data, size=effective, strength=strength, preserve_color=preserve_color, fmt=fmt,
                           quality=config.jpeg_quality, max_pixels=config.max_pixels)
        result = await _run_job(request, job, deadline_s)
        payload, (w, h), stages = result.value
        queue_ms, run_ms = result.queue_seconds * 1000, result.run_seconds * 1000
        state.metrics.inference_seconds.observe(result.run_seconds, style=loaded.name)
        state.metrics.queue_seconds.observe(result.queue_seconds)
        log_fields.update(queue_ms=round(queue_ms, 1), infer_ms=round(run_ms, 1), size=f"{w}x{h}", format=fmt.lower())
        timing = ", ".join([f"queue;dur={queue_ms:.1f}"] + [f"{k};dur={v * 1000:.1f}" for k, v in stages.items()])
        headers = {
            "Server-Timing": timing,
            "X-Stylecast-Style": loaded.name,
            "X-Stylecast-Backend": f"{loaded.stylizer.backend}/{loaded.stylizer.device}",
            "X-Stylecast-Size": f"{w}x{h}",
            "X-Stylecast-Queue-Ms": f"{queue_ms:.1f}",
            "X-Stylecast-Infer-Ms": f"{run_ms:.1f}",
            "Content-Disposition": f'inline; filename="{loaded.name}.{fmt.lower().replace("jpeg", "jpg")}"',
            "Cache-Control": "no-store",
            "Vary": "Accept",
        }
        return Response(payload, media_type=MEDIA_TYPES[fmt], headers=headers)

    async def _read_image_body(request: Request) -> bytes:
        stream = request.stream()
        try:
            data = await read_body(stream, request.headers.get("content-length"), config.max_body_bytes, config.body_timeout)
        except ApiError as exc:
            if exc.status == 413:
                # read (and drop) a bounded amount more so the client can read the 413 rather than
                # a reset; then the connection is closed.
                await drain(stream, budget_bytes=config.max_body_bytes, timeout=2.0)
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

    async def _run_job(request: Request, job, deadline_s: float):
        task = asyncio.ensure_future(state.pool.submit(job, time.monotonic() + deadline_s))
        gone = asyncio.ensure_future(_wait_disconnect(request.receive))
        try:
            done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            gone.cancel()
            raise
        gone.cancel()
        if task not in done:
            task.cancel()  # the client left: leave the queue, or tell the running job to stop
            with contextlib.suppress(BaseException):
                await task
            state.metrics.rejected.inc(reason="disconnect")
            raise ApiError(499, "client_closed_request", "the client disconnected before the result was ready")
        exc = task.exception()
        if exc is not None:
            err = job_error(exc, deadline_s)
            reason = {503: err.error, 504: "deadline"}.get(err.status)
            if reason:
                state.metrics.rejected.inc(reason=reason)
            raise err
        return task.result()

    @app.post("/v1/reload", tags=["admin"], summary="Re-read the models folder; keep a model whose new file fails to load",
              dependencies=[Depends(require_token)], responses={403: {"description": "the server was started without a token"}})
    async def reload():
        if config.token is None:
            raise ApiError(403, "forbidden", "reload needs the server to be started with --token (or STYLECAST_TOKEN)")
        async with state.reload_lock:
            report = await asyncio.to_thread(state.models.reload)
        result = "ok" if not (report.kept_old or report.failed) else "partial"
        state.metrics.reloads.inc(result=result)
        return {"result": result, **report.as_dict(), "styles": state.models.names()}

    # -- WebSocket ---------------------------------------------------------------------------------
    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket):
        await stream_frames(ws, state)

    return app


async def _initial_load(state: ServerState) -> None:
    try:
        async with state.reload_lock:
            await asyncio.to_thread(state.models.reload)
    except Exception:
        log.exception("loading the models failed")
        state.models.loaded_once = True
    reason = state.ready_reason()
    if reason is None:
        log.info("ready: %d style(s): %s", len(state.models.current), ", ".join(state.models.names()))
    else:
        log.warning("not ready: %s", reason)


async def _watch(state: ServerState) -> None:
    interval = state.config.watch_interval
    while True:
        await asyncio.sleep(interval)
        if state.draining or not state.models.loaded_once:
            continue
        try:
            if await asyncio.to_thread(state.models.changed_on_disk):
                async with state.reload_lock:
                    report = await asyncio.to_thread(state.models.reload)
                state.metrics.reloads.inc(result="ok" if not (report.kept_old or report.failed) else "partial")
        except Exception:
            log.exception("watching the models folder failed")


