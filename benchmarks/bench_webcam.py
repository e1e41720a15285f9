"""The webcam page at 640x480, end to end, in headless Chromium fed a real clip; and the cheap
levers that are not a new network, side by side in one run.

The clip: a slow pan and zoom across photos of ../shared/data/content (never copied into the repo),
640x480 at 30 FPS, written as .y4m into a temp folder at run time and played (looped) by
Chromium's fake camera. The page is the real one (`stylecast serve`, its own WebSocket flow
control); the numbers are the page's own: frames drawn per second, per-frame latency from capture
(before the page's JPEG encode) to drawn, p50/p99 over the row, frames the server answered
"dropped", and the server's decode / stylize / encode split from the frame headers.

Rows:
- each shipped real-time style (and every `--model PATH`), with the server on ONNX Runtime fp32
  and on OpenVINO (bf16 where the CPU has bf16), and in the browser (onnxruntime-web, WASM);
- levers, on the fastest style and server backend of those rows: frames in flight (the page's
  flow control: 1, 2 = default, 3), the frame the page sends (JPEG quality 0.8 = default, 0.6,
  WebP), the temporal filter off (steady 0; every other row runs it at the default 0.7), 320x240
  frames (the page's default size; every other row is 640x480) with and without the filter, two
  workers of 1 thread (`--concurrency 2 --threads 1`) one frame at a time, and with
  `--ws-pipeline 2`: two frames of the stream at once, one decoding or encoding while the other
  runs the network;
- the JPEG codec, in-process (no browser): Pillow (libjpeg-turbo) against simplejpeg (the same
  libjpeg-turbo, less copying; when installed), decode + encode of one 640x480 frame.

    python -m benchmarks --only webcam                    # ~4 min on 2 cores
    python -m benchmarks.bench_webcam --model my.onnx     # a new network, next to the shipped ones
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.bench_browser import CHROMIUM, CHROMIUM_ARGS
from benchmarks.bench_server import SHARED_CONTENT, _Server
from benchmarks.common import ROOT, machine_info, machine_line, markdown_table, update_section, write_json

STYLES = ("starry_night_tiny", "starry_night_slim", "great_wave_slim")
SIZE = (480, 640)  # H, W
CLIP_PHOTOS = 4
CLIP_FRAMES = 45  # per photo, at 30 FPS: 1.5 s each, 6 s a loop
WARMUP_FRAMES = 5
# The webcam setting the README recommends for a small CPU: two workers of one thread, two frames
# of a stream at once (one decoding or encoding while the other runs the network).
REALTIME_ARGS = ("--concurrency", "2", "--threads", "1", "--ws-pipeline", "2")
READ_JS = """() => ({frames: window.stylecast.framesDrawn, lat: window.stylecast.latencies.length,
    dropped: window.stylecast.dropped, fps: document.querySelector('#fps').textContent, bytes: window.stylecast.sentBytes,
    sent: window.stylecast.framesSent, camera: window.stylecast.cam ? window.stylecast.cam.frames : null,
    stages: {...window.stylecast.serverStages}, backend: document.querySelector('#backend').textContent})"""


def make_clip(folder: Path, fps: int = 30) -> Path:
    """A .y4m at 640x480 and `fps`: a slow pan + zoom over each of the first photos in turn (the
    same frames at any rate: a faster clip is the same video played faster)."""
    from stylecast.flicker import Motion, make_clip as frames_of
    from stylecast.y4m import write_y4m

    photos = sorted(SHARED_CONTENT.glob("*.jpg"))[:CLIP_PHOTOS] if SHARED_CONTENT.is_dir() else []
    if not photos:
        raise SystemExit(f"bench_webcam: no photos in {SHARED_CONTENT} (a real clip is the point of this benchmark)")
    h, w = SIZE
    motion = Motion("pan + zoom", pan=(1.2, 0.4), zoom=1.002)

    def frames():
        for path in photos:
            img = Image.open(path).convert("RGB")
            scale = 1.3 * max(w / img.width, h / img.height)  # margin for the pan
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
            yield from frames_of(np.asarray(img, np.float32) / 255.0, motion, frames=CLIP_FRAMES, size=SIZE).frames

    path = folder / f"clip{fps}.y4m"
    write_y4m(path, frames(), fps=fps)
    return path


def _row(
    browser,
    url: str,
    style: str,
    seconds: float,
    *,
    on_device: bool = False,
    inflight: int | None = None,
    frame: dict | None = None,
    steady: float | None = None,
    resolution: str = "640x480",
) -> dict:
    context = browser.new_context()
    context.grant_permissions(["camera"], origin=url.rstrip("/"))
    init = []
    if inflight:
        init.append(f"self.STYLECAST_INFLIGHT = {inflight};")
    if frame:
        init.append(f"self.STYLECAST_FRAME = {{type: '{frame['type']}', quality: {frame['quality']}}};")
    if on_device:
        init.append("self.STYLECAST_THREADS = 1;")
    if init:
        context.add_init_script(" ".join(init))
    page = context.new_page()
    try:
        page.goto(url)
        page.wait_for_function("() => window.stylecast.serverReady && !document.querySelector('#style').disabled", timeout=120_000)
        page.select_option("#style", style)
        page.click("#tab-webcam")
        page.select_option("#resolution", resolution)
        page.uncheck("#mirror")  # a mirror costs a canvas transform: measure the plain path
        if steady is not None:  # the temporal filter's weight (default 0.7; 0 = off)
            page.eval_on_selector("#steady", f"el => {{ el.value = {round(steady * 100)}; el.dispatchEvent(new Event('input')); }}")
        if on_device:
            page.check("#on-device")
            page.wait_for_function("() => document.querySelector('#backend').textContent !== 'the server'", timeout=120_000)
        page.click("#cam-start")
        page.wait_for_function(f"() => window.stylecast.framesDrawn >= {WARMUP_FRAMES}", timeout=300_000)
        start = page.evaluate(READ_JS)
        t0 = time.perf_counter()
        page.wait_for_timeout(seconds * 1000)
        end = page.evaluate(READ_JS)
        elapsed = time.perf_counter() - t0
        lat = page.evaluate(f"window.stylecast.latencies.slice({start['lat']})")
        frames = end["frames"] - start["frames"]
        n = max(1, end["stages"].get("frames", 0) - start["stages"].get("frames", 0))
        stages = {k: round((end["stages"].get(k, 0) - start["stages"].get(k, 0)) / n, 1) for k in ("decode", "stylize", "steady", "encode")}
        return {
            "style": style,
            "fps": frames / elapsed,
            "page_fps": float(end["fps"]),
            "frames": frames,
            "p50_ms": float(np.percentile(lat, 50)) if lat else None,
            "p99_ms": float(np.percentile(lat, 99)) if lat else None,
            "dropped": end["dropped"] - start["dropped"],
            "kb_per_frame": (end["bytes"] - start["bytes"]) / max(1, end["sent"] - start["sent"]) / 1024,
            "sent_per_s": (end["sent"] - start["sent"]) / elapsed,
            # camera frames the page saw (requestVideoFrameCallback): it sends each one at most once,
            # so FPS cannot exceed this; below it, frames were skipped (the pipeline was busy)
            "camera_fps": (end["camera"] - start["camera"]) / elapsed if end.get("camera") is not None else None,
            "server_stages_ms": stages if not on_device else None,
            "backend": end["backend"],
        }
    finally:
        context.close()


def codec_lever(repeats: int) -> dict:
    """Decode + encode of one 640x480 frame (JPEG q80 in and out, as the stream does), median ms."""
    from stylecast.images import encode_image, open_image, pil_to_array

    photos = sorted(SHARED_CONTENT.glob("*.jpg"))
    img = Image.open(photos[0]).convert("RGB").resize((SIZE[1], SIZE[0]), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    data = buf.getvalue()
    arr = pil_to_array(img)

    def median_ms(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000)
        return round(float(np.median(times)), 2)

    out = {
        "pillow": {
            "decode": median_ms(lambda: pil_to_array(open_image(data, name="frame", max_pixels=1 << 24))),
            "encode": median_ms(lambda: encode_image(arr, "JPEG", quality=80)),
        }
    }
    try:
        import simplejpeg
    except ImportError:
        out["simplejpeg"] = None
        return out
    u8 = np.ascontiguousarray(np.clip(np.rint(arr * 255), 0, 255).astype(np.uint8))
    out["simplejpeg"] = {
        "decode": median_ms(lambda: simplejpeg.decode_jpeg(data, colorspace="RGB").astype(np.float32) / 255.0),
        "encode": median_ms(lambda: simplejpeg.encode_jpeg(np.clip(np.rint(arr * 255), 0, 255).astype(np.uint8), quality=80)),
        "decode_fast": median_ms(lambda: simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=True, fastupsample=True)),
        "encode_u8": median_ms(lambda: simplejpeg.encode_jpeg(u8, quality=80)),
        "version": simplejpeg.__version__,
    }
    return out


def format_quality(style: Path, clip: Path) -> dict:
    """What the frame format costs in quality: a frame of the clip sent as JPEG q0.8 / q0.6 / WebP
    q0.8 (Pillow's encoders standing in for Chromium's), stylized, against the same frame stylized
    from its lossless pixels: mean |difference| in 8-bit levels (and of the decoded input). Also
    simplejpeg's fast decode (fastdct, fastupsample) against Pillow's exact one."""
    from stylecast.images import open_image, pil_to_array
    from stylecast.inference.stylizer import Stylizer

    h, w = SIZE
    with open(clip, "rb") as f:
        f.readline()
        f.read(len(b"FRAME\n"))
        y = np.frombuffer(f.read(h * w), np.uint8).reshape(h, w).astype(np.float32)
        cb, cr = (np.frombuffer(f.read(h * w // 4), np.uint8).reshape(h // 2, w // 2).astype(np.float32).repeat(2, 0).repeat(2, 1) - 128 for _ in range(2))
    rgb = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], -1)
    frame = Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))
    stylizer = Stylizer(style, backend="ort", device="cpu")

    def levels(a: np.ndarray, b: np.ndarray) -> float:
        return round(float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean() * 255), 2)

    exact = pil_to_array(frame)
    reference = stylizer(exact)
    out: dict = {}
    for label, fmt, quality in (("JPEG q0.8", "JPEG", 80), ("JPEG q0.6", "JPEG", 60), ("WebP q0.8", "WEBP", 80)):
        buf = io.BytesIO()
        frame.save(buf, format=fmt, quality=quality)
        got = pil_to_array(open_image(buf.getvalue(), name="frame"))
        out[label] = {"kb": round(len(buf.getvalue()) / 1024, 1), "input_levels": levels(got, exact), "output_levels": levels(stylizer(got), reference)}
    try:
        import simplejpeg
    except ImportError:
        return out
    buf = io.BytesIO()
    frame.save(buf, format="JPEG", quality=80)
    pil = pil_to_array(open_image(buf.getvalue(), name="frame"))
    fast = simplejpeg.decode_jpeg(buf.getvalue(), colorspace="RGB", fastdct=True, fastupsample=True).astype(np.float32) / 255.0
    out["simplejpeg fast decode vs Pillow"] = {"input_levels": levels(fast, pil), "output_levels": levels(stylizer(fast), stylizer(pil))}
    return out


def run(quick: bool = True, models: list[Path] | None = None, note: str | None = None) -> dict:
    from playwright.sync_api import sync_playwright

    from stylecast.inference.backends import openvino_available

    if not CHROMIUM.exists():
        print("bench_webcam: skipped (no chromium)", file=sys.stderr)
        return {}
    seconds = 8.0 if quick else 20.0
    results: dict = {"machine": machine_info(), "quick": quick, "seconds_per_row": seconds, "rows": [], "levers": [], "note": note}
    with tempfile.TemporaryDirectory(prefix="bench-webcam-") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        clip = make_clip(tmp)
        results["clip"] = {"photos": CLIP_PHOTOS, "frames": CLIP_PHOTOS * CLIP_FRAMES, "fps": 30, "seconds_to_make": round(time.perf_counter() - t, 1)}
        folder = tmp / "models"
        folder.mkdir()
        for name in STYLES:
            shutil.copy(ROOT / "checkpoints" / f"{name}.onnx", folder)
        styles = list(STYLES)
        for path in models or []:
            shutil.copy(path, folder / path.name)
            styles.append(path.stem)
        results["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]
        backends = ["ort"] + (["openvino"] if openvino_available() else [])
        args = [*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={clip}"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
            best = None
            for backend in backends:
                server = _Server(folder, "--backend", backend)
                try:
                    info = {s["name"]: s for s in server.info["styles"]}
                    for style in styles:
                        row = _row(browser, server.url, style, seconds)
                        row.update(path=f"server, {backend} {info[style]['precision']}, {server.info['workers']}x{server.info['threads']} threads")
                        results["rows"].append(row)
                        _say(row)
                    # the levers run on the fastest style and backend: a lever that cannot lift the
                    # fastest network to the bar cannot lift a slower one
                    for row in results["rows"][-len(styles) :]:
                        if best is None or row["fps"] > best[2]:
                            best = (backend, row["style"], row["fps"])
                    if backend == backends[0]:
                        row = _row(browser, server.url, styles[0], seconds, on_device=True)
                        row.update(path="browser, onnxruntime-web WASM 1 thread")
                        results["rows"].append(row)
                        _say(row)
                finally:
                    server.stop()
            backend, lever_style = best[0], best[1]
            results["lever_backend"], results["lever_style"] = backend, lever_style
            server = _Server(folder, "--backend", backend)
            try:
                for label, kwargs in (
                    ("1 frame in flight", {"inflight": 1}),
                    ("3 frames in flight", {"inflight": 3}),
                    ("page sends JPEG q0.6", {"frame": {"type": "image/jpeg", "quality": 0.6}}),
                    ("page sends WebP q0.8", {"frame": {"type": "image/webp", "quality": 0.8}}),
                    ("steady 0: no temporal filter, every frame on its own", {"steady": 0.0}),
                    ("320x240 camera frames (the page's default size)", {"resolution": "320x240"}),
                    ("320x240 camera frames, steady 0", {"resolution": "320x240", "steady": 0.0}),
                ):
                    row = _row(browser, server.url, lever_style, seconds, **kwargs)
                    row.update(path=label)
                    results["levers"].append(row)
                    _say(row)
            finally:
                server.stop()
            # overlap: 2 workers of 1 thread; without the pipeline a stream still runs one frame at a
            # time (the thread count alone), with it two frames run at once (decode/encode overlap).
            # On every backend: one runtime's threads can lose to the other's when they share 2 cores
            # with the browser, so the best backend at 1x2 threads need not be the best at 2x1.
            for lever_backend in [backend] + [b for b in backends if b != backend]:
                for pipeline, rows in (
                    (1, ((2, "2 workers x 1 thread, one frame at a time"),)),
                    (
                        2,
                        ((2, "2 workers x 1 thread, --ws-pipeline 2 (frames overlap), 2 in flight"), (3, "2 workers x 1 thread, --ws-pipeline 2, 3 in flight")),
                    ),
                ):
                    server = _Server(folder, "--backend", lever_backend, "--concurrency", "2", "--threads", "1", "--ws-pipeline", str(pipeline))
                    try:
                        for inflight, label in rows:
                            row = _row(browser, server.url, lever_style, seconds, inflight=inflight)
                            row.update(path=f"{label}, {lever_backend}")
                            results["levers"].append(row)
                            _say(row)
                    finally:
                        server.stop()
            browser.close()
            # A 30 FPS camera caps the page at 30 (it sends each camera frame once): the fastest style
            # with the clip at 60 FPS, at the server's defaults and at REALTIME_ARGS, shows how many
            # frames a second the pipeline can take.
            fast_clip = make_clip(tmp, fps=60)
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={fast_clip}"], headless=True)
            results["capacity"] = []
            try:
                for args, label in (((), "the server's defaults"), (REALTIME_ARGS, " ".join(REALTIME_ARGS))):
                    server = _Server(folder, "--backend", backend, *args)
                    try:
                        row = _row(browser, server.url, lever_style, seconds)
                        row.update(path=f"camera at 60 FPS, {backend}, {label} ({server.info['workers']}x{server.info['threads']} threads)")
                        results["capacity"].append(row)
                        _say(row)
                    finally:
                        server.stop()
            finally:
                browser.close()
        results["codec"] = codec_lever(30 if quick else 200)
        results["format_quality"] = format_quality(folder / f"{styles[0]}.onnx", clip)
        results["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    write_json("webcam", results)
    _write_section(results)
    return results


def _say(row: dict) -> None:
    print(
        f"{row['style']} | {row['path']}: {row['fps']:.1f} FPS, p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, "
        f"dropped {row['dropped']}, stages {row['server_stages_ms']}",
        file=sys.stderr,
    )


def _cells(row: dict) -> list:
    st = row["server_stages_ms"]
    split = f"{st['decode']} / {st['stylize']} / {st.get('steady', 0)} / {st['encode']}" if st else "–"
    return [
        row["style"],
        row["path"],
        round(row["fps"], 1),
        round(row["camera_fps"], 1) if row.get("camera_fps") is not None else "–",
        row["page_fps"],
        _ms(row["p50_ms"]),
        _ms(row["p99_ms"]),
        row["dropped"],
        round(row["kb_per_frame"], 1) if row["kb_per_frame"] else "–",
        split,
    ]


def _ms(v):
    return "–" if v is None else round(v)


def _write_section(r: dict) -> None:
    head = ["style", "path", "FPS", "camera FPS", "page FPS", "p50 ms", "p99 ms", "dropped", "KB/frame sent", "server decode / stylize / steady / encode ms"]
    c = r["codec"]
    sj = c.get("simplejpeg")
    codec = f"Pillow {c['pillow']['decode']} ms decode (to float) + {c['pillow']['encode']} ms encode (from float); " + (
        f"simplejpeg {sj['version']} {sj['decode']} + {sj['encode']} ms the same way, {sj['decode_fast']} ms decode with "
        f"fastdct/fastupsample, {sj['encode_u8']} ms encode from uint8"
        if sj
        else "simplejpeg not installed"
    )

    # The bar: 30 FPS end to end with p99 <= 100 ms. The clip plays at 30 FPS and the page sends each
    # camera frame once, so a row meets it by stylizing every frame the camera gave (>= 99 %, and
    # the camera did give ~30); the 60 FPS rows say how much headroom is left beyond that.
    def keeps_up(row):
        cam = row.get("camera_fps") or 0
        return cam >= 29.5 and row["fps"] >= 0.99 * cam and (row["p99_ms"] or 1e9) <= 100

    # The bar is for 640x480; the 320x240 rows (the page's default size) are said apart.
    small = [row for row in r["levers"] if "320x240" in row["path"]]
    served = [row for row in r["rows"] + r["levers"] if row not in small]
    meeting = [row for row in served if keeps_up(row)]
    best = min(meeting, key=lambda row: row["p99_ms"]) if meeting else max(served, key=lambda row: row["fps"])
    caps = r.get("capacity") or []
    cap = max(caps, key=lambda row: row["fps"]) if caps else None
    verdict = (
        f"Best row with the 30 FPS camera: {best['fps']:.1f} FPS of {best.get('camera_fps') or 0:.1f} camera frames a second, "
        f"p50 {_ms(best['p50_ms'])} ms, p99 {_ms(best['p99_ms'])} ms ({best['style']}, {best['path']}): "
        + ("**meets**" if meeting else "**does not meet**")
        + f" the issue's bar of 30 FPS end to end with p99 <= 100 ms at 640x480 ({len(meeting)} of {len(served)} rows do)."
        + "".join(
            f" At 320x240 ({row['path']}): {row['fps']:.1f} FPS of {row.get('camera_fps') or 0:.1f}, p99 {_ms(row['p99_ms'])} ms"
            + (" (meets it)." if keeps_up(row) else " (does not meet it).")
            for row in small
        )
        + (
            f" Headroom: offered 60 camera frames a second, the best setting ({cap['path'].split(', ', 1)[1]}) drew {cap['fps']:.1f} FPS, "
            f"p99 {_ms(cap['p99_ms'])} ms (the faster clip also costs the browser more)."
            if cap
            else ""
        )
    )
    quality = "; ".join(
        f"{k}: " + (f"{v['kb']} KB, " if "kb" in v else "") + f"input {v['input_levels']}, output {v['output_levels']}"
        for k, v in r.get("format_quality", {}).items()
    )
    top = max((row for row in served if row["server_stages_ms"]), key=lambda row: row["fps"])
    st = top["server_stages_ms"]
    steady = st.get("steady", 0)
    total = st["decode"] + st["stylize"] + steady + st["encode"]
    share = (
        f"In the fastest server row ({top['path']}) a frame cost the server {st['decode']} ms decode + {st['stylize']} ms "
        f"network + {steady} ms temporal filter + {st['encode']} ms encode: the network is {100 * st['stylize'] / total:.0f} % "
        f"of it and the filter {100 * steady / total:.0f} %, so a faster JPEG codec can win at most "
        f"{100 * (st['decode'] + st['encode']) / total:.0f} % here."
    )
    body = f"""{machine_line(r["machine"])} · headless Chromium

`python -m benchmarks --only webcam` (`benchmarks/bench_webcam.py`; `python -m benchmarks.bench_webcam --model
PATH` adds a network): the webcam page at 640x480 (two lever rows at 320x240), with the temporal filter at
its default (steady 0.7) unless a row says steady 0, Chromium's fake camera playing a real clip (a slow
pan and zoom across {r["clip"]["photos"]} photos of `../shared/data/content`, 30 FPS, made at run time in a temp
folder). Each row {r["seconds_per_row"]:g} s after {WARMUP_FRAMES} frames. FPS: frames drawn on the page's canvas per
second (page FPS: the page's own 3-s readout at the end); latency: capture (before the page's JPEG
encode) to drawn, per frame; dropped: frames the server answered "dropped". The camera frame, the
page, the browser and the server all share the same 2 cores. Load average (1/5/15 min) before {r["loadavg_before"]}, after
{r["loadavg_after"]}{"; " + r["note"] if r.get("note") else ""}. Camera FPS: new camera frames the page saw per second
(requestVideoFrameCallback); the page sends each at most once.

{markdown_table(head, [_cells(row) for row in r["rows"]])}

Levers that are not a new network ({r.get("lever_style", r["levers"][0]["style"])}, the fastest style, server on {r["lever_backend"]}; compare with its row above):

{markdown_table(head, [_cells(row) for row in r["levers"]])}

Capacity (the page sends each camera frame once, so a 30 FPS camera caps every row above at 30):

{markdown_table(head, [_cells(row) for row in r["capacity"]]) if r.get("capacity") else "not measured"}

JPEG codec, one 640x480 frame in-process (median): {codec}.

What the frame format costs in quality ({r["levers"][0]["style"]}, a frame of the clip; mean |difference| in 8-bit levels
from the lossless frame, of the decoded input and of the stylized output; Pillow's encoders standing in for Chromium's):
{quality}.

{share}

{verdict}
"""
    update_section("webcam", "Webcam page at 640x480: real clip, end to end, and the cheap levers", body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_webcam", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", type=Path, default=[], help="an extra .onnx network to measure (repeatable)")
    parser.add_argument("--full", action="store_true", help="20 s rows instead of 8 s")
    parser.add_argument("--note", help="what else the machine was doing, for the BENCHMARKS.md section")
    a = parser.parse_args()
    for m in a.model:
        if not m.is_file():
            parser.error(f"--model {m}: no such file")
    run(quick=not a.full, models=a.model, note=a.note)
