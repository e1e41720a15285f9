"""Prometheus metrics for the server, in the text exposition format (version 0.0.4), written here.

Four metric kinds cover what the server reports: counters and gauges with labels, and
histograms with fixed buckets. Updates come from the event loop and from worker threads, so each
metric holds a lock; rendering takes a consistent snapshot per metric.
Format: https://prometheus.io/docs/instrumenting/exposition_formats/
"""

from __future__ import annotations

import bisect
import math
import threading
from typing import Callable, Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds: from a 320x240 webcam frame on a GPU (~ms) to a 2048² image on 2 CPU cores (~s).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(v: float) -> str:
    if v == math.inf:
        return "+Inf"
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_: str, labels: Iterable[str] = ()):
        self.name, self.help, self.label_names = name, help_, tuple(labels)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        if set(labels) != set(self.label_names):
            raise ValueError(f"{self.name}: labels must be {self.label_names}, got {tuple(labels)}")
        return tuple(str(labels[n]) for n in self.label_names)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_: str, labels: Iterable[str] = ()):
        super().__init__(name, help_, labels)
        self._values: dict[tuple[str, ...], float] = {}
        if not self.label_names:
            self._values[()] = 0.0

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.label_names, k)} {_num(v)}" for k, v in items]


class Gauge(_Metric):
    """A gauge set directly, or read from a callable at render time (queue depth, models loaded)."""

    kind = "gauge"

    def __init__(self, name: str, help_: str, labels: Iterable[str] = (), read: Callable[[], float] | None = None):
        super().__init__(name, help_, labels)
        self._values: dict[tuple[str, ...], float] = {}
        self._read = read
        if not self.label_names and read is None:
            self._values[()] = 0.0

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def dec(self, amount: float = 1.0, **labels: str) -> None:
        self.inc(-amount, **labels)

    def value(self, **labels: str) -> float:
        if self._read is not None:
            return float(self._read())
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        if self._read is not None:
            return self.header() + [f"{self.name} {_num(self._read())}"]
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.label_names, k)} {_num(v)}" for k, v in items]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_: str, labels: Iterable[str] = (), buckets: Iterable[float] = LATENCY_BUCKETS):
        super().__init__(name, help_, labels)
        self.buckets = tuple(sorted(float(b) for b in buckets))
        # per label set: [count per bucket (non-cumulative, last = +Inf)], sum, count
        self._data: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        i = bisect.bisect_left(self.buckets, value)  # le-buckets: value <= bound
        with self._lock:
            counts, total = self._data.setdefault(key, ([0] * (len(self.buckets) + 1), [0.0]))
            counts[i] += 1
            total[0] += value

    def count(self, **labels: str) -> int:
        with self._lock:
            data = self._data.get(self._key(labels))
            return sum(data[0]) if data else 0

    def render(self) -> list[str]:
        with self._lock:
            items = sorted((k, (list(c), s[0])) for k, (c, s) in self._data.items())
        lines = self.header()
        for key, (counts, total) in items:
            running = 0
            for bound, n in zip(self.buckets + (math.inf,), counts):
                running += n
                le = 'le="' + _num(bound) + '"'
                lines.append(f"{self.name}_bucket{_labels(self.label_names, key, le)} {running}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, key)} {_num(total)}")
            lines.append(f"{self.name}_count{_labels(self.label_names, key)} {running}")
        return lines


class Metrics:
    """Everything /metrics reports. Gauges that mirror live state read it when scraped."""

    def __init__(
        self,
        *,
        queue_depth: Callable[[], float],
        inflight: Callable[[], float],
        capacity: Callable[[], float],
        models: Callable[[], float],
        ready: Callable[[], float],
    ):
        p = "stylecast_"
        self.requests = Counter(p + "http_requests_total", "HTTP requests by route, method and status code.", ("route", "method", "status"))
        self.request_seconds = Histogram(p + "http_request_duration_seconds", "HTTP request latency, body read to response sent.", ("route",))
        self.inference_seconds = Histogram(p + "inference_seconds", "Decode + stylize + encode time in a worker.", ("style",))
        self.queue_seconds = Histogram(p + "queue_wait_seconds", "Time a job waited for a worker slot.")
        self.rejected = Counter(p + "rejected_total", "Jobs not run to completion, by reason.", ("reason",))
        self.ws_connections = Gauge(p + "ws_connections", "Open WebSocket streams.")
        self.ws_connections_total = Counter(p + "ws_connections_total", "WebSocket streams accepted since start.")
        self.ws_frames = Counter(p + "ws_frames_total", "WebSocket frames by outcome.", ("result",))
        self.reloads = Counter(p + "reloads_total", "Model reloads by outcome.", ("result",))
        self._all = [
            self.requests,
            self.request_seconds,
            self.inference_seconds,
            self.queue_seconds,
            self.rejected,
            Gauge(p + "queue_depth", "Jobs waiting for a worker slot.", read=queue_depth),
            Gauge(p + "inflight", "Jobs running on a worker.", read=inflight),
            Gauge(p + "queue_capacity", "Most jobs admitted at once (workers + queue); more get 503.", read=capacity),
            Gauge(p + "models_loaded", "Styles loaded and warmed up.", read=models),
            Gauge(p + "ready", "1 when /readyz answers 200.", read=ready),
            self.ws_connections,
            self.ws_connections_total,
            self.ws_frames,
            self.reloads,
        ]

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._all:
            lines += metric.render()
        return "\n".join(lines) + "\n"
