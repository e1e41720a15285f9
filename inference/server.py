"""The stylization server: `create_app(ServerConfig(...))` -> a FastAPI app (no torch).

Routes (OpenAPI at /openapi.json; no /docs page: Swagger UI loads its code from a CDN, which the
page's Content-Security-Policy would have to allow. Load /openapi.json into any OpenAPI viewer):
    GET  /                 the web page (upload + live webcam), files in inference/web/
    GET  /v1/styles        names and metadata of the styles being served
    GET  /v1/styles/NAME/model  the style's .onnx for in-browser inference (server_browser.py)
    GET  /v1/swatches/NAME the sample photo in that style, for the page's picker (server_swatches.py)
    GET  /ort/VERSION/FILE onnxruntime-web's files for the page (web_runtime.py)
    POST /v1/stylize       image bytes in (raw body or multipart), image out (PNG/JPEG/WebP)
    WS   /v1/stream        webcam frames in, stylized frames out, latest frame wins
    POST /v1/reload        re-read the models folder (needs the token)
    GET  /healthz /readyz  alive / loaded, warmed up and not draining
    GET  /metrics          Prometheus text

The layers, bottom up:
    server_connections.py  uvicorn's protocols: request-head deadline, idle-connection cap
    server_middleware.py   Host check, repeated parameters, requests-at-once cap, access log
    server_routes.py       HTTP routes and JSON error handlers; server_stream.py the WebSocket;
                           server_browser.py the downloads for in-browser inference
    server_service.py      decode -> predict -> encode (usable without HTTP), run as one job on the
                           bounded InferencePool (server_queue.py)
    server_limits.py       what may enter, decided from header bytes before decoding
    server_state.py        what the routes share; server_config.py its settings
    server_models.py       the served styles, reloaded through registry.py
Errors are JSON {"error": code, "detail": sentence}, never a traceback or a path; each request is
one JSON line on the "stylecast.access" logger.

WebSocket protocol (/v1/stream?style=NAME[&strength=&size=&preserve_color=&format=&steady=&token=]):
    client -> server  binary: one JPEG/PNG/WebP frame (at most ws_max_pixels)
                      text: JSON settings {"style", "strength", "size", "preserve_color",
                            "format", "quality", "steady"} (any subset), or {"type": "stats"}; at
                            most 4 KB and 4 levels deep. steady (0..0.95, default 0.7): the
                            temporal filter's weight of the previous frame (inference/temporal.py);
                            0 stylizes each frame on its own; a settings change starts it over
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
import logging

from fastapi import FastAPI

from stylecast import __version__
from stylecast.inference.server_config import ServerConfig
from stylecast.inference.server_middleware import AccessLogMiddleware
from stylecast.inference.server_routes import TIMING_HEADERS, add_routes
from stylecast.inference.server_state import ServerState

__all__ = ["ServerConfig", "ServerState", "create_app"]

log = logging.getLogger("stylecast.server")


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
            drained = await state.pool.drain(config.resolve_drain_seconds())
            log.info("drained: %s", "all in-flight work finished" if drained else "gave up waiting for in-flight work")

    app = FastAPI(
        title="stylecast",
        version=__version__,
        description="Fast neural style transfer server: one feed-forward network per style (Johnson et al. 2016), run with ONNX Runtime / OpenVINO.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load their code from a CDN: nothing here does
        redoc_url=None,
    )
    app.state.stylecast = state
    app.add_middleware(AccessLogMiddleware, state=state)
    if config.allowed_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.allowed_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-API-Token", "Accept"],
            expose_headers=list(TIMING_HEADERS),
        )
    add_routes(app, state)
    if state.web_runtime.available:
        log.info("in-browser runtime: onnxruntime-web %s", state.web_runtime.version)
    else:
        log.warning("in-browser inference is off: %s", state.web_runtime.reason)
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
