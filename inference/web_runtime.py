"""The in-browser runtime of the web page: onnxruntime-web's files, served by our server from this
package (never from a CDN), so the page can run a style network on the user's device.

`make web-runtime` (scripts/web_runtime.py) runs `npm ci` on the pinned package.json +
package-lock.json and copies FILES from node_modules/onnxruntime-web/dist into inference/ort_web/
(RUNTIME_DIR), with a manifest (runtime.json: version, bytes and sha256 of every file) written
last. The wheel carries them as package data (`stylecast.inference.ort_web`). Without them (npm
was unavailable) the server serves everything else and tells the page why it cannot run in the
browser (`WebRuntime.reason`).

Two bundles; the page loads one of them, on demand:
    webgpu  ort.webgpu.min.mjs + ort-wasm-simd-threaded.asyncify.{mjs,wasm}: ONNX Runtime's native
            WebGPU execution provider (the JSEP one is being retired upstream); 27 MB of wasm, only
            fetched by browsers that have a WebGPU adapter
    wasm    ort.wasm.min.mjs + ort-wasm-simd-threaded.{mjs,wasm}: CPU only (SIMD; threads when the
            page is cross-origin isolated); 14 MB, half the WebGPU build's download
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger("stylecast.server")

PACKAGE = "onnxruntime-web"
RUNTIME_DIR = Path(__file__).resolve().parent / "ort_web"
MANIFEST = "runtime.json"
RUNTIME_ENV = "STYLECAST_WEB_RUNTIME"  # another folder built by scripts/web_runtime.py (tests use a missing one)
BUNDLES = {"webgpu": "ort.webgpu.min.mjs", "wasm": "ort.wasm.min.mjs"}
FILES = (
    "ort.webgpu.min.mjs",
    "ort-wasm-simd-threaded.asyncify.mjs",
    "ort-wasm-simd-threaded.asyncify.wasm",
    "ort.wasm.min.mjs",
    "ort-wasm-simd-threaded.mjs",
    "ort-wasm-simd-threaded.wasm",
)
# Module scripts must come with a JavaScript type; WebAssembly.instantiateStreaming needs application/wasm.
MEDIA_TYPES = {".mjs": "text/javascript; charset=utf-8", ".wasm": "application/wasm"}
BUILD_HINT = "`make web-runtime` builds it, with npm"


@dataclass(frozen=True)
class WebRuntime:
    """What the server can hand the page: `reason` is None when every file is there, else a
    sentence for the page (no paths: it goes into HTTP bodies)."""

    folder: Path | None
    version: str | None = None
    files: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name -> {"bytes", "sha256"}
    reason: str | None = None

    @property
    def available(self) -> bool:
        return self.reason is None

    def path(self, name: str) -> Path | None:
        """The file of that name, or None: names come from the manifest, never from a request."""
        if not self.available or not isinstance(name, str) or name not in self.files or self.folder is None:
            return None
        return self.folder / name

    def etag(self, name: str) -> str:
        return f'"sha256-{self.files[name]["sha256"]}"'

    def info(self) -> dict[str, Any]:
        """What GET /v1/styles tells the page; `base` is relative to the page."""
        if not self.available:
            return {"available": False, "reason": self.reason}
        return {
            "available": True,
            "package": PACKAGE,
            "version": self.version,
            "base": f"ort/{self.version}/",
            "bundles": dict(BUNDLES),
            "bytes": {b: self.bundle_bytes(b) for b in BUNDLES},
        }

    def bundle_bytes(self, backend: str) -> int:
        """Download size of one backend: its .mjs loader, the wasm glue and the wasm binary."""
        suffix = ".asyncify" if backend == "webgpu" else ""
        names = (BUNDLES[backend], f"ort-wasm-simd-threaded{suffix}.mjs", f"ort-wasm-simd-threaded{suffix}.wasm")
        return sum(int(self.files[n]["bytes"]) for n in names)


def resolve_runtime_dir(folder: str | os.PathLike | None = None) -> Path:
    """`folder` when given, else $STYLECAST_WEB_RUNTIME when set, else the packaged RUNTIME_DIR."""
    if folder is not None and str(folder) != "":
        return Path(folder)
    env = os.environ.get(RUNTIME_ENV)
    return Path(env) if env else RUNTIME_DIR


def load_runtime(folder: str | os.PathLike | None = None) -> WebRuntime:
    """Read and check the runtime folder's manifest: every file of FILES listed, present, of the
    listed size. A missing or incomplete runtime is not an error: the server runs without it."""
    root = resolve_runtime_dir(folder)
    try:
        manifest = json.loads((root / MANIFEST).read_text())
        version, files = str(manifest["version"]), dict(manifest["files"])
    except FileNotFoundError:
        return WebRuntime(root, reason=f"this installation has no in-browser runtime ({PACKAGE} was not built: {BUILD_HINT})")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("web runtime manifest %s unreadable: %s", root / MANIFEST, exc)
        return WebRuntime(root, reason=f"the in-browser runtime's manifest is unreadable; {BUILD_HINT}")
    for name in FILES:
        entry = files.get(name)
        try:
            ok = isinstance(entry, dict) and (root / name).stat().st_size == int(entry["bytes"])
        except (OSError, KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            log.warning("web runtime in %s: %s is missing or not the size its manifest says", root, name)
            return WebRuntime(root, version, reason=f"the in-browser runtime is incomplete ({name} is missing or damaged); {BUILD_HINT}")
    return WebRuntime(root, version, {n: files[n] for n in FILES})
