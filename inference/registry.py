"""Styles by name: the `.onnx` files found in a models folder (default `checkpoints/`).

A name is a file stem found by listing the folder, never a path taken from a user: `get("../x")`
is an unknown name like any other. Stylizers are built once per name and reused; a file that
changed on disk is picked up by `reload(name)`, which keeps the old model if the new one is bad.

Every model is checked when it is built (model_check.check_model: one small forward pass; its
output must have the input's shape, be finite and in range). `reload` is the one place that decides
whether a new file replaces a loaded model: only once it has loaded, passed that check and the
caller's `prepare` (the server's warm-up); on any failure the old model stays cached and serving.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable

from stylecast.inference.backends import read_model_info
from stylecast.inference.model_check import check_model
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

    def _build(self, name: str, prepare: Callable[[Stylizer], None] | None) -> Stylizer:
        stylizer = Stylizer(self.path(name), **self.stylizer_options)
        check_model(stylizer)
        if prepare is not None:
            prepare(stylizer)
        return stylizer

    def get(self, name: str) -> Stylizer:
        """The Stylizer for `name`, built (and checked) on first use and cached."""
        self.path(name)
        with self._lock:
            hit = self._stylizers.get(name)
            if hit is not None:
                return hit
            stylizer = self._build(name, None)
            self._stylizers[name] = stylizer
            return stylizer

    def reload(self, name: str, prepare: Callable[[Stylizer], None] | None = None) -> Stylizer:
        """Rebuild `name` from its file now, check it, run `prepare(stylizer)` (e.g. a warm-up that
        may raise), and only then replace the cached one. If any of it fails the exception
        propagates and the previously loaded Stylizer (if any) stays cached and serving."""
        stylizer = self._build(name, prepare)
        with self._lock:
            self._stylizers[name] = stylizer
            self._info.pop(name, None)
        return stylizer

    def cached(self, name: str) -> Stylizer | None:
        """The Stylizer loaded for `name`, without building one."""
        with self._lock:
            return self._stylizers.get(name)

    def forget(self, name: str) -> None:
        """Drop the cached Stylizer of a style whose file is gone."""
        with self._lock:
            self._stylizers.pop(name, None)
            self._info.pop(name, None)

    def loaded(self) -> list[str]:
        with self._lock:
            return sorted(self._stylizers)
