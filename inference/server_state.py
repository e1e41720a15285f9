"""`ServerState`: what the routes of one app share (models, pool, service, metrics, readiness)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from stylecast.errors import UserError
from stylecast.inference.server_config import ServerConfig
from stylecast.inference.server_limits import PLAIN_NAME, ApiError, PixelBudget
from stylecast.inference.server_metrics import Metrics
from stylecast.inference.server_models import LoadedStyle, ServedModels
from stylecast.inference.server_queue import InferencePool
from stylecast.inference.server_service import ImageLimits, StylizeService
from stylecast.inference.web_runtime import load_runtime


# What a style mix may look like to be quoted back in an error (names, weights, separators).
MIX_TEXT = re.compile(r"[A-Za-z0-9_.:,/ +-]{1,200}")


class ServerState:
    def __init__(self, config: ServerConfig):
        self.config = config
        workers, threads = config.resolve_concurrency()
        self.workers, self.threads = workers, threads
        options: dict[str, Any] = {"device": config.device, "backend": config.backend, "threads": threads}
        self.models = ServedModels(config.models_dir, options, config.warmup_sizes)
        self.pool = InferencePool(workers, config.queue_size)
        self.service = StylizeService(PixelBudget(config.resolve_decode_pixels()))
        self.http_limits = ImageLimits(config.max_pixels, config.max_aspect, config.max_side)
        self.ws_limits = ImageLimits(config.ws_max_pixels, config.max_aspect, config.ws_max_side)
        self.web_runtime = load_runtime(config.web_runtime_dir)
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

    def style(self, name: str | None) -> LoadedStyle:
        if not name:
            names = self.models.names()
            if not names:
                self.require_ready()
            name = names[0]
        loaded = self.models.get(name)
        if loaded is None and ("," in name or ":" in name or "/" in name):
            loaded = self._mix(name)
        if loaded is None:
            known = self.models.names()
            listed = ", ".join(known[:20]) + (" …" if len(known) > 20 else "")
            # echo the name only when it is a plain one: a request's string is never shown as a path
            shown = f" named {name!r}" if PLAIN_NAME.fullmatch(name) and ".." not in name else " by that name"
            raise ApiError(404, "unknown_style", f"no style{shown}; available: {listed or 'none'}")
        return loaded

    def _mix(self, spec: str) -> LoadedStyle | None:
        try:
            return self.models.mix(spec)
        except UserError as exc:
            # the grammar's messages quote the request's string: only a plain one is echoed
            detail = str(exc) if MIX_TEXT.fullmatch(spec) and ".." not in spec else "not a valid style mix (NAME:WEIGHT,NAME:WEIGHT, weights >= 0)"
            raise ApiError(422, "invalid_style", detail) from None

    def limits_info(self) -> dict[str, Any]:
        """The limits as GET /v1/styles shows them."""
        c = self.config
        return {
            "max_body_bytes": c.max_body_bytes,
            "max_pixels": c.max_pixels,
            "max_side": c.max_side,
            "ws_max_frame_bytes": c.ws_max_frame_bytes,
            "ws_max_pixels": c.ws_max_pixels,
            "ws_max_side": c.ws_max_side,
            "deadline_s": c.deadline,
        }
