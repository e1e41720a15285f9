"""Step time of the three ways to get a new style (issue 18's "a fifth of the time" is steps × this).

- scratch: a single-style network trained from random weights (every weight's gradient);
- `--base`, `base_train styles`: only the new style's γ, β train on a frozen multi-style base (no
  weight gradients for the convolutions, but the backward pass still runs through the whole net
  to reach the first norm's γ, β);
- `--base`, `base_train all`: every weight trains, the base's styles replayed.

The steps are StyleTransferModule's own (`_style_index`, `_losses`, `configure_optimizers`, the
base rows' gradient mask) on the cpu-full shape: full net, 128² crops, batch 4, bf16 autocast,
channels_last. The three modes take turns step by step, so a change of load hits all of them alike;
the row's ratio is what multiplies the steps of a run into its time.

    python -m benchmarks --only add_style
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.common import machine_info, machine_line, markdown_table, update_section, write_json

BATCH, SIZE = 4, 128


def _painting(path: Path, seed: int) -> Path:
    # synthetic paintings (coloured stripes of different periods): the timing does not depend on the style
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:256, :256]
    band = ((yy + xx) // (4 + 3 * seed)) % 3
    Image.fromarray((rng.uniform(0, 255, (3, 3))[band]).astype(np.uint8)).save(path)
    return path


def _modules(folder: Path) -> dict:
    from stylecast.training.module import StyleTransferModule

    common = dict(image_size=SIZE, style_size=256, width=1.0, residual_blocks=5)
    a, b, c = (_painting(folder / f"{n}.png", k) for k, n in enumerate("abc"))
    base = StyleTransferModule(style_image=[str(a), str(b)], **common)
    ckpt = folder / "base.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in base.net.state_dict().items()}, "hyper_parameters": dict(base.hparams), "global_step": 0}, ckpt)
    return {
        "scratch": StyleTransferModule(style_image=str(c), **common),
        "--base, styles": StyleTransferModule(style_image=str(c), base=str(ckpt), **common),
        "--base, all": StyleTransferModule(style_image=[str(a), str(b), str(c)], base=str(ckpt), base_train="all", **common),
    }


def _stepper(module):
    from stylecast.training.styles import mask_base_rows

    module.setup("fit")
    module = module.to(memory_format=torch.channels_last)
    optimizer = module.configure_optimizers()
    x = torch.rand(BATCH, 3, SIZE, SIZE).contiguous(memory_format=torch.channels_last)
    draw = torch.arange(BATCH) * 0x9E3779B97F4A7C15 % 2**62  # a fixed, varied draw

    def step() -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = module._losses(x, style_index=module._style_index({"image": x, "draw": draw}))["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if module.hparams.base:
            mask_base_rows(module.net, module.n_base)
        optimizer.step()
        return time.perf_counter() - start

    return step


def run(quick: bool = True) -> dict:
    steps = 8 if quick else 30
    info = machine_info()
    load_before = os.getloadavg()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        steppers = {name: _stepper(m) for name, m in _modules(Path(d)).items()}
        times = {name: [] for name in steppers}
        for i in range(steps + 1):  # round robin; the first round warms up
            for name, step in steppers.items():
                t = step()
                if i:
                    times[name].append(t)
    load_after = os.getloadavg()
    results = [{"mode": name, "step_s_median": statistics.median(t), "step_s_min": min(t), "steps": len(t)} for name, t in times.items()]
    for r in results:
        print(f"{r['mode']}: {r['step_s_median']:.3f} s/step", file=sys.stderr)
    payload = {"machine": info, "load_avg_before": load_before, "load_avg_after": load_after, "batch": BATCH, "size": SIZE, "results": results}
    write_json("add_style", payload)
    write_section(payload)
    return payload


def write_section(payload: dict) -> None:
    """BENCHMARKS.md's section from a run's payload (benchmarks/results/add_style.json)."""
    results = payload["results"]
    scratch = next(r for r in results if r["mode"] == "scratch")["step_s_median"]
    rows = [[r["mode"], f"{r['step_s_median']:.3f}", f"{r['step_s_median'] / scratch:.2f}"] for r in results]
    body = (
        f"{machine_line(payload['machine'])} · full net, {payload['size']}² crops, batch {payload['batch']}, bf16 autocast, channels_last "
        f"(the cpu-full shape) · median of {results[0]['steps']} steps per mode, the modes taking turns · 1-min load average "
        f"{payload['load_avg_before'][0]:.1f} before, {payload['load_avg_after'][0]:.1f} after\n\n"
        + markdown_table(["how the new style trains", "s/step", "vs scratch"], rows)
        + '\n\nA run\'s training time is its steps × this step time; README "Many styles in one network" has the steps.'
    )
    update_section("add_style", "Adding a style: step time (`--base`)", body)


if __name__ == "__main__":  # pragma: no cover
    run(quick="--full" not in sys.argv)
