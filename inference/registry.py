"""Styles by name: the `.onnx` files found in a models folder (default `checkpoints/`).

A name is a file stem found by listing the folder, never a path taken from a user: `get("../x")`
is an unknown name like any other. Stylizers are built once per name and reused; a file that
changed on disk is picked up by `reload(name)`, which keeps the old model if the new one is bad.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from stylecast.inference.backends import read_model_info
from stylecast.inference.stylizer import Stylizer
from stylecast.errors import UserError

DEFAULT_MODELS_DIR = "checkpoints"


class StyleRegistry:
    """models_dir: folder of `<name>.onnx` files. stylizer_options: passed to every Stylizer
    (device, backend, threads, precision)."""

    def __init__(self, models_dir: str | os.PathLike = DEFAULT_MODELS_DIR, **stylizer_options: Any):
        self.models_dir = Path(models_dir)
        self.stylizer_options = stylizer_options
        self._stylizers: dict[str, Stylizer] = {}
        self._info: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.RLock()

    def _files(self) -> dict[str, Path]:
        if not self.models_dir.is_dir():
            return {}
        return {p.stem: p for p in sorted(self.models_dir.iterdir()) if p.suffix.lower() == ".onnx" and p.is_file() and not p.name.startswith(".")}

    def names(self) -> list[str]:
        """Style names (file stems), sorted; the folder is listed on every call."""
        return sorted(self._files())

    def path(self, name: str) -> Path:
        files = self._files()
        if not isinstance(name, str) or name not in files:
            known = ", ".join(sorted(files)) or f"none (no .onnx files in {self.models_dir})"
            raise UserError(f"unknown style {name!r}; known styles: {known}")
        return files[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._files()

    def info(self, name: str) -> dict[str, Any]:
        """{"name", "file", "bytes", "metadata": {...}} for one style (validated; cached by mtime)."""
        path = self.path(name)
        mtime = path.stat().st_mtime
        with self._lock:
            cached = self._info.get(name)
            if cached and cached[0] == mtime:
                return dict(cached[1])
        meta, _session = read_model_info(path)
        info = {"name": name, "file": path.name, "bytes": path.stat().st_size, "metadata": meta}
        with self._lock:
            self._info[name] = (mtime, info)
        return dict(info)

    def get(self, name: str) -> Stylizer:
        """The Stylizer for `name`, built on first use and cached."""
        path = self.path(name)
        with self._lock:
            hit = self._stylizers.get(name)
            if hit is not None:
                return hit
            stylizer = Stylizer(path, **self.stylizer_options)
            self._stylizers[name] = stylizer
            return stylizer

    def reload(self, name: str) -> Stylizer:
        """Rebuild `name` from its file now. If the file is no longer a valid model the UserError
        propagates and the previously loaded Stylizer (if any) stays cached and serving."""
        path = self.path(name)
        stylizer = Stylizer(path, **self.stylizer_options)
        with self._lock:
            self._stylizers[name] = stylizer
            self._info.pop(name, None)
        return stylizer

    def loaded(self) -> list[str]:
        with self._lock:
            return sorted(self._stylizers)
