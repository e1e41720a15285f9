"""The ASGI middleware in front of every route: access log, request metrics, and the checks that
apply to all of them (before any route runs):

- the Host header: bound to loopback, only loopback names (a page on another site reaching
  127.0.0.1 through DNS rebinding sends its own host name) -> 400;
- a query parameter given twice -> 422;
- requests + streams at once over `max_connections` -> JSON 503 + Retry-After. The liveness and
  readiness checks are exempt: an orchestrator that cannot reach /healthz under load restarts a
  server that is only busy. (Connections that never finish their request head are not requests:
  server_connections.py closes them.)
Pure ASGI, so streamed bodies pass untouched.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from stylecast.inference.server_limits import ApiError, json_error, repeated_parameter
from stylecast.inference.server_logging import log_refusal
from stylecast.inference.server_state import ServerState

access_log = logging.getLogger("stylecast.access")

UNCAPPED_PATHS = ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready")


def _host_name(scope) -> str:
    for key, value in scope.get("headers", ()):
        if key == b"host":
            host = value.decode("latin-1").strip().lower()
            if host.startswith("["):  # [::1]:8000
                return host[: host.find("]") + 1]
            return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return ""


class AccessLogMiddleware:
    """JSON-lines access log and request metrics, plus the checks every route shares (above)."""

    def __init__(self, app, state: ServerState):
        self.app, self.state = app, state
        self.hosts = state.config.host_names()
        self.active = 0

    def _admission(self, scope) -> ApiError | None:
        if self.hosts is not None and _host_name(scope) not in self.hosts:
            return ApiError(400, "invalid_host", "this server answers only to its own host names (see --allow-host)")
        repeated = repeated_parameter(scope.get("query_string", b""))
        if repeated is not None:
            return repeated
        if self.active >= self.state.config.max_connections and scope["path"] not in UNCAPPED_PATHS:
            return ApiError(503, "overloaded", "too many requests and streams at once; retry later", {"Retry-After": "1"})
        return None

    async def _refuse(self, scope, receive, send, err: ApiError) -> None:
        response = json_error(err.status, err.error, err.detail, err.headers)
        if scope["type"] == "http":
            await response(scope, receive, send)
            return
        log_refusal(scope, err.status, err.error, err.detail)
        if "websocket.http.response" in scope.get("extensions", {}):
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
                message = {**message, "headers": [*message.get("headers", []), (b"x-content-type-options", b"nosniff")]}
            elif kind in ("http.response.body", "websocket.http.response.body"):
                status["bytes"] += len(message.get("body", b""))
            elif kind == "websocket.accept":
                status["code"] = 101
            elif kind == "websocket.close" and not status["code"]:
                status["code"] = 403  # closed before accept: uvicorn answers the handshake with 403
            await send(message)

        refusal = self._admission(scope)
        if refusal is not None:
            fields["error"] = refusal.error
        self.active += 1
        try:
            if refusal is not None:
                await self._refuse(scope, receive, send_wrapper, refusal)
            else:
                await self.app(scope, receive, send_wrapper)
        finally:
            self.active -= 1
            self._record(scope, status, fields, time.perf_counter() - start)

    def _record(self, scope, status: dict[str, int], fields: dict[str, Any], seconds: float) -> None:
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
