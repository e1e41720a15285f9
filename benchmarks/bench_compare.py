"""Fast vs slow (Johnson et al. 2016, Table 1 / Fig. 5) with a shipped style, via `stylecast compare`.

Quick: 3 content photos at 256 px, L-BFGS checkpoints 50/100/200. Full: every photo in
../shared/data/content, 256 and 512 px, checkpoints 50/100/200/300/500.
Needs a style in checkpoints/ (starry_night, or $STYLECAST_BENCH_STYLE) and its painting in
../shared/data/styles. A `stylecast compare` run made by hand becomes the section too:
    python -m benchmarks.bench_compare runs/compare/NAME/report.json [--note CONDITIONS]
"""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.common import ROOT, machine_line, markdown_table, update_section, write_json

SHARED = Path(os.environ.get("STYLECAST_SHARED", ROOT.parent / "shared")) / "data"


def run(quick: bool = True, style: str | None = None) -> dict:
    from stylecast.inference.registry import StyleRegistry
    from stylecast.optimization.compare import compare

    registry = StyleRegistry(ROOT / "checkpoints")
    names = registry.names()
    if not names:
        raise SystemExit("bench_compare: no style in checkpoints/ to compare")
    style = style or os.environ.get("STYLECAST_BENCH_STYLE") or ("starry_night" if "starry_night" in names else names[0])
    painting = SHARED / "styles" / registry.info(style)["metadata"]["style_image"]
    contents = sorted((SHARED / "content").glob("*.jpg"))
    if quick:
        contents, sizes, iterations = contents[:3], [256], (50, 100, 200)
    else:
        sizes, iterations = [256, 512], (50, 100, 200, 300, 500)
    results = {}
    for size in sizes:
        out = ROOT / "benchmarks" / "results" / f"compare_{style}_{size}"
        # a re-run replaces the previous run's report (the overwrite rule of `stylecast compare --force`)
        results[size] = compare(contents, style, painting, out, size=size, iterations=iterations, models_dir=ROOT / "checkpoints", overwrite=True)
    command = f"python -m benchmarks --only compare{' --full' if not quick else ''}"
    return record(list(results.values()), command)


def record(reports: list[dict], command: str, note: str = "") -> dict:
    """JSON + the BENCHMARKS.md section from `stylecast compare` reports (one per size)."""
    first = reports[0]
    style, painting = first["model"]["style_name"], first["style_image"]
    iterations = first["options"]["iterations"]
    payload = {"style": style, "command": command, "reports": {str(r["options"]["size"]): r["summary"] for r in reports}, "machine": first["machine"]}
    write_json(f"compare_{style}", payload)
    rows = []
    for rep in reports:
        s = rep["summary"]
        rows.append(
            [
                rep["options"]["size"],
                s["images"],
                f"{s['mean_fast_seconds'] * 1000:.0f}",
                f"{s['mean_slow_seconds_per_iteration']:.2f}",
                f"{s['mean_match_iteration']:.0f}" if s["mean_match_iteration"] is not None else "not reached",
                f"{s['matched']}/{s['images']}",
                f"{s['mean_speedup_at_equal_loss']:.0f}×" if s["mean_speedup_at_equal_loss"] else "—",
            ]
        )
    body = (
        f"`{command}` — style `{style}` (painting {painting}, recipe {first['model']['recipe']}, {first['model']['steps']} steps), "
        f"L-BFGS-B from {first['options']['init']}, checkpoints {', '.join(map(str, iterations))}; every output scored with the "
        "net's own training losses on the saved 8-bit image; the net on ONNX Runtime, the optimizer on torch, both on the CPU.\n\n"
        f"Machine: {machine_line(payload['machine'])}\n\n"
        + (f"{note}\n\n" if note else "")
        + markdown_table(
            [
                "size",
                "images",
                "net ms/image (ORT)",
                "L-BFGS s/iteration",
                "iteration where L-BFGS matches the net's loss (mean)",
                "matched",
                "speed ratio at equal loss",
            ],
            rows,
        )
        + "\n\nJohnson et al. 2016 report the net's loss matching 50–100 L-BFGS iterations at ~1000× less time on a Titan X."
    )
    update_section("compare", "Fast vs slow (`stylecast compare`)", body)
    return payload


if __name__ == "__main__":  # python -m benchmarks.bench_compare REPORT_DIR/report.json ...  (from a compare run)
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_compare", description="BENCHMARKS.md section from compare reports")
    parser.add_argument("reports", nargs="+", type=Path, help="report.json of each size")
    parser.add_argument("--note", default="", help="conditions of the run (load, threads, wall time)")
    args = parser.parse_args()
    reports = [json.loads(p.read_text()) for p in args.reports]
    o = reports[0]["options"]
    cmd = f"stylecast compare <{len(reports[0]['images'])} photos of ../shared/data/content> --style {reports[0]['model']['style_name']} --style-image {reports[0]['style_image']} --size {o['size']} --iterations {','.join(map(str, o['iterations']))}"
    record(reports, cmd, args.note)
