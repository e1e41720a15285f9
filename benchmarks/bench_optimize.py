"""Slow Gatys optimizer: seconds per iteration, stylecast vs the peer `pastiche` (PyPI), side by side.

Same content and style files, same output size (longer side), same iteration counts, same
optimizer, in one process on one machine; runs alternate between the two tools. pastiche uses the
same Caffe VGG19 weights (its file is where ours come from) but its own loss weights (equal style
layers, content weight 0.01), its own Adam step (1.0 on 0-255 pixels = 0.004 on [0, 1]; ours 0.02)
and no clamping, so each final image is scored with BOTH objectives: stylecast's
(`PerceptualLoss` with the `optimize` defaults) and pastiche's (`PasticheArtist._calc_loss`).

s/iter is the median over iterations 1..N-1 of the wall time of one optimizer step (forward +
backward + update); the first iteration (warm-up) is left out. The machine is shared, so medians.

    python -m benchmarks --only optimize           # quick: a few minutes on 2 cores
    python -m benchmarks --only optimize --full    # 100 / 50 iterations
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import ROOT, machine_info, machine_line, markdown_table, update_section, write_json

SHARED = ROOT.parent / "shared" / "data"
SAMPLES = ROOT / "stylecast" / "samples"
QUICK_PLAN = {256: 12, 512: 6}  # output's longer side -> iterations per run
FULL_PLAN = {256: 100, 512: 50}
CAFFE_MEAN_BGR = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)


def _images() -> tuple[Path, Path]:
    cat, starry = SHARED / "content" / "chelsea_cat.jpg", SHARED / "styles" / "starry_night.jpg"
    if cat.exists() and starry.exists():
        return cat, starry
    return SAMPLES / "chelsea.jpg", SAMPLES / "swirls.png"


def _pastiche_to_rgb01(x: torch.Tensor) -> torch.Tensor:
    """pastiche's pixels (BGR, 0-255, mean-subtracted) -> RGB [0, 1] (clamped, as it saves them)."""
    return ((x.detach() + CAFFE_MEAN_BGR).flip(1) / 255.0).clamp(0, 1)


def _rgb01_to_pastiche(x: torch.Tensor) -> torch.Tensor:
    return x.flip(1) * 255.0 - CAFFE_MEAN_BGR


def _now() -> tuple[float, float]:
    """(wall, CPU) seconds: CPU time of all this process's threads is less disturbed by other
    processes on a shared machine than wall time; uncontended, wall ~ CPU / threads."""
    return time.perf_counter(), time.process_time()


def _deltas(stamps: list[tuple[float, float]]) -> dict[str, list[float]]:
    return {
        "wall": [b[0] - a[0] for a, b in zip(stamps, stamps[1:])],
        "cpu": [b[1] - a[1] for a, b in zip(stamps, stamps[1:])],
    }


def run_pastiche(content: Path, style: Path, size: int, optimizer: str, iterations: int):
    from pastiche.pastiche import PasticheArtist

    artist = PasticheArtist(str(content), [str(style)], optimizer=optimizer, device="cpu", size=size, style_size=size)
    stamps = [_now()]
    for _ in range(iterations):
        artist.draw()  # evaluates x_i (forward + backward), then steps
        stamps.append(_now())
    return artist, _pastiche_to_rgb01(artist.pastiche), _deltas(stamps[1:])  # the first call warms up


def run_stylecast(content: Path, style: Path, size: int, optimizer: str, iterations: int, vgg, bf16: bool = False):
    from stylecast.optimization.gatys import optimize

    stamps: list[tuple[float, float]] = []
    res = optimize(
        content,
        style,
        vgg=vgg,
        size=size,
        iterations=iterations,
        optimizer=optimizer,
        bf16=bf16,
        progress=False,
        callbacks=[lambda step: stamps.append(_now())],
    )
    # stamps[i] = end of evaluation i (x_i); stamps[i+1] - stamps[i] = one step + the next forward
    # and backward, for i < N-1 (evaluation N is forward-only); evaluation 0 is the warm-up
    image = torch.from_numpy(res.image).permute(2, 0, 1)[None]
    return res, image, _deltas(stamps[:iterations])


def our_loss(content: Path, style: Path, size: int, vgg):
    from stylecast.optimization.gatys import GatysOptions, build_loss, prepare_scale
    from stylecast.images import load_image

    opts = GatysOptions(size=size)
    _, target, styles = prepare_scale(load_image(content), [load_image(style)], size, opts)
    loss = build_loss(target, styles, opts, vgg=vgg)

    def score(image: torch.Tensor) -> float:
        if image.shape[-2:] != target.shape[:2]:
            image = torch.nn.functional.interpolate(image, size=target.shape[:2], mode="bilinear", align_corners=False)
        with torch.no_grad():
            return float(loss(image.float())["total"])

    return score


def pastiche_score(artist, image: torch.Tensor) -> float:
    """pastiche's own objective on an RGB [0, 1] image (resized to its pastiche's size if needed)."""
    h, w = artist.pastiche.shape[-2:]
    if image.shape[-2:] != (h, w):
        image = torch.nn.functional.interpolate(image, size=(h, w), mode="bilinear", align_corners=False)
    saved = artist.pastiche.data.clone()
    artist.pastiche.data = _rgb01_to_pastiche(image)
    with torch.no_grad():
        value = float(artist._calc_loss())
    artist.pastiche.data = saved
    return value


def run(quick: bool = True) -> dict:
    from stylecast.losses.vgg import load_vgg

    content, style = _images()
    plan = QUICK_PLAN if quick else FULL_PLAN
    vgg = load_vgg("caffe")
    load_before = os.getloadavg()[0]
    results = []
    for size, iters in plan.items():
        score_ours = our_loss(content, style, size, vgg)
        for optimizer in ("lbfgs", "adam"):
            print(f"optimize bench: {size} px, {optimizer}, {iters} iterations", file=sys.stderr)
            artist, p_img, p_times = run_pastiche(content, style, size, optimizer, iters)
            runs = [("pastiche 1.6.0", p_img, p_times, None)]
            res, s_img, s_times = run_stylecast(content, style, size, optimizer, iters, vgg)
            runs.append(("stylecast", s_img, s_times, res))
            if optimizer == "lbfgs":
                res16, b_img, b_times = run_stylecast(content, style, size, optimizer, iters, vgg, bf16=True)
                runs.append(("stylecast --bf16", b_img, b_times, res16))
            base_wall, base_cpu = statistics.median(p_times["wall"]), statistics.median(p_times["cpu"])
            for tool, img, times, res_ in runs:
                entry = {
                    "size": size,
                    "hw": list(img.shape[-2:]),
                    "optimizer": optimizer,
                    "tool": tool,
                    "iterations": iters,
                    "s_per_iter": statistics.median(times["wall"]),
                    "s_per_iter_mean": float(np.mean(times["wall"])),
                    "cpu_s_per_iter": statistics.median(times["cpu"]),
                    "threads": torch.get_num_threads(),
                    "final_stylecast_loss": score_ours(img),
                    "final_pastiche_loss": pastiche_score(artist, img),
                }
                entry["speedup_vs_pastiche"] = base_wall / entry["s_per_iter"]
                entry["cpu_speedup_vs_pastiche"] = base_cpu / entry["cpu_s_per_iter"]
                if res_ is not None:
                    entry["final_terms"] = res_.losses
                results.append(entry)
            del artist
    load = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    payload = {
        "machine": machine_info(),
        "load_average_1min_start_end": load,
        "threads": torch.get_num_threads(),
        "content": str(content.relative_to(ROOT.parent)),
        "style": str(style.relative_to(ROOT.parent)),
        "quick": quick,
        "results": results,
    }
    write_json("optimize", payload)
    update_section("optimize", "Slow Gatys optimizer: stylecast vs pastiche", render(payload))
    return payload


def render(payload: dict) -> str:
    """BENCHMARKS.md section from a results payload (also: re-render a saved results/optimize.json)."""
    rows = [
        [
            f"{r['hw'][1]}x{r['hw'][0]}",
            r["optimizer"],
            r["tool"],
            r["iterations"],
            r["s_per_iter"],
            r["cpu_s_per_iter"],
            r["cpu_speedup_vs_pastiche"],
            f"{r['final_stylecast_loss']:.3g}",
            f"{r['final_pastiche_loss']:.3g}",
        ]
        for r in payload["results"]
    ]
    load, threads = payload["load_average_1min_start_end"], payload["threads"]
    return "\n".join(
        [
            f"Measured {machine_line(payload['machine'])}; `python -m benchmarks --only optimize{'' if payload['quick'] else ' --full'}`"
            f" with {threads} torch thread(s).",
            f"Content `{Path(payload['content']).name}`, style `{Path(payload['style']).name}`, style image at the output's size, "
            "both tools in one process, alternating. s/iter = median wall time of one optimizer step (forward + backward + "
            "update), first step left out; CPU s/iter = the same in CPU seconds of all threads, less disturbed by other jobs "
            f"on this shared machine (1-minute load average at start/end: {load[0]} / {load[1]} on 2 cores), so the speed "
            "ratio is taken from it. Final losses: each tool's final image (clamped, as saved) scored with stylecast's "
            "default objective and with pastiche's own; lower is better, and each tool minimizes only its own (own "
            "layer weights, own Adam step), so compare within a column.",
            "",
            markdown_table(
                [
                    "output",
                    "optimizer",
                    "tool",
                    "iterations",
                    "s/iter (wall)",
                    "CPU s/iter",
                    "speed vs pastiche (CPU)",
                    "final loss (stylecast's)",
                    "final loss (pastiche's)",
                ],
                rows,
            ),
        ]
    )


if __name__ == "__main__":
    run(quick="--full" not in sys.argv)
