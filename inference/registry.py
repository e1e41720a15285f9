"""Styles by name: the `.onnx` files found in a models folder, and which folder that is.

A name is a file stem found by listing the folder, never a path taken from a user: `get("../x")`
is an unknown name like any other. Stylizers are built once per name and reused; a file that
changed on disk is picked up by `reload(name)`, which keeps the old model if the new one is bad.

Every command that takes a style (`stylize`, `styles`, `serve`, `compare`, the demo) finds its
models folder with `resolve_models_dir` and turns what the user typed into a model file with
`resolve_style`: one rule, here.

Every model is checked when it is built (stylizer.check_model, inside Stylizer: one small forward pass; its
output must have the input's shape, be finite and in range). `reload` is the one place that decides
whether a new file replaces a loaded model: only once it has loaded, passed that check and the
caller's `prepare` (the server's warm-up); on any failure the old model stays cached and serving.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any, Callable

from stylecast.inference.backends import read_model_info
from stylecast.inference.stylizer import Stylizer
from stylecast.errors import UserError

MODELS_ENV = "STYLECAST_MODELS"
LOCAL_MODELS_DIR = "checkpoints"
# The shipped styles: the repository's checkpoints/ folder, installed as this package (pyproject's
# package-dir), so a wheel carries them and an editable install finds them in the checkout.
PACKAGED_MODELS = "stylecast.checkpoints"
MODELS_DIR_RULE = f"--models-dir, else ${MODELS_ENV}, else ./{LOCAL_MODELS_DIR} if it holds .onnx files, else the shipped styles"


def packaged_models_dir() -> Path:
    """The folder of the styles installed with the package."""
    spec = importlib.util.find_spec(PACKAGED_MODELS)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"this installation lacks {PACKAGED_MODELS} (the shipped styles); reinstall stylecast")
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_models_dir(models_dir: str | os.PathLike | None = None) -> Path:
    """Where styles are looked up: `models_dir` (--models-dir) when given, else $STYLECAST_MODELS
    when set, else ./checkpoints when it holds .onnx files, else the shipped styles.

    ./checkpoints counts only with .onnx files in it: Lightning and most training code write
    `checkpoints/` folders of .ckpt files, which must not hide the shipped styles.
    """
    if models_dir is not None and str(models_dir) != "":
        return Path(models_dir)
    env = os.environ.get(MODELS_ENV)
    if env:
        return Path(env)
    local = Path(LOCAL_MODELS_DIR)
    if local.is_dir() and any(p.suffix.lower() == ".onnx" for p in local.iterdir()):
        return local
    return packaged_models_dir()


def is_model_path(style: str | os.PathLike) -> bool:
    """What the user typed names a file (ends in .onnx or has a folder in it), not a style name."""
    text = os.fspath(style)
    return text.lower().endswith(".onnx") or os.sep in text or "/" in text


def resolve_style(style: str | os.PathLike, models_dir: str | os.PathLike | None = None) -> Path:
    """The model file for `style`: a path (see is_model_path) as given, else the style of that
    name in the resolved models folder. UserError when neither exists."""
    if is_model_path(style):
        path = Path(style)
        if not path.is_file():
            raise UserError(f"{style}: no such model file")
        return path
    return StyleRegistry(resolve_models_dir(models_dir)).path(os.fspath(style))


class StyleRegistry:
    """models_dir: folder of `<name>.onnx` files (None: resolve_models_dir()). stylizer_options:
    passed to every Stylizer (device, backend, threads, precision)."""

    def __init__(self, models_dir: str | os.PathLike | None = None, **stylizer_options: Any):
        self.models_dir = resolve_models_dir(models_dir)
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
        stylizer = Stylizer(self.path(name), **self.stylizer_options)  # checks the model's output (stylizer.check_model)
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
