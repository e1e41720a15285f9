"""`ServerConfig`: everything the server does by default; `stylecast serve --help` mirrors it."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from stylecast.errors import UserError
from stylecast.inference.registry import resolve_models_dir
from stylecast.inference.server_limits import OUTPUT_FORMATS

# A 1080p camera frame plus 10 %: the webcam page sends 640x480; a phone or an HD webcam up to this.
WS_MAX_PIXELS = int(1920 * 1080 * 1.1)
# Decoding beyond one image at the pixel limit: room for a 12 MPix phone photo beside it.
DECODE_HEADROOM_PIXELS = 12_000_000


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _env_token() -> str | None:
    return os.environ.get("STYLECAST_TOKEN") or None


def _has_cuda() -> bool:
    try:
        from stylecast.inference.backends import cuda_available

        return cuda_available()
    except Exception:
        return False


@dataclass
class ServerConfig:
    """Everything the server does by default; `stylecast serve --help` mirrors these fields."""

    models_dir: str = field(default_factory=lambda: str(resolve_models_dir()))  # $STYLECAST_MODELS > ./checkpoints > shipped
    host: str = "127.0.0.1"  # loopback unless asked: no token by default
    port: int = 8000
    token: str | None = field(default_factory=_env_token)  # or env STYLECAST_TOKEN; None = open
    allowed_origins: tuple[str, ...] = ()  # extra WebSocket/CORS origins; the page's own is always allowed
    allowed_hosts: tuple[str, ...] | None = None  # Host header names accepted; None = loopback names when bound to
    # loopback (DNS rebinding), any otherwise; "*" = any
    max_body_bytes: int = 20 * 2**20  # a 24 MPix phone JPEG is ~10 MB
    max_pixels: int = 40_000_000  # header-declared width x height, checked before decoding
    decode_pixels: int | None = None  # pixels decoded at once over all workers; None = max_pixels + 12 MPix
    max_side: int = 2048  # larger images are scaled down to this longer side
    max_aspect: float = 32.0  # 1x20000 strips are refused (422)
    concurrency: int | None = None  # jobs at once; None = matched to cores/GPU (resolve_concurrency)
    queue_size: int = 8  # jobs waiting beyond `concurrency`; more -> 503
    deadline: float = 30.0  # seconds from admission to answer; -> 504
    body_timeout: float = 30.0  # seconds to receive a request body; -> 408
    header_timeout: float = 5.0  # seconds to receive a request head (or the next one); then closed
    ws_max_frame_bytes: int = 2 * 2**20  # a 640x480 JPEG is ~50 kB; larger -> close 1009
    ws_max_pixels: int = WS_MAX_PIXELS  # a webcam frame's width x height, checked before decoding
    ws_max_side: int = 1280  # webcam frames are scaled down to this longer side
    default_format: str = "png"  # when neither `format` nor Accept says
    jpeg_quality: int = 90  # JPEG/WebP quality of /v1/stylize responses
    ws_quality: int = 80  # JPEG/WebP quality of webcam frames
    ws_pipeline: int = 1  # frames of one stream stylized at once; 2 overlaps one frame's
    # decode/encode with the next one's network (with concurrency >= 2)
    device: str = "auto"  # Stylizer device / backend / threads
    backend: str = "auto"
    threads: int | None = None  # per job; None = cores / concurrency
    warmup_sizes: tuple[tuple[int, int], ...] = ((256, 256), (240, 320), (480, 640))
    watch_interval: float = 0.0  # seconds between models-folder checks; 0 = only /v1/reload
    max_connections: int = 64  # requests + streams at once; more -> JSON 503 (health checks exempt)
    max_idle_connections: int = 256  # connections without a complete request head; more -> the oldest closed
    drain_seconds: float | None = None  # SIGTERM: wait this long for in-flight work; None = deadline + 5
    browser_models: bool = True  # hand each style's .onnx to the page for in-browser inference
    web_runtime_dir: str | None = None  # onnxruntime-web's files; None = $STYLECAST_WEB_RUNTIME, else the packaged ones

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

    def resolve_decode_pixels(self) -> int:
        return self.decode_pixels if self.decode_pixels is not None else self.max_pixels + DECODE_HEADROOM_PIXELS

    def resolve_drain_seconds(self) -> float:
        return self.drain_seconds if self.drain_seconds is not None else self.deadline + 5

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
            (self.max_pixels > 0 and self.ws_max_pixels > 0, "max_pixels and ws_max_pixels must be positive"),
            (self.decode_pixels is None or self.decode_pixels > 0, "decode_pixels must be positive"),
            (self.max_side >= 8, "max_side must be at least 8"),
            (self.max_aspect >= 1, "max_aspect must be at least 1"),
            (self.queue_size >= 0, "queue_size must be >= 0"),
            (self.deadline > 0, "deadline must be positive"),
            (self.body_timeout > 0 and self.header_timeout > 0, "body_timeout and header_timeout must be positive"),
            (self.ws_max_frame_bytes > 0, "ws_max_frame_bytes must be positive"),
            (self.default_format.lower() in OUTPUT_FORMATS, "default_format must be png, jpeg or webp"),
            (self.concurrency is None or self.concurrency >= 1, "concurrency must be >= 1"),
            (1 <= self.ws_pipeline <= 8, "ws_pipeline must be 1..8"),
            (self.max_connections >= 1 and self.max_idle_connections >= 1, "max_connections and max_idle_connections must be >= 1"),
            (1 <= self.jpeg_quality <= 100 and 1 <= self.ws_quality <= 100, "quality must be 1..100"),
            (self.token is None or len(self.token) > 0, "token must not be empty"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
