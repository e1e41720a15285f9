"""Load test of `stylecast serve` on loopback: HTTP throughput/latency and WebSocket FPS.

The server runs as its own process (`stylecast serve`, default concurrency and queue); this
process is the client: N concurrent HTTP clients post a JPEG photo for T seconds at 256² and 512²
(JPEG out), and count throughput, p50/p99 latency, errors by status, and the server's RSS before
and after. Then a WebSocket client streams 320x240 and 640x480 JPEG frames the way the page does
(at most 2 frames in flight) and measures delivered FPS and send->draw latency.

Models: random-weight nets of the two shipped architectures, exported to ONNX here (timing does
not depend on the weights): the full Johnson net (HTTP) and the slim real-time net (WebSocket).

    python -m benchmarks --only server          # quick: ~3 min on 2 cores
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import ROOT, machine_info, machine_line, markdown_table, update_section, write_json

SHARED_CONTENT = Path(os.environ.get("STYLECAST_SHARED", ROOT.parent / "shared")) / "data" / "content"
ARCHITECTURES = {"johnson": (1.0, 5), "slim": (0.5, 3)}  # name -> (width, residual_blocks)


def _export_models(folder: Path) -> None:
    import torch

    from stylecast.training.export import export_onnx
    from stylecast.training.transformer import TransformerNet

    meta = {
        "style_image": "random",
        "recipe": "benchmark-random-init",
        "steps": "0",
        "content_weight": "1",
        "style_weight": "1",
        "tv_weight": "0",
        "content_layers": "relu2_2:1",
        "style_layers": "relu1_2:1",
    }
    for name, (width, blocks) in ARCHITECTURES.items():
        torch.manual_seed(0)
        net = TransformerNet(width=width, residual_blocks=blocks)
        export_onnx(net, folder / f"{name}.onnx", {**meta, "style_name": name, "architecture": f"TransformerNet(width={width:g}, residual_blocks={blocks})"})


def _photo(width: int, height: int) -> bytes:
    """A real photo from the shared data when present (never copied into the repo), else a synthetic one."""
    photos = sorted(SHARED_CONTENT.glob("*.jpg")) if SHARED_CONTENT.is_dir() else []
    if photos:
        img = Image.open(photos[0]).convert("RGB")
        scale = max(width / img.width, height / img.height)
        img = img.resize((math.ceil(img.width * scale), math.ceil(img.height * scale)), Image.Resampling.LANCZOS)
        left, top = (img.width - width) // 2, (img.height - height) // 2
        img = img.crop((left, top, left + width, top + height))
    else:
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        arr = np.stack([np.sin(xx / 17) * 0.4 + 0.5, np.cos(yy / 23) * 0.4 + 0.5, (xx + yy) / (width + height)], -1)
        img = Image.fromarray(np.clip(arr * 255, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


class _Server:
    def __init__(self, models: Path, *args: str):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("STYLECAST_TOKEN", None)
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stylecast.cli", "serve", "--models-dir", str(models), "--port", "0", "--no-access-log", "--deadline", "120", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        line = self.proc.stdout.readline()
        m = re.search(r"http://[\d.]+:\d+/", line)
        if not m:
            raise RuntimeError(f"server did not start: {line!r}")
        self.url = m.group(0)
        import httpx

        end = time.monotonic() + 300
        while time.monotonic() < end:
            try:
                if httpx.get(self.url + "readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("server not ready in 300 s")
        self.info = httpx.get(self.url + "v1/styles", timeout=10).json()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _direct_ms(model: Path, body: bytes, info: dict, repeats: int) -> float:
    """The same decode -> stylize -> JPEG encode in this process, no server: the floor the HTTP
    latency is compared with (same backend and threads as the server)."""
    from stylecast.inference.stylizer import Stylizer
    from stylecast.images import encode_image, open_image, pil_to_array

    style = info["styles"][0]
    stylizer = Stylizer(model, backend=style["backend"], device=style["device"], threads=info["threads"])

    def once():
        encode_image(stylizer(pil_to_array(open_image(body))), "JPEG", quality=90)

    once()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def _http_load(url: str, style: str, body: bytes, clients: int, seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    end = time.monotonic() + seconds

    async def one_client(c):
        while time.monotonic() < end:
            t0 = time.perf_counter()
            try:
                r = await c.post("v1/stylize", params={"style": style, "format": "jpeg"}, content=body)
                code = r.status_code
                if code == 503:  # honour Retry-After the way a client should, but briefly
                    await asyncio.sleep(min(float(r.headers.get("retry-after", 1)), 0.5))
            except httpx.HTTPError:
                code = -1
            statuses[code] = statuses.get(code, 0) + 1
            if code == 200:
                latencies.append(time.perf_counter() - t0)

    start = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=180, limits=httpx.Limits(max_connections=clients + 4)) as c:
        await asyncio.gather(*[one_client(c) for _ in range(clients)])
    elapsed = time.monotonic() - start
    ok = statuses.get(200, 0)
    return {
        "ok": ok,
        "errors": {str(k): v for k, v in sorted(statuses.items()) if k != 200},
        "seconds": round(elapsed, 2),
        "throughput_rps": ok / elapsed,
        "p50_ms": _pct(latencies, 50) * 1000,
        "p99_ms": _pct(latencies, 99) * 1000,
    }


async def _ws_stream(ws_url: str, frame: bytes, seconds: float, inflight_max: int = 2) -> dict:
    from websockets.asyncio.client import connect

    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    done_times: list[float] = []
    dropped = errors = 0
    seq = 0
    async with connect(ws_url, max_size=2**24) as ws:
        json.loads(await ws.recv())  # hello
        start = time.monotonic()
        end = start + seconds
        inflight = 0
        while time.monotonic() < end or inflight:
            while inflight < inflight_max and time.monotonic() < end:
                seq += 1
                sent_at[seq] = time.perf_counter()
                await ws.send(frame)
                inflight += 1
            msg = await asyncio.wait_for(ws.recv(), 60)
            if isinstance(msg, str):
                head = json.loads(msg)
                if head["type"] in ("dropped", "error"):
                    inflight -= 1
                    dropped += head["type"] == "dropped"
                    errors += head["type"] == "error"
                continue
            n = struct.unpack(">I", msg[:4])[0]
            head = json.loads(msg[4 : 4 + n])
            inflight -= 1
            now = time.perf_counter()
            latencies.append(now - sent_at.pop(head["seq"]))
            done_times.append(time.monotonic())
    in_window = [t for t in done_times if t <= end]
    return {
        "frames": len(latencies),
        "fps": len(in_window) / seconds,
        "dropped": dropped,
        "errors": errors,
        "p50_ms": _pct(latencies, 50) * 1000,
        "p99_ms": _pct(latencies, 99) * 1000,
    }


def run(quick: bool = True) -> dict:
    seconds = 8.0 if quick else 30.0
    client_counts = (1, 4, 16) if quick else (1, 4, 16, 64)
    sizes = (256, 512) if quick else (256, 512, 1024)
    results: dict = {"machine": machine_info(), "quick": quick, "seconds_per_run": seconds, "http": [], "ws": []}
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        models = Path(tmp)
        _export_models(models)
        server = _Server(models)
        try:
            info = server.info
            style_info = {s["name"]: s for s in info["styles"]}
            results["server"] = {
                "workers": info["workers"],
                "threads": info["threads"],
                "queue_size": None,
                "backend": style_info["johnson"]["backend"],
                "precision": style_info["johnson"]["precision"],
            }
            import httpx

            results["server"]["queue_size"] = httpx.get(server.url + "readyz").json()["queue_size"]
            bodies = {s: _photo(s, s) for s in sizes}
            for s in sizes:  # first request at a size pays OpenVINO's compile for that shape
                httpx.post(server.url + "v1/stylize", params={"style": "johnson", "format": "jpeg"}, content=bodies[s], timeout=120)
            results["direct_ms"] = {f"{s}x{s}": _direct_ms(models / "johnson.onnx", bodies[s], info, 3 if quick else 10) for s in sizes}
            results["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]
            rss_before = server.rss_mb()
            for s in sizes:
                for n in client_counts:
                    row = asyncio.run(_http_load(server.url, "johnson", bodies[s], n, seconds))
                    row.update(size=f"{s}x{s}", clients=n)
                    results["http"].append(row)
                    print(
                        f"http {s}² x{n}: {row['throughput_rps']:.1f} req/s p50 {row['p50_ms']:.0f} ms p99 {row['p99_ms']:.0f} ms errors {row['errors']}",
                        file=sys.stderr,
                    )
            results["rss_mb"] = {"before": round(rss_before, 1), "after_http": round(server.rss_mb(), 1)}
            ws_url = server.url.replace("http://", "ws://") + "v1/stream?style=slim&format=jpeg"
            for w, h in ((320, 240), (640, 480)):
                frame = _photo(w, h)
                row = asyncio.run(_ws_stream(ws_url, frame, seconds))
                row.update(size=f"{w}x{h}", frame_bytes=len(frame))
                results["ws"].append(row)
                print(f"ws {w}x{h}: {row['fps']:.1f} fps p50 {row['p50_ms']:.0f} ms p99 {row['p99_ms']:.0f} ms", file=sys.stderr)
            results["rss_mb"]["after_ws"] = round(server.rss_mb(), 1)
            results["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        finally:
            server.stop()
    write_json("server", results)
    _write_section(results)
    return results


def _write_section(r: dict) -> None:
    srv = r["server"]
    http_rows = [
        [
            row["size"],
            row["clients"],
            row["ok"],
            round(row["throughput_rps"], 2),
            round(row["p50_ms"]),
            round(row["p99_ms"]),
            ", ".join(f"{k}: {v}" for k, v in row["errors"].items()) or "0",
            round(r["direct_ms"][row["size"]]),
        ]
        for row in r["http"]
    ]
    ws_rows = [
        [row["size"], row["frame_bytes"], round(row["fps"], 1), round(row["p50_ms"]), round(row["p99_ms"]), row["dropped"], row["errors"]] for row in r["ws"]
    ]
    rss = r["rss_mb"]
    body = f"""{machine_line(r["machine"])}

`python -m benchmarks --only server` (`benchmarks/bench_server.py`): `stylecast serve` with its defaults
({srv["workers"]} worker x {srv["threads"]} threads, queue {srv["queue_size"]}, backend {srv["backend"]} {srv["precision"]}) in one
process, the load generator in another, on loopback. Random-weight nets (speed does not depend on
the weights). Each row runs {r["seconds_per_run"]:g} s. Load average (1/5/15 min) before: {r["loadavg_before"]}, after: {r["loadavg_after"]}
(the machine is shared; on 2 cores anything above 2 means the runs competed for the CPU).

**HTTP** `POST /v1/stylize` (full Johnson net, a JPEG photo in, JPEG out; clients loop back-to-back,
a 503 waits min(Retry-After, 0.5 s)); latency is the client's, over the 200s:

{markdown_table(["size", "clients", "200s", "req/s", "p50 ms", "p99 ms", "errors", "direct ms"], http_rows)}

"direct ms": the same decode -> stylize -> encode called in-process without the server (median),
measured in the same run: the server's own overhead is p50 at 1 client minus this.

Server RSS: {rss["before"]:.0f} MB after warm-up, {rss["after_http"]:.0f} MB after the HTTP runs, {rss["after_ws"]:.0f} MB after the WebSocket runs.

**WebSocket** `/v1/stream` (slim net, width 0.5, 3 residual blocks; the page's flow control: at most
2 frames in flight; JPEG frames of a photo in, JPEG out); latency is send -> stylized frame received:

{markdown_table(["frame", "bytes", "FPS", "p50 ms", "p99 ms", "dropped", "errors"], ws_rows)}
"""
    update_section("server", "Server under load (`stylecast serve`)", body)


if __name__ == "__main__":
    run(quick="--full" not in sys.argv)
