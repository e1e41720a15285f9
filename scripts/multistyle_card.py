"""Write checkpoints/<name>.md for a multi-style model (Dumoulin et al. 2017), from measured sources only.

    python scripts/multistyle_card.py painters --run runs/painters8 --base-run runs/painters+great_wave \
        --scratch-run runs/great_wave_scratch [--photos ../shared/data/content] [--styles-dir ../shared/data/styles]

Every number comes from a file or is measured here:
- per style, the losses of the multi-style net and of the shipped single-style net of the same
  painting (checkpoints/<style>.onnx, when there is one) on the compare photos (held out of every
  recipe) at 256 px, scored with the model's own objective (the layers in its metadata) on the
  ONNX Runtime outputs — Dumoulin et al. report content +8.7 %, style −8.9 % against single nets;
- "a new style in minutes": the step at which the --base run's validation loss of the added style
  first reaches the scratch single-style run's final validation loss (same 4 held-out photos, same
  recipe), and the training time per step of each run from their logged throughput (img/s): the
  time to reach the same loss, side by side;
- wall times (wall_time.jsonl of each run), steps, parity (a fresh ORT-vs-torch check per style
  and for a mix against the final checkpoint).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from stylecast.inference.contract import INPUT_NAME, STYLE_WEIGHTS_NAME  # noqa: E402
from model_card import PAINTINGS, onnx_facts, parity_bound, training_precision, wall_time  # noqa: E402

COMPARE_PHOTOS = ("chelsea_cat.jpg", "brandenburg_gate.jpg", "dandelions.jpg")


def metrics_rows(run: Path) -> list[dict[str, str]]:
    rows = []
    for f in sorted(run.glob("logs/version_*/metrics.csv")):
        with open(f) as fh:
            rows += list(csv.DictReader(fh))
    if not rows:
        raise SystemExit(f"{run}: no logs/version_*/metrics.csv")
    return rows


def val_curve(run: Path, key: str) -> list[tuple[int, float]]:
    """[(step, value)] of a validation metric, steps counted from 1 (Lightning logs step - 1)."""
    return sorted({int(r["step"]) + 1: float(r[key]) for r in metrics_rows(run) if r.get(key)}.items())


def seconds_per_step(run: Path, batch: int) -> float:
    """Training time per step from the logged throughput (img/s, validation excluded)."""
    rates = [float(r["img/s"]) for r in metrics_rows(run) if r.get("img/s")]
    if not rates:
        raise SystemExit(f"{run}: no img/s in metrics.csv")
    return batch / float(np.median(rates))


def style_losses(model: Path, weights: dict[str, float] | None, photos: list[Path], style_image: Path, meta: dict, style_weight: float) -> dict[str, float]:
    """Mean content / style / total of a model's outputs on the photos at 256 px under `meta`'s objective."""
    import torch

    from stylecast.images import load_image
    from stylecast.inference.stylizer import Stylizer
    from stylecast.losses.images import load_tensor, to_tensor
    from stylecast.losses.perceptual import PerceptualLoss

    stylizer = Stylizer(model, backend="ort", device="cpu")
    if weights is not None:
        stylizer = stylizer.with_style(weights)
    loss = PerceptualLoss(
        meta["content_layers"],
        meta["style_layers"],
        content_weight=float(meta["content_weight"]),
        style_weight=style_weight,
        tv_weight=float(meta["tv_weight"]),
    )
    loss.set_style(load_tensor(style_image, int(meta.get("style_size") or 256)))
    sums = {"content": 0.0, "style": 0.0, "total": 0.0}
    for p in photos:
        photo = load_image(p, 256)
        # scored on the 8-bit image a user gets, as `stylecast compare` does
        out = np.round(np.clip(stylizer(photo), 0, 1) * 255) / 255
        with torch.no_grad():
            terms = loss(to_tensor(out.astype(np.float32)), to_tensor(photo.astype(np.float32)))
        for k in sums:
            sums[k] += float(terms[k]) / len(photos)
    return sums


def per_style_table(model: Path, meta: dict, styles: list[dict], photos: list[Path], styles_dir: Path) -> tuple[list[str], list[float], list[float]]:
    from stylecast.inference.stylizer import Stylizer

    lines = [
        "| style | painting | multi: content | multi: style | single-style net | single: content | single: style | content | style |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    dc, ds = [], []
    sw = float(meta["style_weight"])
    for s in styles:
        painting = styles_dir / s["painting"]
        multi = style_losses(model, {s["name"]: 1.0}, photos, painting, meta, sw * float(s["style_weight"]))
        single_path = ROOT / "checkpoints" / f"{s['name']}.onnx"
        stem = Path(s["painting"]).stem
        title = PAINTINGS[stem][0].replace("*", "").split(" (")[0] + ", " + PAINTINGS[stem][1] if stem in PAINTINGS else s["painting"]
        row = f"| `{s['name']}` | {title} | {multi['content']:.3g} | {multi['style']:.3g} |"
        if single_path.exists():
            smeta = Stylizer(single_path, backend="ort", device="cpu").metadata
            # the single net scored under the multi net's objective (same layers: both cpu-full)
            single = style_losses(single_path, None, photos, painting, meta, sw * float(s["style_weight"]))
            c, st = multi["content"] / single["content"] - 1, multi["style"] / single["style"] - 1
            dc.append(c)
            ds.append(st)
            row += f" `{s['name']}` ({smeta['recipe']}, {smeta['steps']} steps) | {single['content']:.3g} | {single['style']:.3g} | {c:+.1%} | {st:+.1%} |"
        else:
            row += " — | | | | |"
        lines.append(row)
    return lines, dc, ds


def base_measurement(base_run: Path, scratch_run: Path, style: str, batch: int, step_times: tuple[float, float] | None = None) -> dict:
    """step_times: (--base, scratch) seconds per step measured side by side; default: each run's
    logged throughput (which only compares if the two ran under the same load)."""
    scratch = val_curve(scratch_run, "val/total")
    target_step, target = scratch[-1]
    base = val_curve(base_run, f"val/total/{style}")
    reached = next(((s, v) for s, v in base if v <= target), None)
    t_base, t_scratch = step_times or (seconds_per_step(base_run, batch), seconds_per_step(scratch_run, batch))
    first_scratch = next(s for s, v in scratch if v <= target)
    out = {
        "target": target,
        "scratch_steps": first_scratch,
        "scratch_final_step": target_step,
        "scratch_s_per_step": t_scratch,
        "base_s_per_step": t_base,
        "base_curve": base,
        "scratch_curve": scratch,
    }
    if reached:
        out.update(base_steps=reached[0], base_value=reached[1], ratio=(reached[0] * t_base) / (first_scratch * t_scratch))
    return out


def replay_change(run: Path, base_run: Path, styles: list[dict]) -> list[str]:
    """What training the shared weights did to the base's styles: each one's validation total at the
    base run's last validation and at the --base run's last (same 4 held-out photos)."""
    lines = [
        "The base's styles, replayed while the shared weights trained: validation total (same 4 held-out photos) before and after",
        "",
        "| style | base run | after adding | change |",
        "|---|---|---|---|",
    ]
    changes = []
    for s in styles:
        key = f"val/total/{s['name']}"
        before, after = val_curve(run, key)[-1][1], val_curve(base_run, key)[-1][1]
        changes.append(after / before - 1)
        lines.append(f"| `{s['name']}` | {before:.4g} | {after:.4g} | {after / before - 1:+.1%} |")
    lines.append(f"| mean | | | {np.mean(changes):+.1%} |")
    return lines


def card(
    name: str,
    run: Path,
    base_run: Path | None,
    scratch_run: Path | None,
    photos_dir: Path,
    styles_dir: Path,
    mix: str | None,
    step_times: tuple[float, float] | None = None,
    step_times_note: str = "",
) -> str:
    from benchmarks.common import machine_info
    from stylecast.training.export import load_checkpoint, parity

    onnx_path = ROOT / "checkpoints" / f"{name}.onnx"
    f = onnx_facts(onnx_path)
    meta = f["meta"]
    styles = json.loads(meta["styles"])
    photos = [photos_dir / p for p in COMPARE_PHOTOS]
    m = machine_info()
    final_run = base_run or run
    steps = int(meta["steps"])
    ckpt = final_run / "checkpoints" / "last.ckpt"
    net, added_hp, _ = load_checkpoint(ckpt)
    _, base_hp, base_step = load_checkpoint(run / "checkpoints" / "last.ckpt")
    replayed = base_run is not None and added_hp.get("base_train") == "all"
    # the shipped run predates --model.base_shared_lr: its shared weights stepped at --model.lr (1e-4)
    shared_lr = float(added_hp.get("base_shared_lr") or added_hp.get("lr"))
    how = (
        f"the shared weights too (`--model.base_train all`, Adam at {shared_lr:g}; the base's γ, β fixed; the base's styles "
        f"replayed on {1 - float(added_hp.get('new_share', 1)):.0%} of the samples)"
        if replayed
        else "only the added style's γ, β (`--base`)"
    )
    par = parity(net.eval(), onnx_path, style_names=[s["name"] for s in styles])
    worst = max(par.values())
    table, dc, ds = per_style_table(onnx_path, meta, styles, photos, styles_dir)
    minutes, span, loads = wall_time(run)
    factors = ", ".join(f"{s['name']} {s['style_weight']:g}" for s in styles)
    per_style = sum(p.shape[-1] for p in net.style_parameters())  # γ and β tables: one row per style
    rows = [
        ("styles", f"{len(styles)}: " + ", ".join(f"`{s['name']}`" for s in styles)),
        (
            "network",
            f"`{meta['architecture']}`: conditional instance norm (Dumoulin et al. 2017), {f['params'] / 1e6:.2f} M parameters "
            f"({per_style:,} per style), {f['mb']:.1f} MB ONNX, inputs `{INPUT_NAME}` and `{STYLE_WEIGHTS_NAME}` (one weight per style: one-hot or a mix)",
        ),
        (
            "recipe",
            f"`training/configs/{meta['recipe']}.yaml` (crops {meta.get('image_size')}², style images at {meta.get('style_size')} px, content {meta['content_layers']}, "
            f"style {meta['style_layers']} ×{meta['style_weight']} × each style's factor ({factors}), TV ×{meta['tv_weight']}, {training_precision(run)}; on the CPU: no GPU was lent to this project)",
        ),
        (
            "steps",
            f"{base_step} for the {len(styles) - (1 if base_run else 0)} base styles"
            + (
                f" (warm-started from `{Path(str(base_hp['init_from'])).name}`, {base_hp.get('init_steps')} steps: its γ, β in every style's row)"
                if base_hp.get("init_from")
                else ""
            )
            + (f"; then {steps} steps adding `{styles[-1]['name']}` with `--base`, training {how}" if base_run else ""),
        ),
        (
            "wall time, hardware",
            f"{minutes:.0f} min for the base ({span}; load average at the end {loads})"
            + (f", {wall_time(base_run)[0]:.0f} min for the added style (load average at the end {wall_time(base_run)[2]})" if base_run else "")
            + f", on {m['cores']} CPU cores ({m['cpu']}, no GPU)",
        ),
        ("export parity", f"ORT vs torch, per style and for a mix at 256² and 480×640: max abs diff {worst:.1e} (bound {parity_bound(meta):.0e})"),
    ]
    if dc:
        rows.append(
            (
                "vs single-style nets (mean over the styles that have one)",
                f"content {np.mean(dc):+.1%}, style {np.mean(ds):+.1%} (Dumoulin et al.: content +8.7 %, style −8.9 %); per style below",
            )
        )
    lines = [f"# {name} ({len(styles)} styles in one network)", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += ["", f"## Per style, on {', '.join(COMPARE_PHOTOS)} at 256 px (photos no recipe saw; the model's objective; 8-bit outputs)", ""]
    lines += table
    if base_run and scratch_run:
        added = styles[-1]["name"]
        b = base_measurement(base_run, scratch_run, added, batch=4, step_times=step_times)
        lines += ["", f"## A new style from the base (`--base`): `{added}`", ""]
        lines.append(
            f"The single-style net trained from scratch with the same recipe reached a validation loss of {b['target']:.4g} "
            f"after {b['scratch_final_step']} steps (first at or below it: step {b['scratch_steps']}); at "
            f"{b['scratch_s_per_step']:.2f} s per training step that is {b['scratch_steps'] * b['scratch_s_per_step'] / 60:.1f} min of training."
        )
        what = "Training the new γ, β and the shared weights (the base's styles replayed)" if replayed else "Training only the new γ, β on the frozen base"
        if "base_steps" in b:
            lines.append(
                f"{what} reached {b['base_value']:.4g} at step {b['base_steps']}, at "
                f"{b['base_s_per_step']:.2f} s per step: {b['base_steps'] * b['base_s_per_step'] / 60:.1f} min, "
                f"**{b['ratio']:.2f}× the time** (target ≤ 0.2×). {step_times_note or 'Step times: each run’s median logged throughput (validation excluded).'}"
            )
        else:
            lines.append(
                f"{what} did **not** reach it within {b['base_curve'][-1][0]} steps (best {min(v for _, v in b['base_curve']):.4g}, "
                f"{min(v for _, v in b['base_curve']) / b['target'] - 1:+.1%}). {step_times_note}"
            )
        lines += [
            "",
            "Time to reach each new best validation loss of the `--base` run (training time: steps × each run's step time):",
            "",
            "| `--base` step | its val total | scratch: first step at or below it | time ratio `--base` / scratch |",
            "|---|---|---|---|",
        ]
        best = float("inf")
        for s, v in b["base_curve"]:
            if v >= best:  # a loss it had already reached (validation is noisy): reached earlier
                continue
            best = v
            first = next((st for st, sv in b["scratch_curve"] if sv <= v), None)
            ratio = f"{s * b['base_s_per_step'] / (first * b['scratch_s_per_step']):.2f}" if first else "—"
            lines.append(f"| {s} | {v:.4g} | {first if first else 'not within ' + str(b['scratch_final_step'])} | {ratio} |")
        if replayed:
            lines += ["", *replay_change(run, base_run, styles[:-1])]
    lines += [
        "",
        "Reproduce: `scripts/train_shipped.sh painters` (base, then `--base` for the added painting, then export);"
        f" `python scripts/multistyle_card.py {name} ...` (this card). Mix styles with `-s NAME:0.5,OTHER:0.5`" + (f", e.g. `{mix}`" if mix else "") + ".",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name")
    p.add_argument("--run", type=Path, required=True, help="the base run folder (all styles but the added one)")
    p.add_argument("--base-run", type=Path, help="the --base run that added a style")
    p.add_argument("--scratch-run", type=Path, help="a single-style run of the added painting from scratch, same recipe")
    p.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "content")
    p.add_argument("--styles-dir", type=Path, default=ROOT.parent / "shared" / "data" / "styles")
    p.add_argument("--mix", help="a mix to cite in the card")
    p.add_argument(
        "--step-times",
        type=float,
        nargs=2,
        metavar=("BASE_S", "SCRATCH_S"),
        help="seconds per step of a --base and a scratch run measured side by side (default: from the runs' logs)",
    )
    p.add_argument("--step-times-note", default="", help="how --step-times were measured (printed in the card)")
    a = p.parse_args()
    text = card(a.name, a.run, a.base_run, a.scratch_run, a.photos, a.styles_dir, a.mix, tuple(a.step_times) if a.step_times else None, a.step_times_note)
    out = ROOT / "checkpoints" / f"{a.name}.md"
    out.write_text(text)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
