"""Make the README's pictures for "DeepDream, inversion and feature visualization".

    python scripts/readme_figures.py                 # all three figures (tens of minutes on 2 cores)
    python scripts/readme_figures.py --only dream    # the DeepDream layer sweep only

Writes docs/figures/dream_layers.jpg (a row: the photo, then DeepDream at low to high layers),
docs/figures/inversion_layers.jpg (the photo, then reconstructions from relu1_1 .. relu5_1),
docs/figures/visualize_channels.jpg (activation maximization of a few channels), and
docs/figures/figures.json with the settings, timings and measured numbers the README quotes.

The photo is stylecast/samples/chelsea.jpg: "Chelsea the cat" by Stefan van der Walt, CC0, from the
scikit-image wheel on PyPI (see stylecast/samples/SOURCES.md), so derived images may be committed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from stylecast.losses.vgg import load_vgg
from stylecast.optimization.deepdream import dream
from stylecast.optimization.inversion import invert
from stylecast.optimization.visualize import visualize
from stylecast.figures import row
from stylecast.images import load_image

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "figures"
PHOTO = resources.files("stylecast") / "samples" / "chelsea.jpg"
DREAM_LAYERS = ("relu2_2", "relu3_3", "relu4_2", "relu5_2")
INVERT_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CHANNELS = (("relu3_1", 12), ("relu4_1", 0), ("relu4_1", 97), ("relu5_1", 7))


def high_frequency_share(image: np.ndarray) -> float:
    """Share of the grey image's spectral energy (mean removed) above half the Nyquist frequency."""
    grey = image.mean(axis=2)
    spec = np.abs(np.fft.fft2(grey - grey.mean())) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(grey.shape[0]), np.fft.fftfreq(grey.shape[1]), indexing="ij")
    return float(spec[np.hypot(fy, fx) > 0.25].sum() / spec.sum())


def conditions() -> dict:
    """Threads and load while a figure was made: timings on a shared 2-core machine need both."""
    return {"threads": torch.get_num_threads(), "load_average_1min": round(os.getloadavg()[0], 1)}


def make_dream(vgg, size: int, bf16: bool) -> dict:
    photo = load_image(PHOTO, size)
    panels, rows = [(photo, "photo")], []
    for layer in DREAM_LAYERS:
        t = time.perf_counter()
        r = dream(photo, layer=layer, vgg=vgg, bf16=bf16, seed=0, progress=True)
        seconds = time.perf_counter() - t
        print(f"dream {layer}: norm x{r.norm_ratio:.2f}, {seconds:.0f} s", file=sys.stderr)
        rows.append({"layer": layer, "norm_ratio": round(r.norm_ratio, 3), "seconds": round(seconds, 1)})
        panels.append((r.image, layer))
    row(panels).save(OUT / "dream_layers.jpg", quality=88)
    h, w = photo.shape[:2]
    return {"size": [w, h], "octaves": 4, "octave_scale": 1.4, "iterations_per_octave": 10, "step": 1.5, "jitter": 32, "bf16": bf16, "layers": rows}


def make_inversion(vgg, size: int, iterations: int, bf16: bool) -> dict:
    photo = load_image(PHOTO, size)
    panels, rows = [(photo, "photo")], []
    for layer in INVERT_LAYERS:
        t = time.perf_counter()
        r = invert(photo, layer=layer, size=None, iterations=iterations, vgg=vgg, bf16=bf16, seed=0, progress=True)
        seconds = time.perf_counter() - t
        print(f"invert {layer}: PSNR {r.psnr:.1f} dB, {seconds:.0f} s", file=sys.stderr)
        rows.append({"layer": layer, "psnr_db": round(r.psnr, 2), "seconds": round(seconds, 1)})
        panels.append((r.image, f"{layer} {r.psnr:.1f} dB"))
    row(panels).save(OUT / "inversion_layers.jpg", quality=88)
    h, w = photo.shape[:2]
    return {"size": [w, h], "iterations": iterations, "optimizer": "lbfgs", "bf16": bf16, "layers": rows}


def make_visualization(vgg, size: int, iterations: int, bf16: bool) -> dict:
    panels, rows = [], []
    for layer, channel in CHANNELS:
        t = time.perf_counter()
        r = visualize(layer=layer, channel=channel, size=size, iterations=iterations, vgg=vgg, bf16=bf16, seed=0, progress=True)
        seconds = time.perf_counter() - t
        print(f"visualize {layer}:{channel}: {r.activation_start:.1f} -> {r.activation:.1f}, {seconds:.0f} s", file=sys.stderr)
        rows.append(
            {
                "layer": layer,
                "channel": channel,
                "activation_start": round(r.activation_start, 2),
                "activation": round(r.activation, 2),
                "seconds": round(seconds, 1),
            }
        )
        panels.append((r.image, f"{layer}:{channel}"))
    # the same channel the naive way (pixels, no transforms), for contrast
    layer, channel = CHANNELS[1]
    t = time.perf_counter()
    r = visualize(
        layer=layer, channel=channel, size=size, iterations=iterations, vgg=vgg, bf16=bf16, seed=0, progress=True, parameterization="pixel", transforms=False
    )
    rows.append(
        {
            "layer": layer,
            "channel": channel,
            "parameterization": "pixel",
            "transforms": False,
            "activation_start": round(r.activation_start, 2),
            "activation": round(r.activation, 2),
            "seconds": round(time.perf_counter() - t, 1),
        }
    )
    panels.append((r.image, f"{layer}:{channel} naive"))
    for entry, (image, _) in zip(rows, panels):
        entry["high_frequency_share"] = round(high_frequency_share(image), 3)
    row(panels).save(OUT / "visualize_channels.jpg", quality=88)
    return {"size": size, "iterations": iterations, "optimizer": "adam", "lr": 0.05, "bf16": bf16, "channels": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=("dream", "invert", "visualize"), action="append", help="make only these figures (repeatable)")
    p.add_argument("--dream-size", type=int, default=384)
    p.add_argument("--invert-size", type=int, default=192)
    p.add_argument("--invert-iterations", type=int, default=200)
    p.add_argument("--visualize-size", type=int, default=128)
    p.add_argument("--visualize-iterations", type=int, default=256)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (faster on CPUs with AMX)")
    args = p.parse_args(argv)
    only = set(args.only or ("dream", "invert", "visualize"))
    OUT.mkdir(parents=True, exist_ok=True)
    record_path = OUT / "figures.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    record["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__}
    record["photo"] = "stylecast/samples/chelsea.jpg (Stefan van der Walt, CC0, scikit-image)"
    vgg = load_vgg("caffe")
    if "dream" in only:
        record["dream"] = {**conditions(), **make_dream(vgg, args.dream_size, args.bf16)}
    if "invert" in only:
        record["inversion"] = {**conditions(), **make_inversion(vgg, args.invert_size, args.invert_iterations, args.bf16)}
    if "visualize" in only:
        record["visualize"] = {**conditions(), **make_visualization(vgg, args.visualize_size, args.visualize_iterations, args.bf16)}
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
