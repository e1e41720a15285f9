"""`stylecast serve`: run the stylization server (inference/server.py) under uvicorn.

Binds 127.0.0.1:8000 by default and prints the page's URL once it listens. SIGTERM or Ctrl-C
stops accepting connections, marks /readyz 503, lets in-flight requests finish (up to the
deadline + 5 s), then exits with status 0.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import signal
import socket
import sys
import threading
from pathlib import Path

import uvicorn

from stylecast.flags import DEVICE_HELP, device_arg
from stylecast.inference.registry import MODELS_DIR_RULE, resolve_models_dir
from stylecast.inference.server import ServerConfig, create_app
from stylecast.inference.server_connections import uvicorn_config
from stylecast.inference.server_logging import setup_logging
from stylecast.errors import UserError

log = logging.getLogger("stylecast.server")


def build_parser() -> argparse.ArgumentParser:
    d = ServerConfig(token=None)
    p = argparse.ArgumentParser(prog="stylecast serve", description="HTTP server + web page with live webcam stylization (no torch).")
    p.add_argument("--models-dir", default=None, help=f"folder of STYLE.onnx files (default: {MODELS_DIR_RULE})")
    p.add_argument("--host", default=d.host, help=f"address to bind (default: {d.host}; 0.0.0.0 exposes it to the network: set a token)")
    p.add_argument("--port", type=int, default=d.port, help=f"port (default: {d.port}; 0 picks a free one)")
    p.add_argument(
        "--token", default=None, help="API token required on /v1 and /metrics (default: env STYLECAST_TOKEN; prefer the env var: arguments are visible in ps)"
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="extra origin allowed to call the API and open streams (repeatable; the page's own origin is always allowed)",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=None,
        metavar="NAME",
        help="Host header name to answer (repeatable; '*' = any). Default: loopback names when bound to "
        "loopback, else any. Needed behind a reverse proxy that forwards its own Host",
    )
    _add_limit_args(p, d)
    _add_runtime_args(p, d)
    return p


def _add_limit_args(p: argparse.ArgumentParser, d: ServerConfig) -> None:
    """What one request, stream or client may cost the server."""
    p.add_argument("--max-body-mb", type=float, default=d.max_body_bytes / 2**20, help="largest request body in MiB (default: %(default)g)")
    p.add_argument("--max-pixels", type=int, default=d.max_pixels, help="largest image, width x height, checked before decoding (default: %(default)d)")
    p.add_argument(
        "--decode-pixels",
        type=int,
        default=d.decode_pixels,
        help="pixels decoded at once over all workers, bounding decode memory (default: max-pixels + 12 MPix)",
    )
    p.add_argument("--max-side", type=int, default=d.max_side, help="longer side images are scaled down to (default: %(default)d)")
    p.add_argument("--concurrency", type=int, default=d.concurrency, help="images stylized at once (default: matched to the cores / GPU)")
    p.add_argument("--queue-size", type=int, default=d.queue_size, help="requests that may wait beyond --concurrency; more get 503 (default: %(default)d)")
    p.add_argument("--deadline", type=float, default=d.deadline, help="seconds a request may take before 504 (default: %(default)g)")
    p.add_argument(
        "--ws-max-frame-kb",
        type=int,
        default=d.ws_max_frame_bytes // 1024,
        help="largest webcam frame in KiB; larger closes the stream with 1009 (default: %(default)d)",
    )
    p.add_argument(
        "--ws-max-pixels",
        type=int,
        default=d.ws_max_pixels,
        help="largest webcam frame, width x height, checked before decoding (default: %(default)d, 1080p + 10%%)",
    )
    p.add_argument(
        "--ws-pipeline",
        type=int,
        default=d.ws_pipeline,
        metavar="N",
        help="frames of one webcam stream stylized at once; 2 overlaps decode/encode of one frame with the next "
        "one's network, with --concurrency 2 (default: %(default)d)",
    )


def _add_runtime_args(p: argparse.ArgumentParser, d: ServerConfig) -> None:
    """How styles are run and the server reports."""
    p.add_argument(
        "--format", choices=("png", "jpeg", "webp"), default=d.default_format, help="output format when the client does not say (default: %(default)s)"
    )
    p.add_argument("--device", type=device_arg, default=d.device, help=f"stylizer device: {DEVICE_HELP} (default: auto)")
    p.add_argument("--backend", choices=("auto", "ort", "openvino"), default=d.backend, help="stylizer runtime (default: auto)")
    p.add_argument("--threads", type=int, default=d.threads, help="threads per image (default: cores / concurrency)")
    p.add_argument(
        "--watch",
        type=float,
        default=d.watch_interval,
        metavar="SECONDS",
        help="re-read the models folder when it changes, checking every SECONDS (default: off; POST /v1/reload always works)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=d.max_connections,
        help="requests and streams at once; more get 503, health checks excepted (default: %(default)d)",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=d.header_timeout,
        metavar="SECONDS",
        help="close a connection that has not sent a request head within SECONDS (default: %(default)g)",
    )
    p.add_argument(
        "--max-idle-connections",
        type=int,
        default=d.max_idle_connections,
        help="connections waiting for a request head; more close the oldest (default: %(default)d)",
    )
    p.add_argument(
        "--no-browser-models",
        action="store_true",
        help="do not hand the style models to the page: every webcam frame is stylized here (the page's 'run on this device' switch says so)",
    )
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    p.add_argument("--no-access-log", action="store_true", help="do not write the JSON-lines access log to stderr")


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    # checked here: socket.bind raises OverflowError (a traceback) for ports outside 0..65535
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be between 0 and 65535 (0 picks a free one), got {args.port}")
    kwargs = dict(
        models_dir=str(resolve_models_dir(args.models_dir)),
        host=args.host,
        port=args.port,
        allowed_origins=tuple(args.allow_origin),
        allowed_hosts=tuple(args.allow_host) if args.allow_host else None,
        max_body_bytes=int(args.max_body_mb * 2**20),
        max_pixels=args.max_pixels,
        max_side=args.max_side,
        concurrency=args.concurrency,
        queue_size=args.queue_size,
        deadline=args.deadline,
        ws_max_frame_bytes=args.ws_max_frame_kb * 1024,
        default_format=args.format,
        device=args.device,
        backend=args.backend,
        threads=args.threads,
        watch_interval=args.watch,
        max_connections=args.max_connections,
        header_timeout=args.header_timeout,
        max_idle_connections=args.max_idle_connections,
        decode_pixels=args.decode_pixels,
        ws_max_pixels=args.ws_max_pixels,
        browser_models=not args.no_browser_models,
        ws_pipeline=args.ws_pipeline,
    )
    if args.token is not None:
        kwargs["token"] = args.token
    config = ServerConfig(**kwargs)
    config.validate()
    return config


def _bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        family = socket.AF_INET  # a host name: resolved by bind
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else (f"[{host}]" if ":" in host else host))
    return f"http://{shown}:{port}/"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    models = Path(config.models_dir)
    if not models.is_dir():
        raise UserError(f"{models}: no such models folder (export a style with `stylecast export`, or pass --models-dir)")
    sock = _bind(config.host, config.port)  # first: a busy port fails before anything loads
    try:
        port = sock.getsockname()[1]
        setup_logging(args.log_level, not args.no_access_log)
        if not any(models.glob("*.onnx")):
            log.warning("%s has no .onnx styles yet: /readyz stays 503 until one is added and POST /v1/reload is called", models)
        if config.token is None and not _is_loopback(config.host):
            log.warning("listening on %s without a token: anyone who can reach this port can use the server (set STYLECAST_TOKEN)", config.host)

        app = create_app(config)
        state = app.state.stylecast
        server = DrainingServer(uvicorn_config(app, config), on_exit=lambda: setattr(state, "draining", True))
        print(f"stylecast serve: {_url(config.host, port)}  (styles from {models}/; Ctrl-C to stop)", flush=True)
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


class DrainingServer(uvicorn.Server):
    """uvicorn.Server that marks the app draining on SIGTERM/SIGINT, and exits with status 0
    after a clean drain (uvicorn itself re-raises the signal once it has shut down)."""

    def __init__(self, config: uvicorn.Config, on_exit):
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig, frame):
        if not self.should_exit:
            log.info("%s: draining (no new connections; in-flight work finishes)", signal.Signals(sig).name)
        self._on_exit()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


if __name__ == "__main__":  # pragma: no cover
    from stylecast.cli import main as cli_main

    sys.exit(cli_main(["serve", *sys.argv[1:]]))
