"""Stroke scale: the size at which each shipped style looks like its painting (issue 13).

A feed-forward net paints its strokes at a fixed size in pixels: the size they had in the painting
at the scale the style loss saw it (the recipe's style_size, 256 px for every shipped net). A photo
stylized at S px therefore carries strokes S/256 times smaller, relative to the frame, than the
painting's. Measured, not assumed: each held-out photo is stylized at longer side S and scored
against the painting resized to the same longer side S, both seen whole, by the Gram distance of the
`gatys` objective (relu1_1..relu5_1, balanced: the optimizer's layers, not the relu1_2..relu4_3 the
nets trained on, so the score is not what training minimized). The size with the lowest mean
distance is where the style looks as intended. On the shipped nets that is 384 px, 1.5 x the style
image, for 6 of 9 (256 for the other 3, within 1-10 % at 384): `stylecast export` records 1.5 x
style_size as `native_size` (inference/contract.py NATIVE_SCALE) and `stylize` / `serve` scale
larger inputs down to it unless told another `--size`.

    python -m benchmarks --only scale                   # every single-style model in checkpoints/
    python -m benchmarks.bench_scale checkpoints/starry_night.onnx     # re-measure one: its row replaced, the others kept
    python -m benchmarks.bench_scale --figure           # docs/figures/stroke_scale.jpg
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, ROOT, machine_info, machine_line, markdown_table, update_section, write_json

SIZES = (128, 192, 256, 384, 512, 768)
PHOTOS = ("chelsea_cat.jpg", "brandenburg_gate.jpg", "dandelions.jpg")  # stylecast compare's held-out three
SHARED = ROOT.parent / "shared" / "data"


def style_distance(vgg, image: np.ndarray, painting_grams: dict, layers: dict[str, float]) -> float:
    """Gram distance (losses.functional.style_loss) of an HxWx3 image to the painting's targets."""
    import torch

    from stylecast.losses.functional import gram_matrix, style_loss
    from stylecast.losses.images import to_tensor

    with torch.no_grad():
        feats = vgg(to_tensor(image), list(layers))
        return float(style_loss({n: gram_matrix(f) for n, f in feats.items()}, painting_grams, layers))


def measure(model: Path, sizes: tuple[int, ...], photos: list[Path], vgg, layers: dict[str, float], styles_dir: Path) -> dict:
    """{size: mean distance over the photos} of one model, and its minimum."""
    import torch

    from stylecast.images import load_image
    from stylecast.inference.stylizer import Stylizer, resized
    from stylecast.losses.functional import gram_matrix
    from stylecast.losses.images import to_tensor

    stylizer = Stylizer(model, backend="ort", device="cpu")
    meta = stylizer.metadata
    painting = load_image(styles_dir / Path(meta["style_image"]).name)
    images = [load_image(p) for p in photos]
    by_size = {}
    for s in sizes:
        with torch.no_grad():
            target = {n: gram_matrix(f) for n, f in vgg(to_tensor(resized(painting, s)), list(layers)).items()}
        by_size[s] = float(np.mean([style_distance(vgg, stylizer(img, size=s), target, layers) for img in images]))
    best = min(by_size, key=by_size.get)
    return {
        "model": model.stem,
        "style_size": int(meta.get("style_size") or 0),
        "image_size": int(meta.get("image_size") or 0),
        "distance": {str(k): v for k, v in by_size.items()},
        "best_size": best,
    }


def run(quick: bool = True, models: list[Path] | None = None, sizes: tuple[int, ...] = SIZES) -> dict:
    from tqdm import tqdm

    from stylecast.inference.stylizer import Stylizer
    from stylecast.losses.objectives import OBJECTIVES
    from stylecast.losses.perceptual import parse_layers
    from stylecast.losses.vgg import load_vgg

    named = models is not None
    if models is None:  # single-style models only: a multi-style file has no one painting
        models = [m for m in sorted((ROOT / "checkpoints").glob("*.onnx")) if not Stylizer(m, backend="ort").styles]
    photos = [SHARED / "content" / p for p in PHOTOS]
    vgg = load_vgg().eval()
    layers = parse_layers(OBJECTIVES["gatys"].style_layers)
    rows = [measure(m, sizes, photos, vgg, layers, SHARED / "styles") for m in tqdm(models, desc="scale", unit="model")]
    info = machine_info()
    earlier = RESULTS / "scale.json"
    if named and earlier.exists():  # named models replace their rows; the others' stay (same sizes only)
        old = json.loads(earlier.read_text())
        if old["sizes"] == list(sizes):
            mine = {r["model"] for r in rows}
            rows = sorted([r for r in old["models"] if r["model"] not in mine] + rows, key=lambda r: r["model"])
    payload = {"machine": info, "sizes": list(sizes), "photos": list(PHOTOS), "layers": OBJECTIVES["gatys"].style_layers, "models": rows}
    write_json("scale", payload)
    write_section(payload)
    return payload


def write_section(payload: dict) -> None:
    """BENCHMARKS.md's section from a run's payload (also: the JSON in benchmarks/results)."""
    sizes, rows = payload["sizes"], payload["models"]
    header = ["model", "crops", "style image", *[f"{s} px" for s in sizes], "closest"]
    table = [
        [
            r["model"],
            f"{r['image_size']}²",
            f"{r['style_size']} px",
            *[f"{r['distance'][str(s)] / r['distance'][str(r['best_size'])]:.2f}" for s in sizes],
            f"**{r['best_size']}**",
        ]
        for r in rows
    ]
    body = (
        f"{machine_line(payload['machine'])}\n\n"
        "Each photo (the compare three) stylized at longer side S and scored against the painting resized to the same S, "
        "both seen whole: Gram distance on relu1_1..relu5_1 with the `gatys` objective's weights (not the layers the nets "
        "trained on). Each row is divided by its lowest value (1.00 = the size at which the output looks most like the "
        "painting; `python -m benchmarks --only scale`). `stylecast export` writes 1.5 x the style image's size as "
        "`native_size` (384 px here), the size `stylize` and `serve` scale larger inputs down to by default.\n\n" + markdown_table(header, table)
    )
    update_section("scale", "Stroke scale: the size at which a style looks like its painting", body)
    print(markdown_table(header, table))


def figure(models: tuple[str, ...] = ("the_scream", "starry_night"), sizes: tuple[int, ...] = (192, 384, 768), shown: int = 384) -> Path:
    """docs/figures/stroke_scale.jpg: the bundled cat stylized at each size, every panel shown at
    `shown` px, one row per model (the paintings are not drawn: their files are not committed)."""
    from importlib import resources

    from stylecast.figures import row, stack
    from stylecast.images import load_image
    from stylecast.inference.stylizer import Stylizer, resized

    photo = load_image(resources.files("stylecast") / "samples" / "chelsea.jpg")
    rows = []
    for name in models:
        stylizer = Stylizer(ROOT / "checkpoints" / f"{name}.onnx", backend="ort")
        rows.append(row([(resized(stylizer(photo, size=s), shown), f"{name} at {s} px, shown at {shown}") for s in sizes]))
    out = ROOT / "docs" / "figures" / "stroke_scale.jpg"
    stack(rows).save(out, quality=88)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", type=Path, help="ONNX models (default: every single-style model in checkpoints/)")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="longer sides to measure, comma-separated")
    p.add_argument("--figure", action="store_true", help="only write docs/figures/stroke_scale.jpg (the cat at 192, 384, 768 px)")
    a = p.parse_args(argv)
    if a.figure:
        print(f"wrote {figure()}")
        return 0
    run(models=a.models or None, sizes=tuple(int(s) for s in a.sizes.split(",")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
