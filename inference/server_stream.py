"""The webcam path: WS /v1/stream, latest frame wins.

One task reads the socket and keeps only the newest waiting frame (an older waiting one is
answered "dropped" at once); another stylizes the waiting frame on the shared inference pool and
sends it back. So a slow server lowers the frame rate instead of adding lag, and each connection
holds at most one job. Settings (style, strength, ...) change with a JSON text message on the open
socket. The handshake is checked before accept: token, Origin, readiness, settings.
Protocol: see inference/server.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect

from stylecast.inference.server_limits import OUTPUT_FORMATS, ApiError, bearer_token, job_error, json_error, origin_ok, sniff_image, token_ok
from stylecast.inference.server_models import stylize_job
from stylecast.inference.server_queue import Abandoned, DeadlineExceeded, Draining, Overloaded

if TYPE_CHECKING:
    from stylecast.inference.server import ServerState


@dataclass
class StreamSettings:
    style: str
    strength: float = 1.0
    size: int | None = None
    preserve_color: bool = False
    format: str = "JPEG"
    quality: int = 80

    def public(self) -> dict[str, Any]:
        return {"style": self.style, "strength": self.strength, "size": self.size, "preserve_color": self.preserve_color,
                "format": self.format.lower(), "quality": self.quality}


def _apply_settings(settings: StreamSettings, values: dict[str, Any], state: ServerState) -> StreamSettings:
    """A new StreamSettings with `values` applied; ApiError (422/404) names the bad field."""
    cfg = state.config
    new = StreamSettings(**settings.__dict__)
    unknown = set(values) - {"type", "style", "strength", "size", "preserve_color", "format", "quality"}
    if unknown:
        raise ApiError(422, "invalid_parameter", f"unknown setting(s): {', '.join(sorted(map(str, unknown)))[:200]}")
    if "style" in values:
        if not isinstance(values["style"], str):
            raise ApiError(422, "invalid_parameter", "style must be a string")
        new.style = state.style(values["style"]).name
    if "strength" in values:
        v = values["strength"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
            raise ApiError(422, "invalid_parameter", "strength must be a number between 0 and 1")
        new.strength = float(v)
    if "size" in values:
        v = values["size"]
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 8 <= v <= cfg.ws_max_side):
            raise ApiError(422, "invalid_parameter", f"size must be null or an integer from 8 to {cfg.ws_max_side}")
        new.size = v
    if "preserve_color" in values:
        if not isinstance(values["preserve_color"], bool):
            raise ApiError(422, "invalid_parameter", "preserve_color must be true or false")
        new.preserve_color = values["preserve_color"]
    if "format" in values:
        v = values["format"]
        if not isinstance(v, str) or v.lower() not in OUTPUT_FORMATS:
            raise ApiError(422, "invalid_parameter", "format must be jpeg, webp or png")
        new.format = OUTPUT_FORMATS[v.lower()]
    if "quality" in values:
        v = values["quality"]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 100:
            raise ApiError(422, "invalid_parameter", "quality must be an integer from 1 to 100")
        new.quality = v
    return new


def _query_settings(ws: WebSocket, state: ServerState) -> StreamSettings:
    q = ws.query_params
    values: dict[str, Any] = {}
    try:
        if "strength" in q:
            values["strength"] = float(q["strength"])
        if q.get("size"):
            values["size"] = int(q["size"])
        if "preserve_color" in q:
            values["preserve_color"] = q["preserve_color"].lower() in ("1", "true", "yes", "on")
        if "quality" in q:
            values["quality"] = int(q["quality"])
    except ValueError:
        raise ApiError(422, "invalid_parameter", "strength, size and quality must be numbers") from None
    if "format" in q:
        values["format"] = q["format"]
    style = state.style(q.get("style") or None).name
    return _apply_settings(StreamSettings(style=style, quality=state.config.ws_quality), values, state)


async def _deny(ws: WebSocket, err: ApiError) -> None:
    """Refuse a handshake with a real HTTP status and JSON body where the server supports it."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(json_error(err.status, err.error, err.detail, err.headers))
    else:  # pragma: no cover - uvicorn supports the extension
        await ws.close(code=1008, reason=err.error)


class _Stats:
    def __init__(self):
        self.received = self.processed = self.dropped = self.errors = 0
        self.started = time.monotonic()
        self.recent: list[float] = []  # completion times of the last frames, for FPS
        self.latency_ms = 0.0          # EWMA of receive -> sent

    def done(self, latency_ms: float) -> None:
        now = time.monotonic()
        self.processed += 1
        self.recent = [t for t in self.recent if now - t <= 2.0] + [now]
        self.latency_ms = latency_ms if self.processed == 1 else 0.8 * self.latency_ms + 0.2 * latency_ms

    def public(self) -> dict[str, Any]:
        now = time.monotonic()
        recent = [t for t in self.recent if now - t <= 2.0]
        fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
        return {"received": self.received, "processed": self.processed, "dropped": self.dropped, "errors": self.errors,
                "fps": round(fps, 2), "latency_ms": round(self.latency_ms, 1), "seconds": round(now - self.started, 1)}


async def stream(ws: WebSocket, state: ServerState) -> None:
    cfg = state.config
    log_fields = ws.scope.setdefault("stylecast.log", {})
    # -- handshake: token, Origin, readiness, settings; refused before accept ------------------
    given = bearer_token(ws.headers.get("authorization"), ws.headers.get("x-api-token"), ws.query_params.get("token"))
    try:
        if not token_ok(cfg.token, given):
            raise ApiError(401, "unauthorized", "missing or wrong API token (send ?token=TOKEN or Authorization: Bearer TOKEN)")
        if not origin_ok(ws.headers.get("origin"), ws.headers.get("host"), cfg.allowed_origins):
            raise ApiError(403, "forbidden_origin", "this page's origin may not open streams here (see --allow-origin)")
        state.require_ready()
        settings = _query_settings(ws, state)
    except ApiError as err:
        log_fields["error"] = err.error
        await _deny(ws, err)
        return
    await ws.accept()
    metrics = state.metrics
    metrics.ws_connections.inc()
    metrics.ws_connections_total.inc()
    stats = _Stats()
    send_lock = asyncio.Lock()
    latest: list[tuple[int, bytes, float] | None] = [None]  # the one frame waiting; a newer one replaces it
    wake = asyncio.Event()
    closed = asyncio.Event()
    current = [settings]

    async def send_json(obj: dict[str, Any]) -> None:
        async with send_lock:
            await ws.send_text(json.dumps(obj, separators=(",", ":")))

    async def drop(seq: int, reason: str) -> None:
        stats.dropped += 1
        metrics.ws_frames.inc(result="dropped")
        await send_json({"type": "dropped", "seq": seq, "reason": reason})

    async def error(seq: int | None, err: ApiError) -> None:
        stats.errors += 1
        metrics.ws_frames.inc(result="error")
        await send_json({"type": "error", "seq": seq, "status": err.status, "error": err.error, "detail": err.detail})

    async def receiver() -> None:
        seq = 0
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data, text = message.get("bytes"), message.get("text")
                if data is not None:
                    if len(data) > cfg.ws_max_frame_bytes:
                        log_fields["close"] = 1009
                        await ws.close(code=1009, reason=f"frame over {cfg.ws_max_frame_bytes} bytes")
                        return
                    seq += 1
                    stats.received += 1
                    stale = latest[0]
                    latest[0] = (seq, data, time.monotonic())
                    wake.set()
                    if stale is not None:
                        await drop(stale[0], "stale")
                elif text is not None:
                    await on_text(text)
        except (WebSocketDisconnect, RuntimeError):
            return
        finally:
            closed.set()
            wake.set()

    async def on_text(text: str) -> None:
        try:
            values = json.loads(text)
        except ValueError:
            await error(None, ApiError(422, "invalid_message", "text messages must be JSON objects"))
            return
        if not isinstance(values, dict):
            await error(None, ApiError(422, "invalid_message", "text messages must be JSON objects"))
            return
        if values.get("type") == "stats":
            await send_json({"type": "stats", **stats.public()})
            return
        try:
            current[0] = _apply_settings(current[0], values, state)
        except ApiError as err:
            await error(None, err)
            return
        log_fields["style"] = current[0].style
        await send_json({"type": "config", **current[0].public()})

    async def processor() -> None:
        while True:
            await wake.wait()
            wake.clear()
            if closed.is_set():
                return
            item, latest[0] = latest[0], None
            if item is None:
                continue
            seq, data, received_at = item
            s = current[0]
            try:
                loaded = state.style(s.style)
                header = sniff_image(data, max_pixels=cfg.max_pixels, max_aspect=cfg.max_aspect)
                longer = max(header.width, header.height)
                size = s.size if s.size is not None else (cfg.ws_max_side if longer > cfg.ws_max_side else None)
                job = stylize_job(loaded.stylizer, data, size=size, strength=s.strength, preserve_color=s.preserve_color,
                                   fmt=s.format, quality=s.quality, max_pixels=cfg.max_pixels)
                result = await state.pool.submit(job, received_at + cfg.deadline)
            except ApiError as err:
                await error(seq, err)
                continue
            except Overloaded:
                await drop(seq, "busy")
                continue
            except (DeadlineExceeded, Abandoned):
                await drop(seq, "deadline")
                continue
            except Draining:
                await ws.close(code=1012, reason="server restarting")
                return
            except Exception as exc:  # noqa: BLE001 - mapped to a JSON error; logged if unexpected
                await error(seq, job_error(exc, cfg.deadline))
                continue
            payload, (w, h), stages = result.value
            latency_ms = (time.monotonic() - received_at) * 1000
            stats.done(latency_ms)
            metrics.ws_frames.inc(result="processed")
            metrics.inference_seconds.observe(result.run_seconds, style=loaded.name)
            head = json.dumps({
                "type": "frame", "seq": seq, "width": w, "height": h, "format": s.format.lower(), "style": loaded.name,
                "strength": s.strength, "queue_ms": round(result.queue_seconds * 1000, 1),
                "infer_ms": round(result.run_seconds * 1000, 1), "server_ms": round(latency_ms, 1),
                "stages_ms": {k: round(v * 1000, 1) for k, v in stages.items()}, "stats": stats.public(),
            }, separators=(",", ":")).encode()
            async with send_lock:
                await ws.send_bytes(struct.pack(">I", len(head)) + head + payload)

    recv_task = asyncio.ensure_future(receiver())
    proc_task = asyncio.ensure_future(processor())
    try:
        await send_json({"type": "hello", **current[0].public(), "styles": state.models.names(),
                         "max_frame_bytes": cfg.ws_max_frame_bytes, "max_side": cfg.ws_max_side})
        await asyncio.wait({recv_task, proc_task}, return_when=asyncio.FIRST_COMPLETED)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        for task in (recv_task, proc_task):
            task.cancel()
        for task in (recv_task, proc_task):
            with contextlib.suppress(BaseException):
                await task
        metrics.ws_connections.dec()
        log_fields.update(style=current[0].style, **{f"frames_{k}": v for k, v in stats.public().items() if k != "seconds"},
                          seconds=stats.public()["seconds"])
        with contextlib.suppress(Exception):
            await ws.close(code=1000)
