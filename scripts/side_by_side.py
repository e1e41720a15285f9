"""README figure: photo | the net | L-BFGS-B at 100 iterations, one row per shipped style.

    python scripts/side_by_side.py runs/compare/sbs_starry_night runs/compare/sbs_starry_night_slim ...

Each argument is a `stylecast compare` folder of one style, run on the same photo at the same size
with 100 among its --iterations (the slim nets can `--reuse` the full net's optimizer run: same
painting, same objective). The optimizer minimizes the net's own training losses, so each row is
the fast pass next to the quality bar of the same objective; the label gives the iteration where
the optimizer reached the net's loss. The painting itself is not drawn: the style images are not
committed. Writes docs/figures/side_by_side.jpg and prints one Markdown row per style.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
TILE = 256
LABEL_H = 18
ITERATION = 100


def _tile(path: Path, shape: tuple[int, int]) -> Image.Image:
    """The image fitted into a (width, height) cell, centred on white."""
    img = Image.open(path).convert("RGB")
    img.thumbnail(shape, Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", shape, (255, 255, 255))
    canvas.paste(img, ((shape[0] - img.width) // 2, (shape[1] - img.height) // 2))
    return canvas


def row_of(folder: Path) -> dict:
    report = json.loads((folder / "report.json").read_text())
    if len(report["images"]) != 1:
        raise SystemExit(f"{folder}: one photo per report, found {len(report['images'])}")
    image = report["images"][0]
    slow = folder / f"{Path(image['name']).stem}.slow{ITERATION:04d}.png"
    if not slow.is_file():
        raise SystemExit(f"{folder}: no L-BFGS image at iteration {ITERATION} (run compare with --iterations ...,{ITERATION})")
    return {
        "style": report["model"].get("style_name") or Path(report["model"]["file"]).stem,
        "photo": image["name"],
        "size": report["options"]["size"],
        "init": report["options"]["init"],
        "fast": folder / image["fast"]["file"],
        "slow": slow,
        "match": image.get("match_iteration"),
        "fast_total": image["fast"]["losses"]["total"],
        "slow_total": next(c["total"] for c in image["curve"] if c["iteration"] == ITERATION),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", type=Path, nargs="+")
    p.add_argument("--content", type=Path, default=ROOT / "stylecast" / "samples" / "chelsea.jpg", help="the photo, for its column (default: the bundled cat)")
    p.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "figures" / "side_by_side.jpg")
    a = p.parse_args(argv)
    rows = [row_of(f) for f in a.folders]
    if len({(r["photo"], r["size"], r["init"]) for r in rows}) != 1:
        raise SystemExit("every report must be of the same photo, size and --init")
    font = ImageFont.load_default()
    with Image.open(rows[0]["fast"]) as first:  # cells take the photo's aspect: no white bands
        w, h = first.size
    cell = (TILE, round(TILE * h / w)) if w >= h else (round(TILE * w / h), TILE)
    fig = Image.new("RGB", (3 * cell[0], len(rows) * (cell[1] + LABEL_H)), (255, 255, 255))
    draw = ImageDraw.Draw(fig)
    photo = _tile(a.content, cell)
    for i, r in enumerate(rows):
        y = i * (cell[1] + LABEL_H)
        matched = f"L-BFGS matches it at it. {r['match']}" if r["match"] else "L-BFGS never reached it"
        cells = [
            (f"photo ({r['style']})", photo),
            (f"net, 1 pass: {matched}", _tile(r["fast"], cell)),
            (f"L-BFGS-B, {ITERATION} it. from {r['init']}", _tile(r["slow"], cell)),
        ]
        for c, (label, tile) in enumerate(cells):
            fig.paste(tile, (c * cell[0], y + LABEL_H))
            draw.text((c * cell[0] + 4, y + 3), label[:42], fill=(0, 0, 0), font=font)
        print(f"| {r['style']} | {r['match'] or '>100'} | {r['fast_total']:.3g} | {r['slow_total']:.3g} |")
    a.output.parent.mkdir(parents=True, exist_ok=True)
    fig.save(a.output, quality=88)
    print(f"wrote {a.output} ({len(rows)} styles, {rows[0]['photo']} at {rows[0]['size']} px)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
