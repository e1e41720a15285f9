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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylecast.figures import row, stack  # noqa: E402  (after the sys.path line)
from stylecast.images import load_image  # noqa: E402
from stylecast.inference.stylizer import resized  # noqa: E402

ITERATION = 100


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
    fast = [load_image(r["fast"]) for r in rows]
    photo = resized(load_image(a.content), max(fast[0].shape[:2]))  # the compare's size
    figure_rows = []
    for r, net in zip(rows, fast):
        matched = f"L-BFGS matches it at it. {r['match']}" if r["match"] else "L-BFGS never reached it"
        panels = [(photo, f"photo ({r['style']})"), (net, f"net, 1 pass: {matched}"), (load_image(r["slow"]), f"L-BFGS-B, {ITERATION} it. from {r['init']}")]
        figure_rows.append(row(panels))
        print(f"| {r['style']} | {r['match'] or '>100'} | {r['fast_total']:.3g} | {r['slow_total']:.3g} |")
    a.output.parent.mkdir(parents=True, exist_ok=True)
    stack(figure_rows).save(a.output, quality=88)
    print(f"wrote {a.output} ({len(rows)} styles, {rows[0]['photo']} at {rows[0]['size']} px)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
