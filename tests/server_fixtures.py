"""Helpers for the server and page tests: tiny test styles and a real `stylecast serve` process.

The styles are conftest's `textured_net(width=0.25, residual_blocks=1)` (random weights whose
output depends on the input and differs between seeds), exported with
`stylecast.training.export.export_onnx` (the legacy exporter: ~1 s instead of ~7 s for the dynamo one, and
the server does not care which wrote the file).

The server runs as a subprocess under a meta-path hook that refuses torch, lightning, `training`
and `losses`, and writes the names of any such modules it holds to a file when it exits.
"""

from __future__ import annotations

import io
import json
import os
import queue
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
# The page tests' browser: Debian's chromium driven by Playwright (no browser download); the fake
# camera is a moving test pattern.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
FORBIDDEN = ("torch", "torchvision", "lightning", "pytorch_lightning", "training", "losses")

# Runs `stylecast serve` with torch & co. unimportable; at exit, dumps forbidden modules it holds.
LAUNCHER = f"""
import atexit, json, os, sys
FORBIDDEN = {FORBIDDEN!r}
class _Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ImportError("the server must not import " + name)
        return None
sys.meta_path.insert(0, _Refuse())
def _dump():
    held = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
    with open(os.environ["STYLECAST_TEST_MODULES"], "w") as f:
        json.dump(held, f)
atexit.register(_dump)
from stylecast.cli import main
sys.exit(main(["serve"] + sys.argv[1:]))
"""

METADATA = {
    "style_image": "random.jpg",
    "recipe": "test-random-init",
    "steps": "0",
    "content_weight": "1.0",
    "style_weight": "1.0",
    "tv_weight": "0.0",
    "content_layers": "relu2_2:1.0",
    "style_layers": "relu1_2:1.0,relu2_2:1.0",
    # The graph is a quarter-width Johnson net; the metadata files it as the tiny variant so that the
    # listing badges these styles as the webcam's real-time nets (the server reads `architecture`
    # for that badge only: inference/server_browser.is_realtime).
    "architecture": "TransformerNet(width=0.25, residual_blocks=1, variant=tiny)",
}


def export_tiny_style(path: Path, seed: int) -> Path:
    from conftest import textured_net
    from stylecast.training.export import export_onnx

    return export_onnx(textured_net(0.25, 1, seed), path, {**METADATA, "style_name": path.stem}, exporter="legacy")


_MODELS: dict[str, Path] = {}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """Folder with alpha.onnx and beta.onnx; exported once per session for every test module."""
    if "dir" not in _MODELS:
        folder = tmp_path_factory.mktemp("models")
        export_tiny_style(folder / "alpha.onnx", seed=1)
        export_tiny_style(folder / "beta.onnx", seed=2)
        _MODELS["dir"] = folder
    return _MODELS["dir"]


# --------------------------------------------------------------------------------------------
# Images


def to_uint8(arr: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)


def encode(img: Image.Image | np.ndarray, fmt: str = "PNG", **kwargs) -> bytes:
    if isinstance(img, np.ndarray):
        img = Image.fromarray(to_uint8(img) if img.dtype != np.uint8 else img)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header declares width x height (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    idat = zlib.compress(b"\x00" * (min(width, 64) + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


# --------------------------------------------------------------------------------------------
# The server process


class ServerProcess:
    """`stylecast serve --port 0 ...` in a subprocess; `.url` once it prints it, ready on start()."""

    def __init__(self, models_dir: Path, workdir: Path, *args: str, env: dict[str, str] | None = None):
        self.models_dir, self.workdir, self.args = Path(models_dir), Path(workdir), list(args)
        self.env = dict(os.environ)
        self.env.pop("STYLECAST_TOKEN", None)
        self.env.update(env or {})
        self.env["STYLECAST_TEST_MODULES"] = str(self.workdir / "modules.json")
        self.env["PYTHONPATH"] = str(ROOT) + os.pathsep + self.env.get("PYTHONPATH", "")
        self.log_path = self.workdir / "server.log"
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 90.0) -> "ServerProcess":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        cmd = [sys.executable, "-c", LAUNCHER, "--models-dir", str(self.models_dir), "--port", "0", *self.args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=self._log, text=True)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True).start()
        end = time.monotonic() + timeout
        while not self.url:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
                if time.monotonic() > end:
                    raise RuntimeError(f"server printed no URL in {timeout} s:\n{self.log()}")
                continue
            m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            if m:
                self.url = m.group(1)
        while time.monotonic() < end:
            try:
                if httpx.get(self.url + "readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.1)
        raise RuntimeError(f"server not ready in {timeout} s:\n{self.log()}")

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "v1/stream"

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def access_records(self) -> list[dict]:
        out = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def held_forbidden_modules(self) -> list[str]:
        return json.loads((self.workdir / "modules.json").read_text())

    def metric(self, name: str, headers: dict | None = None, **labels: str) -> float:
        text = httpx.get(self.url + "metrics", headers=headers or {}, timeout=10).text
        return parse_metric(text, name, **labels)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def parse_metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 if none)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.fullmatch(r"([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(4))
    return total
