"""Fast vs slow on the same images and the same losses (Johnson et al. 2016, Table 1 and Fig. 5).

For each content image, at one size:
- the feed-forward net runs once through the torch-free stylizer (ONNX Runtime by default), timed
  after a warm-up run (median of `repeats`);
- the slow Gatys optimizer (L-BFGS, from noise as in the paper's comparison) runs up to the largest
  requested iteration count; the image at every requested count is kept;
- every output, fast and slow@k, is scored by ONE evaluator with the losses the net was trained
  with (layers, weights, pooling, VGG and style size read from the model's metadata), on the image
  as saved (clamped to [0, 1], 8-bit);
- from the optimizer's per-iteration curve: the first iteration whose total loss is at or below
  the net's, and the speed ratio at equal loss = optimizer seconds to get there / net seconds.

`compare(...)` is the importable job; `main(argv)` is `stylecast compare`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from stylecast.inference.registry import MODELS_DIR_RULE, resolve_choice
from stylecast.inference.stylizer import Stylizer
from stylecast.losses.images import to_tensor
from stylecast.losses.perceptual import PerceptualLoss
from stylecast.losses.vgg import load_vgg
from stylecast.optimization.gatys import GatysOptions, optimize
from stylecast.optimization.common import device as torch_device
from stylecast.optimization.loop import Step
from stylecast.errors import UserError
from stylecast.flags import DEVICE_HELP, ArgumentParser, add_device, add_force, add_quiet
from stylecast.images import array_to_pil, load_image, pil_to_array, save_image
from stylecast.io import RunOutputs, check_new
from stylecast.machine import machine_info

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEFAULT_ITERATIONS = (50, 100, 200, 300, 500)


@dataclass
class CompareOptions:
    size: int = 256  # longer side of every content image (both methods run at this size)
    iterations: Sequence[int] = DEFAULT_ITERATIONS  # slow-optimizer checkpoints (L-BFGS steps)
    init: str = "noise"  # the slow optimizer's start: noise (as Johnson et al. compare) or content
    device: str = "auto"  # torch device for the VGG and the slow optimizer
    backend: str = "ort"  # the fast net's runtime: ort | openvino | auto
    repeats: int = 3  # timed runs of the fast net (after one warm-up); the median is reported
    seed: int = 0
    allow_style_mismatch: bool = False  # proceed when the style image is not the one the model records
    overwrite: bool = False  # replace an earlier report in out_dir (its files are removed first)
    progress: bool = True
    # An earlier compare folder whose optimizer runs are reused instead of re-run: the optimizer's
    # curve depends on the objective, photos, size, start and seed, never on the net, so one slow
    # run serves every net (or checkpoint) trained with the same losses.
    reuse: str | None = None


# --------------------------------------------------------------------------------------------
# the shared evaluator


class Evaluator:
    """Scores any output image with the losses a style model was trained with."""

    def __init__(self, metadata: dict[str, str], style_image: np.ndarray, device: torch.device):
        self.device = device
        vgg = load_vgg(metadata.get("vgg_weights") or "caffe", pooling=metadata.get("pooling") or "max")
        try:
            self.loss = PerceptualLoss(
                content_layers=metadata["content_layers"],
                style_layers=metadata["style_layers"],
                content_weight=float(metadata["content_weight"]),
                style_weight=float(metadata["style_weight"]),
                tv_weight=float(metadata["tv_weight"] or 0.0),
                vgg=vgg,
            ).to(device)
        except (KeyError, ValueError) as exc:
            raise UserError(f"the model's loss metadata is incomplete or malformed: {exc}") from None
        self.loss.set_style(to_tensor(style_image).to(device))

    def settings(self) -> dict:
        return {
            "content_layers": self.loss.content_layers,
            "style_layers": self.loss.style_layers,
            "content_weight": self.loss.content_weight,
            "style_weight": self.loss.style_weight,
            "tv_weight": self.loss.tv_weight,
            "vgg": self.loss.vgg.arch,
            "pooling": self.loss.vgg.pooling,
        }

    @torch.no_grad()
    def __call__(self, image: np.ndarray, content: np.ndarray) -> dict[str, float]:
        out = self.loss(to_tensor(image).to(self.device), to_tensor(content).to(self.device))
        return {k: float(v) for k, v in out.items()}


def as_saved(image: np.ndarray) -> np.ndarray:
    """The image exactly as an 8-bit file holds it: what the report scores and what it saves."""
    return pil_to_array(array_to_pil(image))


def first_match(curve: Sequence[dict], target: float) -> dict | None:
    """First point of the optimizer's curve whose total loss is <= target (None if never)."""
    for row in curve:
        if row["total"] <= target:
            return row
    return None


# --------------------------------------------------------------------------------------------
# the job


def check_style_image(metadata: dict[str, str], style_image: Path, allow_mismatch: bool) -> None:
    recorded = metadata.get("style_image", "")
    if recorded and recorded != style_image.name:
        msg = f"{style_image}: the model was trained on {recorded!r}, not {style_image.name!r}"
        if not allow_mismatch:
            raise UserError(msg + " (pass --allow-style-mismatch to compare anyway)")
        log.warning("%s; comparing anyway (--allow-style-mismatch)", msg)


# What a report folder holds: the fixed files, and per photo STEM.fast.png and STEM.slowNNNN.png.
REPORT_FILES = ("report.json", "report.md", "grid.png", "loss_vs_time.png")
_REPORT_IMAGE = re.compile(r".+\.(fast|slow\d{4,})\.png")


def report_files(out_dir: Path) -> list[Path]:
    """The files in `out_dir` that a compare run writes (an earlier run's, before this one)."""
    if not out_dir.is_dir():
        return []
    return sorted(p for p in out_dir.iterdir() if p.is_file() and (p.name in REPORT_FILES or _REPORT_IMAGE.fullmatch(p.name)))


def check_report_folder(out_dir: Path, overwrite: bool) -> None:
    """The overwrite rule for a report folder: a non-empty one is refused unless `overwrite`
    (--force); then the earlier report's files are removed (not other files), so the folder
    never mixes two runs' images. Checked before any work."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise UserError(f"{out_dir}: folder is not empty (use --force to replace an earlier report)")
    check_new([], True, earlier=report_files(out_dir))


def load_reusable(folder: str | Path, settings: dict, o: "CompareOptions", style_image: Path, iterations: list[int]) -> tuple[Path, dict]:
    """The earlier report and its folder, after checking that its optimizer runs are this run's."""
    folder = Path(folder)
    folder = folder.parent if folder.name == "report.json" else folder
    path = folder / "report.json"
    try:
        prev = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"--reuse: {path}: not a readable compare report ({type(exc).__name__})") from None
    mine = json.loads(json.dumps(settings))  # the JSON form, as the report stores it
    checks = {
        "losses (layers, weights, VGG)": (prev.get("losses"), mine),
        "style image": (prev.get("style_image"), style_image.name),
        "--size": (prev.get("options", {}).get("size"), o.size),
        "--init": (prev.get("options", {}).get("init"), o.init),
        "--seed": (prev.get("options", {}).get("seed"), o.seed),
    }
    for what, (theirs, ours) in checks.items():
        if theirs != ours:
            raise UserError(f"--reuse: {path}: its {what} differ from this run's ({theirs!r} vs {ours!r})")
    missing = sorted(set(iterations) - set(prev["options"]["iterations"]))
    if missing:
        raise UserError(f"--reuse: {path}: has no optimizer images at iterations {missing}")
    return folder, prev


def _reused_slow(prev_dir: Path, prev: dict, path: Path, iterations: list[int]) -> tuple[list[dict], dict[int, np.ndarray]]:
    row = next((r for r in prev["images"] if r["name"] == path.name), None)
    if row is None:
        raise UserError(f"--reuse: {prev_dir / 'report.json'} has no optimizer run for {path.name}")
    stem = Path(row["fast"]["file"]).name.removesuffix(".fast.png")
    snapshots = {k: load_image(prev_dir / f"{stem}.slow{k:04d}.png") for k in iterations}
    return row["curve"], snapshots


def _time_fast(stylizer: Stylizer, content: np.ndarray, repeats: int) -> tuple[np.ndarray, float]:
    stylizer(content)  # warm-up: graph optimization, allocations, OpenVINO compile for this size
    times, out = [], None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        out = stylizer(content)
        times.append(time.perf_counter() - start)
    return out, statistics.median(times)


def compare(
    contents: Sequence[str | Path],
    style: str,
    style_image: str | Path,
    out_dir: str | Path,
    options: CompareOptions | None = None,
    *,
    models_dir: str | Path | None = None,
    **overrides,
) -> dict:
    """Run both methods on every content image; write report.json, report.md, grid.png,
    loss_vs_time.png and the output images under out_dir. Returns the report dict.

    out_dir must be empty or new, unless `overwrite` (then an earlier report's files are removed
    first); a run that fails removes what it wrote."""
    o = dataclasses.replace(options or CompareOptions(), **overrides)
    iterations = sorted({int(k) for k in o.iterations})
    if not contents:
        raise UserError("give at least one content image")
    if not iterations or iterations[0] < 1:
        raise UserError(f"--iterations must be positive integers, got {list(o.iterations)}")
    if int(o.size) < 16:
        raise UserError(f"--size must be at least 16 px, got {o.size}")
    if o.init not in ("noise", "content"):
        raise UserError(f"--init must be noise or content, got {o.init!r}")
    style_image = Path(style_image)
    choice = resolve_choice(style, models_dir)
    model_path = choice.path
    device = torch_device(o.device)
    stylizer = Stylizer(model_path, backend=o.backend, device=str(device) if device.type == "cuda" else "cpu")
    meta = stylizer.metadata
    if choice.weights is not None:  # a multi-style model's style (or mix): its painting(s)
        stylizer = stylizer.with_style(choice.weights, choice.name)
        paintings = {r["name"]: r.get("painting", "") for r in stylizer.styles}
        meta = {**meta, "style_image": ",".join(paintings[n] for n in choice.weights)}
    check_style_image(meta, style_image, o.allow_style_mismatch)
    style_size = int(meta.get("style_size") or o.size)
    style_arr = load_image(style_image, style_size)
    content_arrs = [(Path(c), load_image(c, int(o.size))) for c in contents]  # all read before any work
    out_dir = Path(out_dir)
    if o.reuse and Path(o.reuse).resolve() in (out_dir.resolve(), (out_dir / "report.json").resolve()):
        raise UserError(f"--reuse: {o.reuse} is the output folder itself; write the new report elsewhere")
    check_report_folder(out_dir, o.overwrite)
    # A failed run (a write error, a bad model output...) removes what it wrote.
    with RunOutputs() as outputs:
        outputs.folder(out_dir)
        return _run(content_arrs, style_arr, style_image, stylizer, model_path, iterations, device, o, out_dir, outputs)


def _run(
    content_arrs, style_arr, style_image, stylizer: Stylizer, model_path, iterations, device, o: CompareOptions, out_dir: Path, outputs: RunOutputs
) -> dict:
    """Both methods on every image, every output scored and saved; the report written last."""
    from stylecast.optimization.compare_report import draw_grid, draw_loss_plot, markdown_report

    meta = stylizer.metadata
    evaluator = Evaluator(meta, style_arr, device)
    reused = load_reusable(o.reuse, evaluator.settings(), o, style_image, iterations) if o.reuse else None
    gatys = GatysOptions(
        size=int(o.size),
        style_size=int(meta.get("style_size") or o.size),
        iterations=iterations[-1],
        optimizer="lbfgs",
        content_weight=evaluator.loss.content_weight,
        style_weight=evaluator.loss.style_weight,
        tv_weight=evaluator.loss.tv_weight,
        content_layers=meta["content_layers"],
        style_layers=meta["style_layers"],
        pooling=evaluator.loss.vgg.pooling,
        vgg_weights=meta.get("vgg_weights") or "caffe",
        init=o.init,
        seed=o.seed,
        device=str(device),
        progress=o.progress,
    )
    rows, tiles = [], []
    used_names: set[str] = set()
    for path, content in tqdm(content_arrs, desc="compare", disable=not o.progress, leave=False):
        stem = path.stem
        while stem in used_names:
            stem += "_"
        used_names.add(stem)
        row, tile = _compare_one(path.name, stem, content, style_arr, stylizer, evaluator, gatys, iterations, o.repeats, out_dir, outputs, reused)
        rows.append(row)
        tiles.append(tile)

    report = _summarize(rows, meta, model_path, style_image, o, evaluator.settings(), stylizer)
    outputs.write_bytes(out_dir / "report.json", (json.dumps(report, indent=2) + "\n").encode())
    outputs.write_bytes(out_dir / "report.md", markdown_report(report).encode())
    save_image(draw_grid(tiles, style_arr, iterations), out_dir / "grid.png", outputs=outputs)
    save_image(draw_loss_plot(report), out_dir / "loss_vs_time.png", outputs=outputs)
    return report


def _slow_run(content, style_arr, gatys: GatysOptions, evaluator: Evaluator, iterations: list[int]) -> tuple[list[dict], dict[int, np.ndarray]]:
    """The optimizer's per-iteration curve and its image at each requested iteration."""
    snapshots: dict[int, np.ndarray] = {}

    def keep(step: Step) -> None:
        if step.iteration in iterations and step.iteration not in snapshots:
            snapshots[step.iteration] = step.image.detach().float().cpu().clamp(0, 1)[0].permute(1, 2, 0).numpy().copy()

    result = optimize(content, style_arr, gatys, callbacks=[keep], vgg=evaluator.loss.vgg)
    return [{"iteration": r["iteration"], "seconds": r["time"], "total": r["total"]} for r in result.history], snapshots


def _compare_one(name, stem, content, style_arr, stylizer, evaluator, gatys, iterations, repeats, out_dir: Path, outputs: RunOutputs, reused=None):
    """One photo: the net (timed), the optimizer's checkpoints (run, or reused), all scored -> (report row, grid tile)."""
    fast_img, fast_s = _time_fast(stylizer, content, repeats)
    fast_img = as_saved(fast_img)
    save_image(fast_img, out_dir / f"{stem}.fast.png", outputs=outputs)
    fast_losses = evaluator(fast_img, content)
    if reused is not None:
        curve, snapshots = _reused_slow(*reused, Path(name), iterations)
    else:
        curve, snapshots = _slow_run(content, style_arr, gatys, evaluator, iterations)
    slow = []
    for k in iterations:
        if k not in snapshots:
            continue  # interrupted or stopped early
        img = as_saved(snapshots[k])
        save_image(img, out_dir / f"{stem}.slow{k:04d}.png", outputs=outputs)
        at = next((r for r in curve if r["iteration"] == k), None)
        slow.append({"iterations": k, "seconds": at["seconds"] if at else None, "losses": evaluator(img, content)})
    match = first_match(curve, fast_losses["total"])
    row = {
        "name": name,
        "size": list(content.shape[:2]),
        "fast": {"seconds": fast_s, "losses": fast_losses, "file": f"{stem}.fast.png"},
        "slow": slow,
        "curve": curve,
        "match_iteration": match["iteration"] if match else None,
        "match_seconds": match["seconds"] if match else None,
        # unmatched: the ratio is a lower bound (the optimizer had not caught up at its last step)
        "speedup_at_equal_loss": (match or curve[-1])["seconds"] / fast_s if fast_s > 0 else None,
        "speedup_is_lower_bound": match is None,
    }
    return row, (name, content, fast_img, [(s["iterations"], as_saved(snapshots[s["iterations"]])) for s in slow])


def _summarize(rows, meta, model_path, style_image, o: CompareOptions, settings, stylizer) -> dict:
    matched = [r["match_iteration"] for r in rows if r["match_iteration"] is not None]
    speedups = [r["speedup_at_equal_loss"] for r in rows if r["speedup_at_equal_loss"] and not r["speedup_is_lower_bound"]]
    return {
        "schema": SCHEMA_VERSION,
        "model": {
            "file": model_path.name,
            "style_name": meta.get("style_name"),
            "recipe": meta.get("recipe"),
            "steps": meta.get("steps"),
            "backend": stylizer.backend,
            "providers": stylizer.providers,
        },
        "style_image": style_image.name,
        "options": {
            "size": o.size,
            "iterations": sorted({int(k) for k in o.iterations}),
            "init": o.init,
            "device": o.device,
            "repeats": o.repeats,
            "seed": o.seed,
            "reused_optimizer_runs_from": str(o.reuse) if o.reuse else None,
        },
        "losses": settings,
        "machine": machine_info(torch.cuda.get_device_name(0) if torch.cuda.is_available() else None),
        "images": rows,
        "summary": {
            "images": len(rows),
            "matched": len(matched),
            "mean_match_iteration": statistics.mean(matched) if matched else None,
            "median_match_iteration": statistics.median(matched) if matched else None,
            "mean_fast_seconds": statistics.mean(r["fast"]["seconds"] for r in rows),
            "mean_fast_total": statistics.mean(r["fast"]["losses"]["total"] for r in rows),
            "mean_speedup_at_equal_loss": statistics.mean(speedups) if speedups else None,
            "mean_slow_seconds_per_iteration": statistics.mean(r["curve"][-1]["seconds"] / max(1, r["curve"][-1]["iteration"]) for r in rows),
        },
    }


# --------------------------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="stylecast compare",
        description="Feed-forward net vs the slow Gatys optimizer on the same images and losses "
        "(Johnson et al. 2016, Table 1 / Fig. 5). Writes report.json, report.md, grid.png and "
        "loss_vs_time.png to the output folder.",
    )
    p.add_argument("contents", nargs="+", metavar="CONTENT", help="content images")
    p.add_argument("--style", required=True, help="style name in --models-dir, or an .onnx file")
    p.add_argument("--style-image", required=True, help="the painting the model was trained on (targets of the style loss)")
    p.add_argument("-o", "--output", required=True, help="report folder (created)")
    p.add_argument("--models-dir", default=None, help=f"where style names are looked up (default: {MODELS_DIR_RULE})")
    p.add_argument("--size", type=int, default=CompareOptions.size, help="longer side of each image (default: 256)")
    p.add_argument(
        "--iterations", default=",".join(map(str, DEFAULT_ITERATIONS)), help="slow-optimizer checkpoints, comma-separated (default: 50,100,200,300,500)"
    )
    p.add_argument(
        "--init", choices=("noise", "content"), default=CompareOptions.init, help="slow optimizer's starting image (default: noise, as in the paper)"
    )
    add_device(p, help=f"torch device for the VGG and the optimizer: {DEVICE_HELP}")
    p.add_argument("--backend", choices=("ort", "openvino", "auto"), default="ort", help="runtime of the fast net (default: ort)")
    p.add_argument("--repeats", type=int, default=CompareOptions.repeats, help="timed runs of the fast net (median; default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--allow-style-mismatch", action="store_true", help="compare even if the style image is not the one the model records")
    add_force(p, "an earlier report in the output folder (its files are removed first)")
    add_quiet(p, "--no-progress")
    p.add_argument(
        "--reuse",
        metavar="DIR",
        help="take the optimizer's runs from an earlier compare folder with the same losses, "
        "photos, size, --init and --seed instead of running it again (for several nets of one objective)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        iterations = [int(x) for x in args.iterations.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--iterations must be comma-separated integers, got {args.iterations!r}") from None
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    report = compare(
        args.contents,
        args.style,
        args.style_image,
        args.output,
        CompareOptions(
            size=args.size,
            iterations=iterations,
            init=args.init,
            device=args.device,
            backend=args.backend,
            repeats=args.repeats,
            seed=args.seed,
            allow_style_mismatch=args.allow_style_mismatch,
            overwrite=args.force,
            progress=not args.quiet,
            reuse=args.reuse,
        ),
        models_dir=args.models_dir,
    )
    s = report["summary"]
    match = f"{s['mean_match_iteration']:.0f}" if s["mean_match_iteration"] is not None else "not reached"
    speed = f"{s['mean_speedup_at_equal_loss']:.0f}x" if s["mean_speedup_at_equal_loss"] else "n/a"
    print(
        f"{s['images']} image(s) at {args.size}px: net {s['mean_fast_seconds'] * 1000:.0f} ms/image; "
        f"L-BFGS reaches the net's loss at iteration {match} on average ({s['matched']}/{s['images']} matched); "
        f"speed ratio at equal loss {speed}. Report: {Path(args.output) / 'report.md'}"
    )
    return 0
