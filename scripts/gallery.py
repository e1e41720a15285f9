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
import json
import sys
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylecast.inference.stylizer import Stylizer  # noqa: E402
from model_card import PAINTINGS, net_kind  # noqa: E402  (scripts/, this file's folder)
from stylecast.figures import row, stack  # noqa: E402
from stylecast.images import load_image  # noqa: E402

PHOTO = resources.files("stylecast") / "samples" / "chelsea.jpg"


def gallery(size: int, per_row: int) -> tuple[Path, list[dict], list[Path]]:
    photo = load_image(PHOTO, size)
    panels, credits, multi = [(photo, "photo")], [], []
    for model in sorted((ROOT / "checkpoints").glob("*.onnx")):
        stylizer = Stylizer(model, backend="ort", device="cpu")
        credits.append(stylizer.metadata)
        if stylizer.styles:  # a multi-style model gets a figure of its own (mixes included)
            multi.append(model)
            continue
        panels.append((stylizer(photo), model.stem))
    rows = [row(panels[i : i + per_row]) for i in range(0, len(panels), per_row)]
    out = ROOT / "docs" / "figures" / "gallery.jpg"
    out.parent.mkdir(parents=True, exist_ok=True)
    stack(rows).save(out, quality=88)
    return out, credits, multi


def mixes_of(names: list[str], pairs: list[tuple[str, str]]) -> list[tuple[dict[str, float], str]]:
    """Each pair as 100/0, 75/25, 50/50, 25/75, 0/100 mixes of the two styles (Dumoulin et al.:
    mixing styles = mixing their γ, β), labelled in the -s grammar."""
    out = []
    for a, b in pairs:
        if a not in names or b not in names:
            raise SystemExit(f"--mix {a},{b}: the model's styles are {', '.join(names)}")
        for w in (1.0, 0.75, 0.5, 0.25, 0.0):
            label = a if w == 1 else b if w == 0 else f"{a}:{w:g},{b}:{1 - w:g}"
            out.append(({a: w, b: 1 - w}, label))
    return out


def multi_style_figure(model: Path, size: int, per_row: int, pairs: list[tuple[str, str]]) -> Path:
    """docs/figures/<model>.jpg: the photo in each style of a multi-style model, then rows of mixes."""
    photo = load_image(PHOTO, size)
    stylizer = Stylizer(model, backend="ort", device="cpu")
    panels = [(photo, "photo")] + [(stylizer(photo, style_weights={n: 1.0}), n) for n in stylizer.style_names]
    rows = [row(panels[i : i + per_row]) for i in range(0, len(panels), per_row)]
    mixes = mixes_of(stylizer.style_names, pairs)
    rows += [row([(stylizer(photo, style_weights=w), label) for w, label in mixes[i : i + 5]]) for i in range(0, len(mixes), 5)]
    out = ROOT / "docs" / "figures" / f"{model.stem}.jpg"
    stack(rows).save(out, quality=88)
    return out


MARKER = "<!-- made by scripts/gallery.py -->"


def readme_rows(credits: list[dict]) -> list[str]:
    rows = []
    for meta in credits:
        stem = meta["style_image"].rsplit(".", 1)[0]
        net = {
            "full": "full (Johnson)",
            "tiny": "tiny (⚡ real-time, 640×480)",
            "tiny_fullres": "tiny + full-res head (⚡ real-time)",
            "slim": "slim (320×240 on a CPU)",
        }[net_kind(meta)]
        name = meta["style_name"]
        painting = meta["style_image"]
        if meta.get("styles"):
            names = [s["name"] for s in json.loads(meta["styles"])]
            rows.append(
                f"| `{name}/…` | {len(names)} paintings in one network: {', '.join(names)} | {net}, conditional IN | "
                f"{meta['recipe']}, {meta.get('base_steps') or meta['steps']} + {meta['steps']} (added style) | [{name}.md](checkpoints/{name}.md) |"
            )
            continue
        if stem in PAINTINGS:
            title, artist, year = PAINTINGS[stem][:3]
            painting = f"{title.replace('*', '').split(' (')[0]}, {artist}, {year}"
        steps = f"{meta['init_steps']} + {meta['steps']} (warm start)" if meta.get("init_steps") else meta["steps"]
        rows.append(f"| `{name}` | {painting} | {net} | {meta['recipe']}, {steps} | [{name}.md](checkpoints/{name}.md) |")
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
    p.add_argument(
        "--mix",
        action="append",
        default=[],
        metavar="A,B",
        help="a pair of styles of a multi-style model to show mixed (repeatable; default starry_night,the_scream and great_wave,composition_vii)",
    )
    a = p.parse_args(argv)
    out, credits, multi = gallery(a.size, a.per_row)
    update_readme(readme_rows(credits))
    pairs = [tuple(m.split(",", 1)) for m in a.mix] or [("starry_night", "the_scream"), ("great_wave", "composition_vii")]
    for model in multi:
        print(f"wrote {multi_style_figure(model, a.size, 5, pairs).relative_to(ROOT)}")
    print(f"wrote {out.relative_to(ROOT)} and the README's table of {len(credits)} models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
