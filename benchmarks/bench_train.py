"""Training throughput of `stylecast train`: images/s at 128² and 256², fp32 vs bf16 autocast.

One training step is what StyleTransferModule does per batch: transformer forward, VGG19 forward
on the output (style + content layers) and on the photo (content layer), backward, Adam step.
Batch 4, channels_last, Johnson's layers. All rows are measured in the same run, one after the
other, so their ratios compare like with like; the load average is recorded because the CPU may be
shared. On a CUDA machine the same rows run on the GPU, plus torch.compile.

    python -m benchmarks --only train          # quick: full net only
    python -m benchmarks --only train --full   # + the slim net, more steps
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import torch

from benchmarks.common import machine_info, machine_line, markdown_table, update_section, write_json

BATCH = 4


def _style() -> torch.Tensor:
    # A synthetic "painting" (diagonal colour stripes): the timing does not depend on the style.
    yy, xx = torch.meshgrid(torch.arange(256), torch.arange(256), indexing="ij")
    band = ((yy + xx) // 6) % 3
    palette = torch.tensor([[0.9, 0.2, 0.1], [0.1, 0.3, 0.9], [0.95, 0.9, 0.2]])
    return palette[band].permute(2, 0, 1).unsqueeze(0)


def step_times(size: int, width: float, blocks: int, precision: str, device: str, steps: int, compile: bool = False) -> list[float]:
    from stylecast.training.module import StyleTransferModule

    torch.manual_seed(0)
    module = StyleTransferModule(image_size=size, width=width, residual_blocks=blocks, compile=False)
    module.loss.set_style(_style())
    module = module.to(device).to(memory_format=torch.channels_last)
    if compile:
        module.net.compile()
        module.loss.vgg.compile()
    optimizer = torch.optim.Adam(module.net.parameters(), lr=1e-3)
    x = torch.rand(BATCH, 3, size, size, device=device)
    times = []
    for _ in range(steps + (3 if compile else 1)):  # the first step(s) warm up (and compile)
        start = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = module._losses(x)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times[(3 if compile else 1) :]


def run(quick: bool = True) -> dict:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    nets = [("full (1.0, 5 blocks)", 1.0, 5)] + ([] if quick else [("slim (0.5, 3 blocks)", 0.5, 3)])
    steps = (3 if quick else 8) if device == "cpu" else (10 if quick else 50)
    variants = [("fp32", False), ("bf16", False)] + ([("bf16", True)] if device == "cuda" else [])
    info = machine_info()
    load_before = os.getloadavg()
    rows, results = [], []
    for net_name, width, blocks in nets:
        for size in (128, 256):
            for precision, compiled in variants:
                times = step_times(size, width, blocks, precision, device, steps, compile=compiled)
                median = statistics.median(times)
                label = precision + (" + compile" if compiled else "")
                result = {"net": net_name, "size": size, "precision": label, "device": device, "batch": BATCH,
                          "step_s_median": median, "step_s_min": min(times), "images_per_s": BATCH / median, "steps": len(times)}  # fmt: skip
                results.append(result)
                print(f"{net_name} {size}² {label}: {median:.3f} s/step, {BATCH / median:.2f} img/s", file=sys.stderr)
    load_after = os.getloadavg()
    for net_name in dict.fromkeys(r["net"] for r in results):
        for size in (128, 256):
            subset = [r for r in results if r["net"] == net_name and r["size"] == size]
            fp32 = next(r for r in subset if r["precision"] == "fp32")
            for r in subset:
                rows.append([net_name, f"{size}²", r["precision"], f"{r['step_s_median']:.2f}", f"{r['images_per_s']:.2f}",
                             f"{fp32['step_s_median'] / r['step_s_median']:.2f}x"])  # fmt: skip
    payload = {"machine": info, "device": device, "load_avg_before": load_before, "load_avg_after": load_after, "results": results}
    write_json("train", payload)
    body = (
        f"{machine_line(info)} · device {device} · batch {BATCH}, channels_last, Adam, Johnson's VGG19 layers · "
        f"median of {steps} steps after warm-up · 1-min load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
        "(a shared machine: absolute figures vary with the load; ratios within this table are same-run)\n\n"
        + markdown_table(["net", "size", "precision", "s/step", "images/s", "speed-up vs fp32"], rows)
    )
    update_section("train", "Training throughput (`stylecast train`)", body)
    return payload


if __name__ == "__main__":  # pragma: no cover
    run(quick="--full" not in sys.argv)
