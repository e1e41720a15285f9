"""Shared by every benchmark script: machine facts, JSON results, BENCHMARKS.md sections.

Each script owns one section of BENCHMARKS.md, delimited by HTML comments, and refreshes it in
place, so re-running a benchmark replaces its rows instead of piling them up.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from stylecast import machine

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"


def machine_info() -> dict:
    """stylecast.machine.machine_info with the GPU's name when torch is installed and sees one."""
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return machine.machine_info(gpu)


def machine_line(info: dict) -> str:
    vers = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    gpu = f", GPU {info['gpu']}" if info.get("gpu") else ", no GPU"
    return f"{info['date']} · {info['cpu']} ({info['cores']} cores{gpu}) · Python {info['python']} · {vers}"


def write_json(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def markdown_table(header: list[str], rows: list[list]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def update_section(key: str, title: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the section `key` of BENCHMARKS.md with `## title` + body."""
    begin, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    block = f"{begin}\n## {title}\n\n{body.strip()}\n{end}"
    text = (
        path.read_text()
        if path.exists()
        else "# Benchmarks\n\nMeasured by the scripts in `benchmarks/` (`make bench`); each section is refreshed by its script.\n"
    )
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


class Timer:
    """Wall time of a block: `with Timer() as t: ...; t.seconds`."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False
