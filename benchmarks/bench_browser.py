"""The webcam page's frame rate, stylized on the server vs in the browser (onnxruntime-web, WASM),
in headless Chromium on this machine, side by side.

One `stylecast serve` (its defaults) with the shipped slim style `starry_night_slim`; Chromium's
fake camera (a moving test pattern) at 320x240 and 640x480. Each row starts the webcam, lets
three frames pass (model download, wasm compile, warm-up), then counts the frames drawn on the
page's canvas for T seconds. Both paths run on the same 2 cores: the server's inference in its
process, or the browser's in its renderer; the page, the camera and JPEG coding share them too.
Chromium here has no GPU, so WebGPU finds no adapter (SwiftShader, a software adapter, runs it at
~70 s a frame at 320x240: not a speed path) and the page runs WASM; thread counts are forced
through `self.STYLECAST_THREADS` (the page's own choice on 2 cores is 1).

    python -m benchmarks --only browser     # quick: ~3 min on 2 cores
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_server import _Server
from benchmarks.common import ROOT, machine_info, machine_line, markdown_table, update_section, write_json

STYLE = "starry_night_slim"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SIZES = ("320x240", "640x480")
# (label, on device, threads): threads None = the page's own choice
PATHS = (("server (WebSocket)", False, None), ("browser, WASM 1 thread", True, 1), ("browser, WASM 2 threads", True, 2))
STATS_JS = """() => ({frames: window.stylecast.framesDrawn, latency: document.querySelector('#latency').textContent,
    inference: document.querySelector('#server-ms').textContent, backend: document.querySelector('#backend').textContent,
    loads: StylecastDevice.state.loads, wasm: performance.getEntriesByType('resource').filter((e) => e.name.endsWith('.wasm'))
        .map((e) => ({name: e.name.split('/').pop(), ms: e.duration, bytes: e.encodedBodySize}))})"""


def _row(browser, url: str, size: str, on_device: bool, threads: int | None, seconds: float) -> dict:
    context = browser.new_context()
    context.grant_permissions(["camera"], origin=url.rstrip("/"))
    if threads:
        context.add_init_script(f"self.STYLECAST_THREADS = {threads}")
    page = context.new_page()
    try:
        page.goto(url)
        page.wait_for_function("() => window.stylecast.browserRuntime !== null && !document.querySelector('#style').disabled")
        page.select_option("#style", STYLE)
        page.click("#tab-webcam")
        page.select_option("#resolution", size)
        if on_device:
            page.check("#on-device")
            page.wait_for_function("() => document.querySelector('#backend').textContent !== 'the server'", timeout=120_000)
        page.click("#cam-start")
        page.wait_for_function("() => window.stylecast.framesDrawn >= 3", timeout=300_000)
        start = page.evaluate(STATS_JS)
        t0 = time.perf_counter()
        page.wait_for_timeout(seconds * 1000)
        end = page.evaluate(STATS_JS)
        elapsed = time.perf_counter() - t0
        frames = end["frames"] - start["frames"]
        return {
            "size": size,
            "on_device": on_device,
            "threads": threads,
            "frames": frames,
            "fps": frames / elapsed,
            "latency_ms": end["latency"],
            "inference_ms": end["inference"],
            "backend": end["backend"],
            "loads": end["loads"],
            "wasm": end["wasm"],
        }
    finally:
        context.close()


def run(quick: bool = True) -> dict:
    from playwright.sync_api import sync_playwright

    from stylecast.inference.web_runtime import load_runtime

    runtime = load_runtime()
    if not CHROMIUM.exists() or not runtime.available:
        print(f"bench_browser: skipped ({'no chromium' if not CHROMIUM.exists() else runtime.reason})", file=sys.stderr)
        return {}
    seconds = 10.0 if quick else 30.0
    results: dict = {"machine": machine_info(), "quick": quick, "seconds_per_run": seconds, "onnxruntime_web": runtime.version, "rows": []}
    with tempfile.TemporaryDirectory(prefix="bench-browser-") as tmp:
        shutil.copy(ROOT / "checkpoints" / f"{STYLE}.onnx", tmp)
        server = _Server(Path(tmp))
        try:
            style = server.info["styles"][0]
            results["server"] = {"backend": style["backend"], "precision": style["precision"], "threads": server.info["threads"]}
            results["model_bytes"] = style["browser"]["bytes"]
            results["runtime_bytes"] = server.info["browser_runtime"]["bytes"]
            results["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
                for size in SIZES:
                    for label, on_device, threads in PATHS:
                        row = _row(browser, server.url, size, on_device, threads, seconds)
                        row["path"] = label
                        results["rows"].append(row)
                        print(f"{size} {label}: {row['fps']:.2f} FPS, latency {row['latency_ms']} ms ({row['backend']})", file=sys.stderr)
                browser.close()
            results["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        finally:
            server.stop()
    write_json("browser", results)
    _write_section(results)
    return results


def _write_section(r: dict) -> None:
    rows = [[row["size"], row["path"], round(row["fps"], 2), row["latency_ms"], row["inference_ms"]] for row in r["rows"]]
    first = next((row["loads"][0] for row in r["rows"] if row["loads"]), None)
    wasm = next((w for row in r["rows"] for w in row["wasm"] if w["bytes"]), None)
    load = (
        f"the model ({first['bytes'] / 1e6:.2f} MB) downloaded in {first['fetchMs']:.0f} ms and its first session (which also "
        f"compiles the wasm) took {first['createMs']:.0f} ms"
        if first
        else "no model load recorded"
    )
    fetched = f"; the WASM runtime's binary ({wasm['bytes'] / 1e6:.1f} MB) downloaded in {wasm['ms']:.0f} ms" if wasm else ""
    srv = r["server"]
    body = f"""{machine_line(r["machine"])} · onnxruntime-web {r["onnxruntime_web"]} in headless Chromium

`python -m benchmarks --only browser` (`benchmarks/bench_browser.py`): the webcam page (Chromium's
fake camera) with the shipped `{STYLE}` (slim net), each row {r["seconds_per_run"]:g} s after three warm-up
frames. "server": `stylecast serve` defaults ({srv["backend"]} {srv["precision"]}, {srv["threads"]} threads), JPEG
frames over the WebSocket; "browser": the page's "run on this device" switch, WASM (Chromium has no
GPU here; WebGPU finds no adapter). Both on the same 2 cores, shared with other work: load average
before {r["loadavg_before"]}, after {r["loadavg_after"]}. Latency: capture to drawn (EWMA); inference: the
network's run (server: decode + stylize + encode).

{markdown_table(["frame", "path", "FPS", "latency ms", "inference ms"], rows)}

Downloads (loopback, first page load; later loads hit the browser's cache): {load}{fetched}.
The WebGPU build is {r["runtime_bytes"]["webgpu"] / 1e6:.1f} MB, the WASM one {r["runtime_bytes"]["wasm"] / 1e6:.1f} MB (uncompressed).
"""
    update_section("browser", "Webcam page: server vs in-browser (onnxruntime-web WASM)", body)


if __name__ == "__main__":
    run(quick="--full" not in sys.argv)
