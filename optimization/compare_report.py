"""Pictures and tables of a `stylecast compare` report, drawn with Pillow (no matplotlib needed)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from stylecast.images import array_to_pil

TILE = 192  # px, the longer side of each grid tile
LABEL_H = 18
PALETTE = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (0, 0, 0),
]


def _font():
    return ImageFont.load_default()


def _tile(arr: np.ndarray) -> Image.Image:
    img = array_to_pil(arr)
    img.thumbnail((TILE, TILE), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (TILE, TILE), (255, 255, 255))
    canvas.paste(img, ((TILE - img.width) // 2, (TILE - img.height) // 2))
    return canvas


def grid_columns(iterations: Sequence[int]) -> list[str]:
    return ["content", "style", "fast"] + [f"slow@{k}" for k in iterations]


def draw_grid(tiles, style: np.ndarray, iterations: Sequence[int]) -> Image.Image:
    """One row per content image: content | style | fast | slow@k ... (TILE px squares + labels)."""
    cols = grid_columns(iterations)
    grid = Image.new("RGB", (len(cols) * TILE, len(tiles) * (TILE + LABEL_H)), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    style_tile = _tile(style)
    for r, (name, content, fast, slow) in enumerate(tiles):
        y = r * (TILE + LABEL_H)
        by_k = dict(slow)
        cells = [("content: " + name, content), ("style", None), ("fast (1 pass)", fast)]
        cells += [(f"slow @ {k} it", by_k.get(k)) for k in iterations]
        for c, (label, arr) in enumerate(cells):
            x = c * TILE
            if c == 1:
                grid.paste(style_tile, (x, y + LABEL_H))
            elif arr is not None:
                grid.paste(_tile(arr), (x, y + LABEL_H))
            draw.text((x + 4, y + 3), label[:30], fill=(0, 0, 0), font=_font())
    return grid


def draw_loss_plot(report: dict, size: tuple[int, int] = (900, 560)) -> Image.Image:
    """Total loss vs wall time, log-log: one curve per image for L-BFGS, one dot per image for the net."""
    w, h = size
    left, right, top, bottom = 80, 20, 40, 60
    img = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(img)
    font = _font()
    points = []
    for row in report["images"]:
        points += [(p["seconds"], p["total"]) for p in row["curve"] if p["seconds"] > 0 and p["total"] > 0]
        points.append((row["fast"]["seconds"], row["fast"]["losses"]["total"]))
    points = [(t, l) for t, l in points if t > 0 and l > 0 and math.isfinite(l)]
    if not points:
        d.text((left, top), "no data", fill=(0, 0, 0), font=font)
        return img
    tmin, tmax = min(p[0] for p in points), max(p[0] for p in points)
    lmin, lmax = min(p[1] for p in points), max(p[1] for p in points)
    lt0, lt1 = math.floor(math.log10(tmin)), math.ceil(math.log10(tmax))
    ll0, ll1 = math.floor(math.log10(lmin)), math.ceil(math.log10(lmax))
    lt1, ll1 = max(lt1, lt0 + 1), max(ll1, ll0 + 1)

    def xy(t, l):
        x = left + (math.log10(t) - lt0) / (lt1 - lt0) * (w - left - right)
        y = h - bottom - (math.log10(l) - ll0) / (ll1 - ll0) * (h - top - bottom)
        return x, y

    d.rectangle([left, top, w - right, h - bottom], outline=(0, 0, 0))
    for e in range(lt0, lt1 + 1):
        x, _ = xy(10.0**e, 10.0**ll0)
        d.line([x, top, x, h - bottom], fill=(225, 225, 225))
        d.text((x - 12, h - bottom + 6), f"1e{e}", fill=(0, 0, 0), font=font)
    for e in range(ll0, ll1 + 1):
        _, y = xy(10.0**lt0, 10.0**e)
        d.line([left, y, w - right, y], fill=(225, 225, 225))
        d.text((8, y - 6), f"1e{e}", fill=(0, 0, 0), font=font)
    d.text((w // 2 - 60, h - 24), "wall time (s), log scale", fill=(0, 0, 0), font=font)
    d.text((left, 12), "total loss vs time: lines = L-BFGS (Gatys), dots = feed-forward net", fill=(0, 0, 0), font=font)
    for i, row in enumerate(report["images"]):
        colour = PALETTE[i % len(PALETTE)]
        curve = [xy(p["seconds"], p["total"]) for p in row["curve"] if p["seconds"] > 0 and p["total"] > 0]
        if len(curve) > 1:
            d.line(curve, fill=colour, width=2)
        fx, fy = xy(row["fast"]["seconds"], row["fast"]["losses"]["total"])
        d.ellipse([fx - 5, fy - 5, fx + 5, fy + 5], fill=colour, outline=(0, 0, 0))
    return img


def _f(v, digits=3):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def markdown_report(report: dict) -> str:
    s, o, m = report["summary"], report["options"], report["model"]
    lines = [
        f"# Fast vs slow: {m['style_name']} ({m['file']})",
        "",
        f"Style image {report['style_image']}; {s['images']} image(s) at {o['size']} px (longer side); slow optimizer: "
        f"L-BFGS from {o['init']}, checkpoints {', '.join(map(str, o['iterations']))}; fast net on {m['backend']}. "
        f"Losses: the model's training losses ({', '.join(report['losses']['style_layers'])} style, "
        f"{', '.join(report['losses']['content_layers'])} content), scored on the saved 8-bit images.",
        "",
        f"Machine: {report['machine']['cpu']} ({report['machine']['cores']} cores), {report['machine']['date']}.",
        "",
        "## Summary",
        "",
        "| images | net ms/image | net total loss (mean) | L-BFGS s/iteration | iteration where L-BFGS reaches the net's loss (mean / median) | speed ratio at equal loss (mean) |",
        "|---|---|---|---|---|---|",
        f"| {s['images']} ({s['matched']} matched) | {s['mean_fast_seconds'] * 1000:.1f} | {_f(s['mean_fast_total'])} | "
        f"{_f(s['mean_slow_seconds_per_iteration'])} | {_f(s['mean_match_iteration'])} / {_f(s['median_match_iteration'])} | "
        f"{_f(s['mean_speedup_at_equal_loss'])}× |",
        "",
        "## Per image",
        "",
        "| image | net ms | net total | " + " | ".join(f"L-BFGS@{k} total" for k in o["iterations"]) + " | match iteration | speed ratio |",
        "|---|---|---|" + "---|" * len(o["iterations"]) + "---|---|",
    ]
    for r in report["images"]:
        by_k = {s_["iterations"]: s_ for s_ in r["slow"]}
        cells = [_f(by_k[k]["losses"]["total"]) if k in by_k else "—" for k in o["iterations"]]
        ratio = _f(r["speedup_at_equal_loss"]) + ("× (lower bound: not matched)" if r["speedup_is_lower_bound"] else "×")
        lines.append(
            f"| {r['name']} | {r['fast']['seconds'] * 1000:.1f} | {_f(r['fast']['losses']['total'])} | "
            + " | ".join(cells)
            + f" | {_f(r['match_iteration'])} | {ratio} |"
        )
    lines += ["", "![grid](grid.png)", "", "![loss vs time](loss_vs_time.png)", ""]
    return "\n".join(lines)
