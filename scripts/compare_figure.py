"""README figures from a `stylecast compare` report: one photo's row of the grid, and the plot.

    python scripts/compare_figure.py runs/compare/great_wave_slim [--image chelsea_cat.jpg]

Writes docs/figures/compare_row.jpg (content | fast | slow@k ... for one image; the painting's
column is left out because the style images are not committed) and docs/figures/compare_plot.png
(loss vs time, every image). Pick a photo whose licence allows committing derived images:
chelsea_cat.jpg is scikit-image's CC0 "Chelsea the cat" (stylecast/samples/SOURCES.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylecast.optimization.compare_report import LABEL_H, TILE, grid_columns  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("report_dir", type=Path)
    p.add_argument("--image", default="chelsea_cat.jpg", help="which photo's row (default %(default)s)")
    a = p.parse_args(argv)
    report = json.loads((a.report_dir / "report.json").read_text())
    names = [r["name"] for r in report["images"]]
    if a.image not in names:
        raise SystemExit(f"{a.image} is not in {a.report_dir}/report.json ({', '.join(names)})")
    r = names.index(a.image)
    cols = grid_columns(report["options"]["iterations"])
    grid = Image.open(a.report_dir / "grid.png")
    keep = [i for i, c in enumerate(cols) if c != "style"]
    top = r * (TILE + LABEL_H)
    out = Image.new("RGB", (len(keep) * TILE, TILE + LABEL_H), (255, 255, 255))
    for j, i in enumerate(keep):
        out.paste(grid.crop((i * TILE, top, (i + 1) * TILE, top + TILE + LABEL_H)), (j * TILE, 0))
    figures = ROOT / "docs" / "figures"
    out.save(figures / "compare_row.jpg", quality=88)
    shutil.copyfile(a.report_dir / "loss_vs_time.png", figures / "compare_plot.png")
    print(f"wrote docs/figures/compare_row.jpg ({a.image}) and docs/figures/compare_plot.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
