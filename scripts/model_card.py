"""Write checkpoints/<name>.md, the model card of a shipped style, from measured sources only.

    python scripts/model_card.py NAME [--run runs/NAME] [--compare runs/compare/NAME/report.json]
        [--compare-content runs/compare/NAME_content/report.json]

Every number comes from a file: the ONNX model's metadata and weights, the run folder's
metrics.csv (validation losses) and wall_time.jsonl (written by scripts/train_shipped.sh), a fresh
torch-vs-ONNX Runtime parity check against the run's final checkpoint, and the `stylecast compare`
report. What a painting is and why it is public domain is the one hand-written table below (from
../shared/data/styles/SOURCES.md). Run it after scripts/train_shipped.sh and the compare.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylecast.inference.contract import parse_architecture  # noqa: E402  (after the sys.path line)
from stylecast.inference.temporal import TemporalSettings  # noqa: E402
from stylecast.paintings import PAINTINGS as _PAINTINGS  # noqa: E402

# file stem of the painting -> (title in Markdown italics, artist, year, medium, why it is public domain);
# the table itself is stylecast/paintings.py, which the server's style listing reads too
PAINTINGS = {stem: (f"*{p.title.split(' (')[0]}*" + (f" ({p.title.split(' (', 1)[1]}" if " (" in p.title else ""), *p[1:]) for stem, p in _PAINTINGS.items()}
# Hand-written: what a person sees (looked at the validation grids and the gallery), per model.
LOOKS = {
    "starry_night": "the painting's ultramarine and cobalt blues, bolder than the 128² recipe's net it replaced, with the "
    "painting's yellow on the light areas (the cat's nose and eyes, as the optimizer paints them) and short curved strokes "
    "over the whole photo, coarser than that net's hatching; the photos' objects stay recognizable.",
    "composition_vii": "a mosaic of small angular patches of orange, red, yellow, lilac and blue, finer and sharper than "
    "the 128² net it replaced, edges traced in dark blue and red like Kandinsky's canvas; objects stay recognizable (the "
    "cat's fur and eyes, a bat's wing, a koala, the palace's windows). Beside the optimizer at 100 iterations: the same "
    "palette and patch size, a little coarser. Style weight 0.4: its Gram matrices sit 2.5x farther from photos' "
    "than The Great Wave's (mean style loss 9.5e5 vs 3.8e5), so at 1 it would weigh like 2.5 on the others.",
    "the_scream": "the sky's orange and red over the photo, bolder than the 128² net it replaced, in long horizontal wavy "
    "strokes like the painting's sky, dark teal and blue-black in the shadows with diagonal hatching; objects stay "
    "recognizable (a bat, a koala, blackberries, the palace's windows, the cat's eyes and nose). Beside the optimizer at "
    "100 iterations: the same orange and strokes, coarser, and the cat's eyes stay the photo's green where L-BFGS paints "
    "them blue. The last 1200 steps changed the look only a little: the orange a shade bolder, the shadows darker.",
    "great_wave": "the print's Prussian blue and cream, its foam pattern of small scales filling skies and backgrounds "
    "and long curved crest strokes along edges (where the 128² net it replaced drew horizontal streaks); a photo's own "
    "colours give way (an orange palace turns cream and blue) but its objects stay recognizable (a bat, a koala, "
    "blackberries, the cat's eyes, nose and stripes). Beside the optimizer at 100 iterations: coarser, with the same "
    "blue-green eyes.",
    "great_wave_slim": "the painting's Prussian blue and cream palette and its crest-line texture over the whole photo; "
    "objects (the cat's eyes, nose and fur, a koala, berries) stay recognizable; on the cat it looks much like the full net.",
    "starry_night_tiny": "the blues of the slim net with yellow on the light areas and swirling dabs, softer than the slim "
    "and full nets (detail below 8 px is lost: a dandelion's seeds become a pale ball); no band along the edges since the "
    "8 px margin (before it, the last rows carried a stripe of their own texture). The webcam style: in the page on 2 cores "
    "it keeps up with a 30 FPS camera at 320x240 with the temporal filter (30.3 FPS), and at 640x480 draws 27.8 FPS frame "
    "by frame, 12-21 with the filter (BENCHMARKS.md, Webcam page).",
    "starry_night_tiny_fullres": "the tiny net's blues and yellows with the photo's detail drawn back at full resolution "
    "(the koala's face, the building's windows, the cat's eyes: what the tiny net loses below its 8 px cells), a fine "
    "texture over it and fewer of the tiny net's large yellow dabs. Beside the optimizer at 100 iterations it is softer: "
    "L-BFGS paints the painting's stroke texture over everything. Steadier on video than the tiny net (1-px pan 4.8 "
    "levels vs 6.6, noise amplification 0.25 vs 0.27) and 1.8-2.3x its time on ONNX Runtime, 256² to 1024² (BENCHMARKS.md, Inference latency).",
    "great_wave_tiny_fullres": "the print's cream and Prussian blue over the whole frame, its foam scales in flat "
    "backgrounds and shallow diagonal strokes across skies; objects stay recognizable (a bat, a koala, blackberries, the "
    "cat's eyes and stripes) but softer than the slim and full nets, and a photo's own colours are gone (the cat's orange "
    "nose turns grey-blue, where the optimizer at 100 iterations keeps it). The second webcam style (⚡), warm-started "
    "from starry_night_tiny_fullres. At the recipe's stability weights (3e7 + noise 1e9) the scales were mostly gone, "
    "a smooth cream-and-blue wash. The 500 steps on 256² crops made the blues deeper and the background's wave strokes "
    "bolder and larger than the 128² file's (the koala's tree and the bat's sky become rolling blue crests).",
    "starry_night_slim": "Van Gogh's blues over the whole photo in a fine cross-hatched texture, with less of the painting's "
    "yellow than the full net (the cat's eyes turn pale); objects recognizable.",
}


def onnx_facts(path: Path) -> dict:
    import numpy as np
    import onnx

    from stylecast.inference.stylizer import Stylizer

    model = onnx.load(str(path))
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    meta = Stylizer(path, backend="ort", device="cpu").metadata
    return {"meta": meta, "params": params, "mb": path.stat().st_size / 1e6}


def validation_losses(run: Path) -> tuple[int, dict[str, float]]:
    """The last validation row of the run's metrics.csv: (step, {content, style, tv, total})."""
    rows = []
    for f in sorted(run.glob("logs/version_*/metrics.csv")):
        with open(f) as fh:
            rows += [r for r in csv.DictReader(fh) if r.get("val/total")]
    if not rows:
        raise SystemExit(f"{run}: no validation rows in logs/version_*/metrics.csv")
    last = max(rows, key=lambda r: int(r["step"]))
    return int(last["step"]) + 1, {k: float(last[f"val/{k}"]) for k in ("content", "style", "tv", "total")}


def wall_time(run: Path) -> tuple[float, str, str]:
    """(minutes, UTC span, load averages) over every training session of the run."""
    import datetime as dt

    path = run / "wall_time.jsonl"
    if not path.exists():
        raise SystemExit(f"{path} missing: train with scripts/train_shipped.sh (it records the wall time)")
    sessions = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    minutes = sum(s["end"] - s["start"] for s in sessions) / 60
    fmt = lambda t: dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")  # noqa: E731
    # Segments less than an hour apart (a run stopped for a quiet benchmark) share one span; the
    # minutes above count only the running time.
    spans: list[list[float]] = []
    for s in sorted(sessions, key=lambda s: s["start"]):
        if spans and s["start"] - spans[-1][1] < 3600:
            spans[-1][1], spans[-1][2] = s["end"], spans[-1][2] + 1
        else:
            spans.append([s["start"], s["end"], 0])
    span = ", ".join(f"{fmt(a)}–{fmt(b)[-5:]} UTC" + (f" ({n} pauses left out)" if n else "") for a, b, n in spans)
    loads = list(dict.fromkeys(s["load_avg_1_5_15"] for s in sessions))
    return minutes, span, "; ".join(loads)


def parity_bound(meta: dict) -> float:
    from stylecast.training.export import parity_tolerance

    return parity_tolerance(fp16=meta.get("precision") == "fp16", fp16_weights=meta.get("weight_storage") == "fp16")


def net_kind(meta: dict) -> str:
    """'full' (Johnson's network, width 1), 'tiny' / 'tiny_fullres' (the tiny variants) or 'slim', from the metadata."""
    arch = parse_architecture(meta["architecture"])
    if arch is None:
        raise SystemExit(f"metadata 'architecture' is {meta['architecture']!r}, not a TransformerNet")
    return arch.variant if arch.variant != "johnson" else "full" if arch.width == 1.0 else "slim"


def parity(ckpt: Path, onnx_path: Path) -> dict[str, float]:
    from stylecast.training.export import load_checkpoint, parity as check

    net, _, _ = load_checkpoint(ckpt)
    return check(net.eval(), onnx_path)


def compare_summary(report: Path) -> dict:
    data = json.loads(report.read_text())
    return {"summary": data["summary"], "options": data["options"], "machine": data["machine"], "images": [r["name"] for r in data["images"]]}


def photos_arg(names: list[str]) -> str:
    # photos/ = the project's test photos (not in the repository); the comment line above the command says so.
    every = sorted(p.name for p in (ROOT.parent / "shared" / "data" / "content").glob("*.jpg"))
    return "photos/*.jpg" if sorted(names) == every else " ".join(f"photos/{n}" for n in names)


def training_precision(run: Path) -> str:
    """trainer.precision of the run, from the config LightningCLI saved next to its logs."""
    import yaml

    for f in sorted(run.glob("logs/version_*/config.yaml")):
        value = (yaml.safe_load(f.read_text()).get("trainer") or {}).get("precision")
        if value:
            return {"bf16-mixed": "bf16 autocast", "16-mixed": "fp16 autocast"}.get(str(value), str(value))
    raise SystemExit(f"{run}: no logs/version_*/config.yaml with trainer.precision")


def steps_text(steps: int, recipe_file: str, warm: bool = False) -> str:
    import yaml

    if warm:
        return f"{steps} more"  # a continuation: its length is not the recipe's

    planned = int(yaml.safe_load((ROOT / recipe_file).read_text())["trainer"]["max_steps"])
    if steps == planned:
        return f"{steps} (the full recipe)"
    if steps > planned:
        return f'{steps} (the recipe has {planned}; trained longer: README, "What a CPU buys you")'
    return f"{steps} (the recipe has {planned}; cut to fit the training into one working session)"


def match_text(s: dict, o: dict) -> str:
    if s["matched"] and s["mean_speedup_at_equal_loss"]:
        return (
            f"reached the net's loss in {s['matched']} of {s['images']} images, after {s['mean_match_iteration']:.0f} iterations on average "
            f"(median {s['median_match_iteration']:.0f}); at equal loss the net was {s['mean_speedup_at_equal_loss']:.0f}x faster"
        )
    return (
        f"did not reach the net's loss within {max(o['iterations'])} iterations on any image (speed-up at equal loss: more than "
        f"{max(o['iterations']) * s['mean_slow_seconds_per_iteration'] / s['mean_fast_seconds']:.0f}x)"
    )


def steps_in_all(meta: dict, steps_row: str) -> str:
    """A warm-started model counts its source's steps too (training/warm_start.py)."""
    if not meta.get("init_from"):
        return steps_row
    init = int(meta.get("init_steps") or 0)
    return f"{steps_row}, warm-started from `{meta['init_from']}` ({init} steps): {init + int(meta['steps'])} steps in all"


FLICKER_KEY = "flicker (frames stylized one by one, synthetic camera motion)"
STEADY_PREFIX = "flicker with the temporal filter"  # rows under an older wording are replaced too
STEADY_KEY = (
    f"{STEADY_PREFIX} (its defaults for video files and the webcam stream: steady {TemporalSettings.history}, "
    f"{TemporalSettings.still_history} while the camera is still)"
)


def flicker_text(onnx_path: Path, steady: bool = False) -> str:
    """The flicker benchmark's measurement (benchmarks/bench_flicker.py settings) of this model,
    frame by frame or (`steady`) through the temporal filter at its defaults."""
    from benchmarks.bench_flicker import PHOTOS, bench_photos, measure_photos
    from stylecast.inference.stylizer import Stylizer
    from stylecast.inference.temporal import Steadied

    s = Stylizer(onnx_path, backend="ort")
    fn = Steadied(lambda f: s(f), TemporalSettings()) if steady else (lambda f: s(f))
    mean, _ = measure_photos(fn, bench_photos(), frames=6)
    where = (
        "`python -m benchmarks --only flicker` has every model and the peer"
        if not steady
        else 'BENCHMARKS.md, "Flicker with the temporal filter", has what it costs'
    )
    return ", ".join(f"{k} {v:.2f}" for k, v in mean.items()) + f" (8-bit levels of warping error; mean of {' and '.join(PHOTOS)}; {where})"


def refresh_flicker(card_path: Path, onnx_path: Path) -> str:
    """The card's text with both flicker rows measured again (added after the compare row if missing)."""
    lines = card_path.read_text().split("\n")
    rows = {FLICKER_KEY: flicker_text(onnx_path), STEADY_KEY: flicker_text(onnx_path, steady=True)}
    keep = [ln for ln in lines if not ln.startswith(f"| {FLICKER_KEY} |") and not ln.startswith(f"| {STEADY_PREFIX} (")]
    at = max(i for i, ln in enumerate(keep) if ln.startswith("| comparison with the slow optimizer")) + 1
    return "\n".join(keep[:at] + [f"| {k} | {v} |" for k, v in rows.items()] + keep[at:])


def card(name: str, run: Path, compare: Path, compare_content: Path | None = None, history: str | None = None) -> str:
    from benchmarks.common import machine_info

    onnx_path = ROOT / "checkpoints" / f"{name}.onnx"
    f = onnx_facts(onnx_path)
    meta = f["meta"]
    painting = Path(meta["style_image"]).stem
    title, artist, year, medium, why, source = PAINTINGS[painting]
    steps = int(meta["steps"])
    ckpt = run / "checkpoints" / f"step-{steps:06d}.ckpt"
    val_step, val = validation_losses(run)
    minutes, span, loads = wall_time(run)
    par = parity(ckpt, onnx_path)
    cmp = compare_summary(compare)
    s, o = cmp["summary"], cmp["options"]
    m = machine_info()
    kind = {
        "full": "full Johnson et al. network",
        "tiny": "tiny real-time network (BlurPool, separable blocks at 1/8, pixel shuffle)",
        "tiny_fullres": "tiny real-time network with a full-resolution stride-1 head (against flicker)",
        "slim": "slim network (half width, 3 residual blocks)",
    }[net_kind(meta)]
    photos = len(list((ROOT / "data" / "photos").rglob("*.jpg")))
    recipe_file = f"training/configs/{meta['recipe']}.yaml"
    matched = match_text(s, o)
    rows = [
        ("painting", f"{title}, {artist}, {year}, {medium}"),
        ("public domain", f"{why}. The image file is not in this repository: {source}, resized to at most 1024 px"),
        (
            "network",
            f"`{meta['architecture']}`: the {kind}, {f['params'] / 1e6:.2f} M parameters, {f['mb']:.1f} MB ONNX, {meta['precision']} compute"
            + (", weights stored in fp16 (`--fp16-weights`)" if meta.get("weight_storage") == "fp16" else ""),
        ),
        (
            "recipe",
            f"`{recipe_file}` (crops {meta.get('image_size')}², style image at {meta.get('style_size')} px, content {meta['content_layers']} ×{meta['content_weight']}, "
            f"style {meta['style_layers']} ×{meta['style_weight']}, TV ×{meta['tv_weight']}"
            + (f", stability loss ×{meta['stability_weight']}" if meta.get("stability_weight") else "")
            + (f", still-camera noise ×{meta['stability_noise_weight']}" if meta.get("stability_noise_weight") else "")
            + f", {training_precision(run)}, on the CPU: no GPU was lent to this project)",
        ),
        ("data", f"the {photos} photos `scripts/get-training-photos.sh DIR` takes from Debian packages"),
        ("steps", steps_in_all(meta, steps_text(steps, recipe_file, warm=bool(meta.get("init_from"))))),
        ("wall time, hardware", f"{minutes:.0f} min ({span}) on {m['cores']} CPU cores ({m['cpu']}, no GPU); load average at the end (1/5/15 min): {loads}"),
        (
            f"losses at step {val_step} (validation: 4 photos held out of training, at 256²)",
            f"content {val['content']:.3g}, style {val['style']:.3g}, TV {val['tv']:.3g}, total {val['total']:.3g}",
        ),
        ("export parity", "ORT vs torch max abs diff " + ", ".join(f"{k}: {v:.1e}" for k, v in par.items()) + f" (bound {parity_bound(meta):.0e})"),
        (
            f"comparison with the slow optimizer ({s['images']} held-out photos at {o['size']} px)",
            f"`stylecast compare` (L-BFGS from {o['init']}, checkpoints {','.join(map(str, o['iterations']))}): the net takes {s['mean_fast_seconds'] * 1000:.0f} ms per image "
            f"(ONNX Runtime, CPU), the optimizer {s['mean_slow_seconds_per_iteration']:.2f} s per iteration; the optimizer {matched}. Mean total loss of the net: {s['mean_fast_total']:.3g}",
        ),
    ]
    rows.append((FLICKER_KEY, flicker_text(onnx_path)))
    rows.append((STEADY_KEY, flicker_text(onnx_path, steady=True)))
    if history:  # what the run folder cannot say (earlier stages, why), after the steps
        rows.insert([k for k, _ in rows].index("steps") + 1, ("history", history))
    if compare_content is not None:
        # From the photo itself the optimizer starts with the content term near zero: a content-heavy
        # objective flatters the comparison from noise, and this one shows how much.
        c = compare_summary(compare_content)
        rows.append(("the same from the photo (`--init content`)", f"the optimizer {match_text(c['summary'], c['options'])}"))
    lines = [f"# {name} ({title.replace('*', '').split(' (')[0]}, {kind})", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += [
        "",
        "Reproduce (Lightning checkpoints stay out of git):",
        "",
        "```bash",
        f"scripts/train_shipped.sh {name}    # trains runs/{name}, exports checkpoints/{name}.onnx",
        "# photos/: the project's test photos (scikit-image and Debian packages, CC0/CC-BY); paintings/: the file above",
        f"stylecast compare {photos_arg(cmp['images'])} --style {name} --style-image paintings/{meta['style_image']} --size {o['size']} --iterations {','.join(map(str, o['iterations']))} -o runs/compare/{name}",
        f"python scripts/model_card.py {name}",
        "```",
    ]
    if name in LOOKS:
        lines += ["", f"Looks like: {LOOKS[name]}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name")
    p.add_argument("--run", type=Path, help="run folder (default runs/NAME)")
    p.add_argument("--compare", type=Path, help="compare report.json (default runs/compare/NAME/report.json)")
    p.add_argument(
        "--compare-content", type=Path, help="compare report.json of a --init content run (default runs/compare/NAME_content/report.json, if present)"
    )
    p.add_argument("--history", help="one sentence on earlier stages the run folder does not record (a warm start's source run, why)")
    p.add_argument("--refresh-flicker", action="store_true", help="only measure the flicker rows again in the existing card (no run folder needed)")
    a = p.parse_args()
    if a.refresh_flicker:
        out = ROOT / "checkpoints" / f"{a.name}.md"
        out.write_text(refresh_flicker(out, ROOT / "checkpoints" / f"{a.name}.onnx"))
        print(f"refreshed the flicker rows of {out.relative_to(ROOT)}")
        return
    run = a.run or ROOT / "runs" / a.name
    report = a.compare or ROOT / "runs" / "compare" / a.name / "report.json"
    content = a.compare_content or ROOT / "runs" / "compare" / f"{a.name}_content" / "report.json"
    text = card(a.name, run, report, content if content.exists() else None, history=a.history)
    out = ROOT / "checkpoints" / f"{a.name}.md"
    out.write_text(text)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
