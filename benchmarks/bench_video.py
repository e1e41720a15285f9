"""Video files end to end (`stylecast stylize clip.mp4`): frames/s of decode -> stylize -> encode,
one network run per frame (batch 1) against four frames per run (batch 4, the default), with the
temporal filter (the default, steady 0.7) and without it (`--steady 0`), side by side.

The clip is made here with PyAV: a 320x240 camera panning 4 px a frame across the bundled cat
photo (stylecast/samples/chelsea.jpg), 12 fps, with a sine-wave audio track, H.264. Each setting
runs twice, interleaved with the other batch size, and the faster run counts (the machine is
shared). "pipeline only" stylizes at strength 0, which skips the network: what decoding,
conversion and H.264 encoding cost by themselves.

    python -m benchmarks --only video     # or: python -m benchmarks.bench_video
"""

from __future__ import annotations

import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, machine_info, machine_line, markdown_table, update_section, write_json
from stylecast.images import load_image
from stylecast.inference.backends import openvino_available
from stylecast.inference.stylizer import Stylizer
from stylecast.inference.video import stylize_video

FRAME = (240, 320)
FPS = 12
STYLES = ("starry_night_slim", "starry_night")  # the real-time net and Johnson's full one


def make_clip(path: Path, frames: int) -> Path:
    import av

    photo = (load_image(ROOT / "stylecast" / "samples" / "chelsea.jpg", 480) * 255).astype(np.uint8)
    h, w = FRAME
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=FPS)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = c.add_stream("aac", rate=44100)
        a.layout = "mono"
        for i in range(frames):
            x = (4 * i) % (photo.shape[1] - w)
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(photo[:h, x : x + w]), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, FPS)
            c.mux(v.encode(f))
        c.mux(v.encode())
        n = 44100 * frames // FPS
        wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 44100)).astype(np.float32)
        for k in range(0, n, 1024):
            af = av.AudioFrame.from_ndarray(wave[None, k : k + 1024], format="flt", layout="mono")
            af.sample_rate, af.pts = 44100, k
            c.mux(a.encode(af))
        c.mux(a.encode())
    return path


def best_of_two(clip: Path, out: Path, stylizer: Stylizer, **options) -> dict:
    """Both batch sizes, interleaved (1, 4, 1, 4), the faster of each pair: frames/s end to end."""
    best: dict[int, float] = {}
    for batch in (1, 4, 1, 4):
        start = time.perf_counter()
        r = stylize_video(clip, out, stylizer, batch=batch, **options)
        best[batch] = max(best.get(batch, 0.0), r.frames / (time.perf_counter() - start))
    return best


def run(quick: bool = True) -> dict:
    frames = 32 if quick else 96
    backends = ["ort"] + (["openvino"] if openvino_available() else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip, out = make_clip(Path(tmp) / "pan.mp4", frames), Path(tmp) / "out.mp4"
        for style in STYLES:
            for backend in backends:
                s = Stylizer(ROOT / "checkpoints" / f"{style}.onnx", backend=backend, device="cpu")
                label = f"{s.backend} {s.precision}"
                fps = best_of_two(clip, out, s)
                alone = best_of_two(clip, out, s, temporal=None)
                rows.append({"style": style, "runtime": label, "batch1": fps[1], "batch4": fps[4], "batch4_no_filter": alone[4]})
                print(f"  {style} {label}: batch 1 {fps[1]:.2f}, batch 4 {fps[4]:.2f}, without the filter {alone[4]:.2f} frames/s", file=sys.stderr)
        s = Stylizer(ROOT / "checkpoints" / f"{STYLES[0]}.onnx", backend="ort", device="cpu")
        pipeline = best_of_two(clip, out, s, strength=0.0)
        alone = best_of_two(clip, out, s, strength=0.0, temporal=None)
        rows.append({"style": "pipeline only (strength 0)", "runtime": "-", "batch1": pipeline[1], "batch4": pipeline[4], "batch4_no_filter": alone[4]})
    info = machine_info()
    payload = {"machine": info, "frames": frames, "frame": list(FRAME), "fps": FPS, "rows": rows, "quick": quick}
    write_json("video", payload)
    table = markdown_table(
        ["style", "runtime", "batch 1 (frames/s)", "batch 4 (frames/s)", "batch 4 / batch 1", "batch 4 without the filter", "with / without"],
        [
            [r["style"], r["runtime"], r["batch1"], r["batch4"], r["batch4"] / r["batch1"], r["batch4_no_filter"], r["batch4"] / r["batch4_no_filter"]]
            for r in rows
        ],
    )
    update_section(
        "video",
        "Video files: frames/s end to end, batch 1 vs 4 (`stylecast stylize clip.mp4`)",
        f"""
{machine_line(info)}

A {frames}-frame 320x240 clip at {FPS} fps with AAC audio (a pan across the bundled cat photo),
decoded, stylized, passed through the temporal filter (default steady 0.7; "without": `--steady 0`)
and encoded to H.264 (CRF 18) by `stylize_video`, audio copied; the faster of two interleaved runs
per setting. `python -m benchmarks --only video`.

{table}
""",
    )
    return payload


if __name__ == "__main__":
    run(quick="--full" not in sys.argv)
