"""What a CPU buys you: the compare match iteration of a training run's checkpoints against time.

For every `step-NNNNNN.ckpt` of each run folder, the net (torch, fp32) stylizes the photos of a
reference `stylecast compare` report at the report's size; each output is scored, as saved (8-bit),
with the run's own losses (the same evaluator as compare), and looked up in the report's L-BFGS-B
curves: the first iteration at or below the net's loss is the match iteration. The optimizer's
curve does not depend on the net, so one compare run (per objective, photo set, size and start)
serves every checkpoint of every run trained with that objective.

    python scripts/quality_vs_time.py runs/sn256_scratch runs/sn256_warm \
        --report runs/compare/sn_ref_noise/report.json --report runs/compare/sn_ref_content/report.json \
        --content ../shared/data/content -o docs/figures/quality_vs_time

Writes OUT.json (every checkpoint: step, steps in all, wall minutes, per-photo losses and match
iterations per report) and OUT.png (mean match iteration from the first report against wall time).
Wall time is the checkpoint's file time minus the launch's config.yaml time, as measured under
whatever load the machine had: the JSON records the load average when this script ran. Time the run
spent stopped (`kill -STOP` while a benchmark needed a quiet machine) is left out when the run folder
has a `pauses.jsonl`: one {"stop": EPOCH_S, "cont": EPOCH_S} per pause.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine_info, machine_line, markdown_table, update_section, write_json  # noqa: E402
from stylecast.images import load_image  # noqa: E402
from stylecast.optimization.compare import Evaluator, as_saved, first_match  # noqa: E402
from stylecast.training.export import load_checkpoint, metadata_from_checkpoint  # noqa: E402


def launch_time(run: Path) -> float:
    configs = sorted(run.glob("logs/version_*/config.yaml"), key=lambda p: p.stat().st_mtime)
    if not configs:
        raise SystemExit(f"{run}: no logs/version_*/config.yaml (not a stylecast train run folder?)")
    return configs[0].stat().st_mtime


def paused_seconds(run: Path, until: float) -> float:
    """Seconds the run was stopped before `until` (pauses.jsonl; none when absent)."""
    path = run / "pauses.jsonl"
    if not path.is_file():
        return 0.0
    pauses = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sum(max(0.0, min(q["cont"], until) - q["stop"]) for q in pauses)


@torch.no_grad()
def stylize(net, image: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(image.transpose(2, 0, 1)[None].copy())
    return as_saved(net(x)[0].clamp(0, 1).permute(1, 2, 0).numpy())


def evaluate_checkpoint(ckpt: Path, reports: list[dict], content_dir: Path, style_dir: Path, cache: dict) -> dict:
    net, hparams, step = load_checkpoint(ckpt)
    meta = metadata_from_checkpoint(hparams, step, style_name="x")
    key = (meta["content_layers"], meta["style_layers"], meta["style_weight"], meta["content_weight"], meta["tv_weight"], meta["style_image"])
    if key not in cache:  # one VGG + style targets per objective
        style = load_image(style_dir / meta["style_image"], int(meta.get("style_size") or 256))
        cache[key] = Evaluator(meta, style, torch.device("cpu"))
    evaluator = cache[key]
    size = int(reports[0]["options"]["size"])
    per_report: list[list[int | None]] = [[] for _ in reports]
    totals = []
    for row in reports[0]["images"]:
        content = load_image(content_dir / row["name"], size)
        total = evaluator(stylize(net, content), content)["total"]
        totals.append(total)
        for i, rep in enumerate(reports):
            curve = next(r["curve"] for r in rep["images"] if r["name"] == row["name"])
            hit = first_match(curve, total)
            per_report[i].append(hit["iteration"] if hit else None)
    return {"step": step, "init_steps": int(hparams.get("init_steps") or 0), "totals": totals, "match": per_report}


def mean_match(matches: list[int | None], cap: int) -> float:
    """Mean match iteration; an unmatched photo counts as the curve's last iteration (a lower bound)."""
    return statistics.mean(m if m is not None else cap for m in matches)


def draw(results: dict, cap: int, path: Path, lines: list[tuple[str, float]] = ()) -> None:
    """The first report's mean match iteration against wall minutes, one line per run; `lines`:
    labelled horizontal references (a shipped net, a target), dashed."""
    w, h, left, bottom, top, right = 900, 520, 70, 50, 30, 180
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    xmax = max((p["wall_min"] for r in results.values() for p in r), default=1) * 1.05 or 1
    ymax = cap * 1.05

    def xy(x, y):
        return left + x / xmax * (w - left - right), h - bottom - y / ymax * (h - top - bottom)

    d.line([xy(0, 0), xy(xmax, 0)], fill="black")
    d.line([xy(0, 0), xy(0, ymax)], fill="black")
    for k in range(0, int(ymax) + 1, 10):
        d.text((left - 28, xy(0, k)[1] - 6), str(k), fill="black")
    for t in range(0, int(xmax) + 1, max(1, int(xmax) // 8)):
        d.text((xy(t, 0)[0] - 6, h - bottom + 6), str(t), fill="black")
    d.text((left, h - 20), "wall minutes of training on this CPU (2 cores, shared)", fill="black")
    d.text((left, 8), "L-BFGS-B iterations (from noise) to reach the net's loss: mean over the photos", fill="black")
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
    for i, (name, points) in enumerate(results.items()):
        c = colours[i % len(colours)]
        pts = [xy(p["wall_min"], p["mean_match"][0]) for p in points]
        if len(pts) > 1:
            d.line(pts, fill=c, width=2)
        for x, y in pts:
            d.ellipse((x - 3, y - 3, x + 3, y + 3), fill=c)
        d.text((w - right + 10, top + 16 * i), name, fill=c)
    for label, value in lines:
        (x0, y), (x1, _) = xy(0, value), xy(xmax, value)
        for x in range(int(x0), int(x1), 12):
            d.line([(x, y), (min(x + 6, x1), y)], fill=(110, 110, 110))
        d.text((x0 + 6, y - 14), label, fill=(80, 80, 80))
    img.save(path)


def render(p: dict) -> str:
    labels = [f"from {Path(r).parent.name}" for r in p["reports"]]
    ref = list(p["reference"].items())
    rows = [["reference: " + name, "", "", f"{s['mean_match_iteration']:.1f}"] for name, s in ref]
    for run, points in p["runs"].items():
        for q in points:
            rows.append([run, q["step"] + q["init_steps"], f"{q['wall_min']:.0f}", " / ".join(f"{m:.1f}" for m in q["mean_match"])])
    return "\n".join(
        [
            machine_line(p["machine"]),
            "",
            f"`python scripts/quality_vs_time.py`: each checkpoint's net scored on {', '.join(p['photos'])} at the compare report's size "
            f"and looked up in the L-BFGS-B curves of the reports ({'; '.join(labels)}); mean match iteration (an unmatched photo counts as "
            f"{p['cap']}). Wall minutes under the load of the time (1-min load average when scored: {p['load_avg'][0]:.1f}). {p.get('note', '')}",
            "",
            markdown_table(["run", "steps in all", "wall min", "mean match iteration (" + " / ".join(labels) + ")"], rows),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--report", action="append", type=Path, required=True, help="compare report.json (first: the plotted one)")
    p.add_argument("--content", type=Path, default=ROOT.parent / "shared" / "data" / "content")
    p.add_argument("--styles", type=Path, default=ROOT.parent / "shared" / "data" / "styles")
    p.add_argument("-o", "--out", type=Path, required=True, help="output stem: OUT.json and OUT.png")
    p.add_argument("--line", action="append", default=[], metavar="LABEL=ITERATION", help="a dashed reference line on the plot (repeatable)")
    p.add_argument("--reference-name", help="what to call the reports' own net in the table (default: its file name, as the reports record it)")
    p.add_argument("--benchmarks", metavar="NOTE", help="also write benchmarks/results/quality_vs_time.json and its BENCHMARKS.md section, with this note")
    a = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    reports = [json.loads(r.read_text()) for r in a.report]
    cap = max(r["options"]["iterations"][-1] for r in reports)
    results, cache = {}, {}
    for run in a.runs:
        start = launch_time(run)
        points = []
        for ckpt in sorted((run / "checkpoints").glob("step-*.ckpt")):
            row = evaluate_checkpoint(ckpt, reports, a.content, a.styles, cache)
            written = ckpt.stat().st_mtime
            row["wall_min"] = (written - start - paused_seconds(run, written)) / 60
            row["mean_match"] = [mean_match(m, cap) for m in row["match"]]
            print(f"{run.name} step {row['step']}: {row['wall_min']:.0f} min, match {row['match']}", flush=True)
            points.append(row)
        results[run.name] = points
    # the reports' own net: its file name may since name another model (a re-shipped style)
    reference = {(a.reference_name or r["model"]["file"]) + f" ({r['options']['init']})": r["summary"] for r in reports}
    payload = {
        "runs": results,
        "reports": [str(r) for r in a.report],
        "reference": reference,
        "cap": cap,
        "photos": [r["name"] for r in reports[0]["images"]],
        "machine": machine_info(),
        "load_avg": os.getloadavg(),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n")
    lines = [(label, float(value)) for label, value in (spec.rsplit("=", 1) for spec in a.line)]
    draw(results, cap, a.out.with_suffix(".png"), lines)
    if a.benchmarks:
        payload["note"] = a.benchmarks
        write_json("quality_vs_time", payload)
        update_section("quality_vs_time", "What a CPU buys you: compare match iteration against training time", render(payload))
    print(f"wrote {a.out.with_suffix('.json')} and {a.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
