"""The webcam path: WS /v1/stream, latest frame wins.

One task reads the socket and keeps only the newest waiting frame (an older waiting one is
answered "dropped" at once); another stylizes the waiting frame on the shared inference pool and
sends it back. So a slow server lowers the frame rate instead of adding lag, and each connection
holds at most one job. Each connection has its own temporal filter (inference/temporal.py): the
frames it answers hold still where the camera's view did not change. Settings (style, strength,
steady, ...) change with a JSON text message on the open socket. The handshake is checked before
accept: token, Origin, readiness, settings. Frames have their own pixel limit (`ws_max_pixels`, a
camera frame's), checked from the header before decoding; text messages are bounded in size and
depth before they are parsed.
Protocol: see inference/server.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect

from stylecast.inference.server_limits import (
    OUTPUT_FORMATS,
    ApiError,
    bearer_token,
    job_error,
    json_error,
    origin_ok,
    parse_json_message,
    token_ok,
)
from stylecast.inference.server_logging import log_refusal
from stylecast.inference.server_queue import Abandoned, DeadlineExceeded, Draining, Overloaded
from stylecast.inference.server_service import StylizeOptions
from stylecast.inference.server_state import ServerState
from stylecast.inference.temporal import MAX_HISTORY, TemporalFilter, TemporalSettings


@dataclass
class StreamSettings:
    style: str
    strength: float = 1.0
    size: int | None = None
    preserve_color: bool = False
    format: str = "JPEG"
    quality: int = 80
    steady: float = TemporalSettings.history  # the temporal filter's history weight; 0 = frames on their own

    def public(self) -> dict[str, Any]:
        return {
            "style": self.style,
            "strength": self.strength,
            "size": self.size,
            "preserve_color": self.preserve_color,
            "format": self.format.lower(),
            "quality": self.quality,
            "steady": self.steady,
        }


class StreamSteady:
    """The stream's temporal filter (inference/temporal.py). Frames reach it from pool threads, two
    at once when pipelined: a lock keeps one at a time, and a frame older than the last one filtered
    passes unfiltered (it is answered "stale" anyway: never drawn after a newer one). A settings
    change starts the filter over; a frame submitted before it (stylized with the old settings)
    passes unfiltered and leaves no history: it would ghost the old style into the new."""

    def __init__(self, history: float):
        self.lock = threading.Lock()
        self.newest = 0
        self.generation = 0
        self.filter = TemporalFilter(TemporalSettings(history=history))

    def reset(self, history: float) -> None:
        with self.lock:
            self.generation += 1
            self.filter = TemporalFilter(TemporalSettings(history=history))

    def step(self, seq: int):
        """The `after` step of frame `seq`, submitted now, for StylizeService.job."""
        generation = self.generation

        def after(image, stylized):
            with self.lock:
                if seq < self.newest or generation != self.generation:
                    return stylized
                self.newest = seq
                return self.filter(image, stylized)

        return after


def _apply_settings(settings: StreamSettings, values: dict[str, Any], state: ServerState) -> StreamSettings:
    """A new StreamSettings with `values` applied; ApiError (422/404) names the bad field."""
    cfg = state.config
    new = StreamSettings(**settings.__dict__)
    unknown = set(values) - {"type", "style", "strength", "size", "preserve_color", "format", "quality", "steady"}
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
    if "steady" in values:
        v = values["steady"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= MAX_HISTORY:
            raise ApiError(422, "invalid_parameter", f"steady must be a number between 0 and {MAX_HISTORY}")
        new.steady = float(v)
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
        if "steady" in q:
            values["steady"] = float(q["steady"])
    except ValueError:
        raise ApiError(422, "invalid_parameter", "strength, size, quality and steady must be numbers") from None
    if "format" in q:
        values["format"] = q["format"]
    style = state.style(q.get("style") or None).name
    return _apply_settings(StreamSettings(style=style, quality=state.config.ws_quality), values, state)


async def _deny(ws: WebSocket, err: ApiError) -> None:
    """Refuse a handshake with a real HTTP status and JSON body where the server supports it."""
    log_refusal(ws.scope, err.status, err.error, err.detail)
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(json_error(err.status, err.error, err.detail, err.headers))
    else:  # pragma: no cover - uvicorn supports the extension
        await ws.close(code=1008, reason=err.error)


class _Stats:
    def __init__(self):
        self.received = self.processed = self.dropped = self.errors = 0
        self.started = time.monotonic()
        self.recent: list[float] = []  # completion times of the last frames, for FPS
        self.latency_ms = 0.0  # EWMA of receive -> sent

    def done(self, latency_ms: float) -> None:
        now = time.monotonic()
        self.processed += 1
        self.recent = [t for t in self.recent if now - t <= 2.0] + [now]
        self.latency_ms = latency_ms if self.processed == 1 else 0.8 * self.latency_ms + 0.2 * latency_ms

    def public(self) -> dict[str, Any]:
        now = time.monotonic()
        recent = [t for t in self.recent if now - t <= 2.0]
        fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
        return {
            "received": self.received,
            "processed": self.processed,
            "dropped": self.dropped,
            "errors": self.errors,
            "fps": round(fps, 2),
            "latency_ms": round(self.latency_ms, 1),
            "seconds": round(now - self.started, 1),
        }


async def stream(ws: WebSocket, state: ServerState) -> None:
    """Serve one /v1/stream connection: the handshake checks, then frames until either side closes."""
    log_fields = ws.scope.setdefault("stylecast.log", {})
    try:
        settings = _handshake(ws, state)
    except ApiError as err:
        log_fields["error"] = err.error
        await _deny(ws, err)
        return
    await ws.accept()
    await StreamSession(ws, state, settings, log_fields).run()


def _handshake(ws: WebSocket, state: ServerState) -> StreamSettings:
    """Token, Origin, readiness, settings: ApiError refuses the handshake before accept."""
    cfg = state.config
    # Browsers cannot set headers on a WebSocket: the page sends ?token= (redacted from every log line).
    given = bearer_token(ws.headers.get("authorization"), ws.headers.get("x-api-token"), ws.query_params.get("token"))
    if not token_ok(cfg.token, given):
        raise ApiError(401, "unauthorized", "missing or wrong API token (send ?token=TOKEN or Authorization: Bearer TOKEN)")
    if not origin_ok(ws.headers.get("origin"), ws.headers.get("host"), cfg.allowed_origins):
        raise ApiError(403, "forbidden_origin", "this page's origin may not open streams here (see --allow-origin)")
    state.require_ready()
    return _query_settings(ws, state)


class StreamSession:
    """One accepted stream: a receiver task keeps only the newest waiting frame (an older waiting one
    is answered "dropped" at once), a processor task stylizes it on the shared pool."""

    def __init__(self, ws: WebSocket, state: ServerState, settings: StreamSettings, log_fields: dict[str, Any]):
        self.ws, self.state, self.cfg, self.log_fields = ws, state, state.config, log_fields
        self.metrics = state.metrics
        self.settings = settings
        self.steady = StreamSteady(settings.steady)
        self.stats = _Stats()
        self.send_lock = asyncio.Lock()
        self.latest: tuple[int, bytes, float] | None = None  # the one frame waiting; a newer one replaces it
        self.wake = asyncio.Event()
        self.newest_sent = 0  # seq of the newest frame sent back
        self.closed = asyncio.Event()

    async def run(self) -> None:
        self.metrics.ws_connections.inc()
        self.metrics.ws_connections_total.inc()
        recv_task = asyncio.ensure_future(self.receiver())
        proc_task = asyncio.ensure_future(self.processor())
        try:
            await self.send_json(
                {
                    "type": "hello",
                    **self.settings.public(),
                    "styles": self.state.models.names(),
                    "max_frame_bytes": self.cfg.ws_max_frame_bytes,
                    "max_pixels": self.cfg.ws_max_pixels,
                    "max_side": self.cfg.ws_max_side,
                }
            )
            await asyncio.wait({recv_task, proc_task}, return_when=asyncio.FIRST_COMPLETED)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            for task in (recv_task, proc_task):
                task.cancel()
            for task in (recv_task, proc_task):
                with contextlib.suppress(BaseException):
                    await task
            self.metrics.ws_connections.dec()
            public = self.stats.public()
            self.log_fields.update(style=self.settings.style, **{f"frames_{k}": v for k, v in public.items() if k != "seconds"}, seconds=public["seconds"])
            with contextlib.suppress(Exception):
                await self.ws.close(code=1000)

    async def send_json(self, obj: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.ws.send_text(json.dumps(obj, separators=(",", ":")))

    async def drop(self, seq: int, reason: str) -> None:
        self.stats.dropped += 1
        self.metrics.ws_frames.inc(result="dropped")
        await self.send_json({"type": "dropped", "seq": seq, "reason": reason})

    async def error(self, seq: int | None, err: ApiError) -> None:
        self.stats.errors += 1
        self.metrics.ws_frames.inc(result="error")
        await self.send_json({"type": "error", "seq": seq, "status": err.status, "error": err.error, "detail": err.detail})

    async def receiver(self) -> None:
        seq = 0
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data, text = message.get("bytes"), message.get("text")
                if data is not None:
                    if len(data) > self.cfg.ws_max_frame_bytes:
                        self.log_fields["close"] = 1009
                        await self.ws.close(code=1009, reason=f"frame over {self.cfg.ws_max_frame_bytes} bytes")
                        return
                    seq += 1
                    self.stats.received += 1
                    stale, self.latest = self.latest, (seq, data, time.monotonic())
                    self.wake.set()
                    if stale is not None:
                        await self.drop(stale[0], "stale")
                elif text is not None:
                    await self.on_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError):  # RuntimeError: a send after the close
            return
        finally:
            self.closed.set()
            self.wake.set()

    async def on_text(self, text: str) -> None:
        try:
            values = parse_json_message(text)
            if not isinstance(values, dict):
                raise ApiError(422, "invalid_message", "text messages must be JSON objects")
            if values.get("type") == "stats":
                await self.send_json({"type": "stats", **self.stats.public()})
                return
            self.settings = _apply_settings(self.settings, values, self.state)
        except ApiError as err:
            await self.error(None, err)
            return
        self.steady.reset(self.settings.steady)  # other settings, other pictures: no history across the change
        self.log_fields["style"] = self.settings.style
        await self.send_json({"type": "config", **self.settings.public()})

    async def processor(self) -> None:
        """One frame at a time, or up to `ws_pipeline` at once: a frame starts on the pool while the
        previous one is still being stylized, so its decode and encode overlap the other's network
        (the pool needs as many workers). Answers still go out newest-last (`process`)."""
        depth = self.cfg.ws_pipeline
        running: set[asyncio.Task] = set()
        try:
            while True:
                if len(running) >= depth:
                    done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    if not all(task.result() for task in done):
                        return
                    continue
                await self.wake.wait()
                self.wake.clear()
                if self.closed.is_set():
                    return
                item, self.latest = self.latest, None
                if item is None:
                    continue
                if depth == 1:
                    if not await self.process(*item):
                        return
                else:
                    running.add(asyncio.ensure_future(self.process(*item)))
        finally:
            for task in running:
                task.cancel()
            for task in running:
                with contextlib.suppress(BaseException):
                    await task

    async def process(self, seq: int, data: bytes, received_at: float) -> bool:
        """Stylize one frame and answer it (a frame, "dropped" or "error"); False: close the stream."""
        s = self.settings
        try:
            loaded = self.state.style(s.style)
            options = StylizeOptions(size=s.size, strength=s.strength, preserve_color=s.preserve_color, format=s.format, quality=s.quality)
            # the stream's own pixel limit (a camera frame), checked before decoding
            after = self.steady.step(seq) if s.steady > 0 else None
            job = self.state.service.job(loaded.stylizer, data, options, self.state.ws_limits, after)
            result = await self.state.pool.submit(job, received_at + self.cfg.deadline)
        except ApiError as err:
            await self.error(seq, err)
            return True
        except Overloaded:
            await self.drop(seq, "busy")
            return True
        except (DeadlineExceeded, Abandoned):
            await self.drop(seq, "deadline")
            return True
        except Draining:
            await self.ws.close(code=1012, reason="server restarting")
            return False
        except Exception as exc:  # noqa: BLE001 - mapped to a JSON error; logged if unexpected
            await self.error(seq, job_error(exc, self.cfg.deadline))
            return True
        out = result.value
        if seq < self.newest_sent:  # overtaken by a newer frame (pipelined): never draw an older one after it
            await self.drop(seq, "stale")
            return True
        self.newest_sent = seq
        latency_ms = (time.monotonic() - received_at) * 1000
        self.stats.done(latency_ms)
        self.metrics.ws_frames.inc(result="processed")
        self.metrics.inference_seconds.observe(result.run_seconds, style=loaded.metric_label or loaded.name)
        head = json.dumps(
            {
                "type": "frame",
                "seq": seq,
                "width": out.width,
                "height": out.height,
                "format": s.format.lower(),
                "style": loaded.name,
                "strength": s.strength,
                "queue_ms": round(result.queue_seconds * 1000, 1),
                "infer_ms": round(result.run_seconds * 1000, 1),
                "server_ms": round(latency_ms, 1),
                "stages_ms": {k: round(v * 1000, 1) for k, v in out.stages.items()},
                "stats": self.stats.public(),
            },
            separators=(",", ":"),
        ).encode()
        async with self.send_lock:
            await self.ws.send_bytes(struct.pack(">I", len(head)) + head + out.payload)
        return True
