"""Connections, below the ASGI app: uvicorn's HTTP and WebSocket protocols with what they lack.

uvicorn starts no timer until a connection's first response is complete, and its
`limit_concurrency` counts every open connection: 130 sockets that never send a byte made every
route, /healthz included, answer uvicorn's plain-text 503 for as long as they stayed open.
So here:

- a request head must arrive within `header_timeout` seconds of the connection opening (or of the
  previous response): then the connection is closed, with a JSON 408 if part of a head came; the
  same deadline holds for the rest of a body the app answered without reading;
- at most `max_idle_connections` connections may be waiting for a head: a new one closes the
  oldest (an idle flood cannot use up the process's file descriptors or starve new clients);
- uvicorn's own connection cap is off: the middleware caps requests and streams at once with the
  server's JSON 503 + Retry-After, and exempts the health checks.

The protocol is always h11 (httptools would be faster at parsing, but parsing is not where a
style server spends its time, and one protocol is one set of hooks to keep right).

WebSocket: uvicorn's websockets-sansio protocol marks a handshake complete only on accept or
close, so each refusal with an HTTP response (401, 403, 404 ...) also logged "ASGI callable
returned without completing handshake" at ERROR. The subclass marks it complete once the refusal
is sent; server_logging.log_refusal writes the one line a refusal gets.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from stylecast.inference.server_config import ServerConfig


class ConnectionGuard:
    """The connections of one server still waiting for a request head, oldest first."""

    def __init__(self, header_timeout: float, max_idle: int):
        self.header_timeout = header_timeout
        self.max_idle = max_idle
        self.waiting: collections.OrderedDict[GuardedH11Protocol, None] = collections.OrderedDict()

    def wait(self, conn: GuardedH11Protocol) -> None:
        self.waiting[conn] = None
        while len(self.waiting) > self.max_idle:
            oldest, _ = self.waiting.popitem(last=False)
            oldest.give_up("too many connections without a request")

    def done(self, conn: GuardedH11Protocol) -> None:
        self.waiting.pop(conn, None)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head (see the module docstring)."""

    def __init__(self, *args, guard: ConnectionGuard, **kwargs):
        super().__init__(*args, **kwargs)
        self._guard = guard
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0  # bytes of an unfinished head: a 408 is owed to a client that sent some

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is not None:
            self._head_bytes += len(data)
        super().data_received(data)
        self._follow_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_head()

    def connection_lost(self, exc) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    # -- the head deadline --------------------------------------------------------------------

    def _follow_head(self) -> None:
        """The clock runs whenever no request is being handled: before a head has arrived, and
        after a response while the client still owes the body of a request answered without
        reading it (a 401 before a slow upload). It stops while the app handles a request (the
        app's body timeout covers that) and when the connection became a WebSocket."""
        handling = self.cycle is not None and not self.cycle.response_complete
        if self.transport.is_closing() or self.transport.get_protocol() is not self or handling:
            self._stop_head_timer()
        elif self._head_timer is None:
            self._await_head()

    def _await_head(self) -> None:
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(self._guard.header_timeout, self.give_up, "request head not received in time")
        self._guard.wait(self)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._guard.done(self)

    def give_up(self, reason: str) -> None:
        """Close a connection that has not sent a request head: a JSON 408 first if part of one came."""
        self._stop_head_timer()
        if self.transport.is_closing():
            return
        if self._head_bytes and self.conn.their_state is h11.IDLE:  # part of a head, not a leftover body
            body = json.dumps({"error": "request_timeout", "detail": f"{reason} (within {self._guard.header_timeout:g} s)"}).encode()
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
        self.transport.close()


def _websocket_protocol():
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:  # an older uvicorn or no websockets package: uvicorn's own choice
        return "auto"

    class RefusingWebSocketProtocol(WebSocketsSansIOProtocol):
        async def send(self, message) -> None:
            await super().send(message)
            if message["type"] == "websocket.http.response.body" and not message.get("more_body", False):
                self.handshake_complete = True  # refused with an HTTP response: done, not an error

    return RefusingWebSocketProtocol


def uvicorn_config(app, config: ServerConfig) -> uvicorn.Config:
    """The uvicorn settings of `stylecast serve` for `app` (create_app(config))."""
    guard = ConnectionGuard(config.header_timeout, config.max_idle_connections)
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        http=functools.partial(GuardedH11Protocol, guard=guard),
        ws=_websocket_protocol(),
        ws_max_size=max(config.ws_max_frame_bytes, 64 * 1024),
        limit_concurrency=None,
        timeout_graceful_shutdown=int(config.resolve_drain_seconds() + 0.999),
        timeout_keep_alive=min(5.0, config.header_timeout),
        server_header=False,
        proxy_headers=False,
    )
