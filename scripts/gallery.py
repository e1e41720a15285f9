"""Make the README gallery: one photo stylized by every shipped style in checkpoints/.

    python scripts/gallery.py [--size 320] [--per-row 4]

Writes docs/figures/gallery.jpg (the photo first, then one panel per style, labelled with the
style's name) and rewrites the rows of the README's "Shipped styles" table (the lines after
`| style | painting |` up to the marker line) from each model's metadata. Torch-free: it runs the ONNX models
through the same stylizer as `stylecast stylize`.

The photo is stylecast/samples/chelsea.jpg: "Chelsea the cat" by Stefan van der Walt, CC0, from the
scikit-image wheel on PyPI (see stylecast/samples/SOURCES.md), so derived images may be committed.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylecast.inference.stylizer import Stylizer  # noqa: E402
from model_card import PAINTINGS, is_full_net  # noqa: E402  (scripts/, this file's folder)
from stylecast.figures import row, stack  # noqa: E402
from stylecast.images import load_image  # noqa: E402

PHOTO = resources.files("stylecast") / "samples" / "chelsea.jpg"


def gallery(size: int, per_row: int) -> tuple[Path, list[dict]]:
    photo = load_image(PHOTO, size)
    panels, credits = [(photo, "photo")], []
    for model in sorted((ROOT / "checkpoints").glob("*.onnx")):
        stylizer = Stylizer(model, backend="ort", device="cpu")
        panels.append((stylizer(photo), model.stem))
        credits.append(stylizer.metadata)
    rows = [row(panels[i : i + per_row]) for i in range(0, len(panels), per_row)]
    out = ROOT / "docs" / "figures" / "gallery.jpg"
    out.parent.mkdir(parents=True, exist_ok=True)
    stack(rows).save(out, quality=88)
    return out, credits


MARKER = "<!-- made by scripts/gallery.py -->"


def readme_rows(credits: list[dict]) -> list[str]:
    rows = []
    for meta in credits:
        stem = meta["style_image"].rsplit(".", 1)[0]
        net = "full (Johnson)" if is_full_net(meta) else "slim (real-time)"
        name = meta["style_name"]
        painting = meta["style_image"]
        if stem in PAINTINGS:
            title, artist, year = PAINTINGS[stem][:3]
            painting = f"{title.replace('*', '').split(' (')[0]}, {artist}, {year}"
        rows.append(f"| `{name}` | {painting} | {net} | {meta['recipe']}, {meta['steps']} | [{name}.md](checkpoints/{name}.md) |")
    return rows


def update_readme(rows: list[str]) -> None:
    path = ROOT / "README.md"
    lines = path.read_text().split("\n")
    head = next(i for i, line in enumerate(lines) if line.startswith("| style | painting |"))
    end = lines.index(MARKER)
    lines[head + 2 : end] = rows
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=320, help="longer side of each panel")
    p.add_argument("--per-row", type=int, default=4)
    a = p.parse_args(argv)
    out, credits = gallery(a.size, a.per_row)
    update_readme(readme_rows(credits))
    print(f"wrote {out.relative_to(ROOT)} and the README's table of {len(credits)} styles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
