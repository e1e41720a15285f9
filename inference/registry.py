"""Styles by name: the `.onnx` files found in a models folder, and which folder that is.

A name is a file stem found by listing the folder, never a path taken from a user: `get("../x")`
is an unknown name like any other. Stylizers are built once per name and reused; a file that
changed on disk is picked up by `reload(name)`, which keeps the old model if the new one is bad.

Every command that takes a style (`stylize`, `styles`, `serve`, `compare`, the demo) finds its
models folder with `resolve_models_dir` and turns what the user typed into a model file with
`resolve_style` (`resolve_choice` when it may be a mix): one rule, here.

A multi-style file (several styles in one network, Dumoulin et al. 2017) lists each of its styles
as `FILE/STYLE` (`painters/starry_night`); a mix of them is spelled in the grammar of mix.py
(`starry_night:0.7,great_wave:0.3`). The styles of one file share one loaded model.

Every model is checked when it is built (stylizer.check_model, inside Stylizer: one small forward pass; its
output must have the input's shape, be finite and in range). `reload` is the one place that decides
whether a new file replaces a loaded model: only once it has loaded, passed that check and the
caller's `prepare` (the server's warm-up); on any failure the old model stays cached and serving.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from stylecast.inference import mix
from stylecast.inference.backends import model_styles, read_model_info
from stylecast.inference.contract import META_PREFIX
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


@dataclass(frozen=True)
class Choice:
    """What a style spec selects: a model file, and for a multi-style file the normalized mix."""

    path: Path
    weights: dict[str, float] | None  # None: a single-style model (or a multi-style file, no style picked)
    name: str  # "starry_night", "painters/starry_night", "painters/starry_night:0.7,great_wave:0.3"


def path_spec(text: str) -> Path | None:
    """The name-or-path rule's paths: ends in .onnx, or names an existing file."""
    if text.lower().endswith(".onnx") or ((os.sep in text or "/" in text) and Path(text).is_file()):
        path = Path(text)
        if not path.is_file():
            raise UserError(f"{text}: no such model file")
        return path
    return None


def resolve_choice(style: str | os.PathLike, models_dir: str | os.PathLike | None = None) -> Choice:
    """`style` as a model file and mix: a path (ending in .onnx, or an existing file), else a name
    or mix (mix.py's grammar) in the resolved models folder. One-line UserErrors."""
    text = os.fspath(style).strip()
    path = path_spec(text)
    if path is not None:
        return Choice(path, None, path.stem)
    return StyleRegistry(resolve_models_dir(models_dir)).choose(text)


def resolve_style(style: str | os.PathLike, models_dir: str | os.PathLike | None = None) -> Path:
    """The model file for `style`: a path (see is_model_path) as given, else the style of that
    name in the resolved models folder (a multi-style file's style: that file). UserError when
    neither exists."""
    return resolve_choice(style, models_dir).path


def file_style_names(path: Path) -> list[str]:
    """The style names of a multi-style model file ([] for single-style or unreadable files: those
    are judged when they load). Reads only the metadata's style list (the onnx package; ORT without it)."""
    try:
        try:
            import onnx
        except ImportError:
            meta, _ = read_model_info(path)
        else:
            model = onnx.load(str(path), load_external_data=False)
            meta = {p.key[len(META_PREFIX) :]: p.value for p in model.metadata_props if p.key.startswith(META_PREFIX)}
        return [s["name"] for s in model_styles(meta, path)]
    except Exception:  # not a model we can read: listed under its file name, refused when loaded
        return []


class StyleRegistry:
    """models_dir: folder of `<name>.onnx` files (None: resolve_models_dir()). stylizer_options:
    passed to every Stylizer (device, backend, threads, precision)."""

    def __init__(self, models_dir: str | os.PathLike | None = None, **stylizer_options: Any):
        self.models_dir = resolve_models_dir(models_dir)
        self.stylizer_options = stylizer_options
        self._stylizers: dict[str, Stylizer] = {}
        self._info: dict[str, tuple[float, dict[str, Any]]] = {}
        self._styles: dict[Path, tuple[tuple, list[str]]] = {}  # file -> (signature, its style names)
        self._models: dict[Path, tuple[tuple, Stylizer]] = {}  # multi-style file -> (signature, loaded model)
        self._lock = threading.RLock()

    def _files(self) -> dict[str, Path]:
        if not self.models_dir.is_dir():
            return {}
        return {p.stem: p for p in sorted(self.models_dir.iterdir()) if p.suffix.lower() == ".onnx" and p.is_file() and not p.name.startswith(".")}

    @staticmethod
    def _signature(path: Path) -> tuple:
        st = path.stat()
        return (st.st_mtime_ns, st.st_size)

    def file_styles(self, path: Path) -> list[str]:
        """The style names of a multi-style file ([] otherwise), read once per version of the file."""
        signature = self._signature(path)
        with self._lock:
            cached = self._styles.get(path)
        if cached and cached[0] == signature:
            return list(cached[1])
        names = file_style_names(path)
        with self._lock:
            self._styles[path] = (signature, names)
        return list(names)

    def _entries(self) -> dict[str, tuple[Path, str | None]]:
        """name -> (file, style in it): `stem` for a single-style file, `stem/style` for each style
        of a multi-style one."""
        out: dict[str, tuple[Path, str | None]] = {}
        for stem, path in self._files().items():
            styles = self.file_styles(path)
            out.update({f"{stem}/{s}": (path, s) for s in styles} if styles else {stem: (path, None)})
        return out

    def names(self) -> list[str]:
        """Style names, sorted: file stems, and `stem/style` for each style of a multi-style file;
        the folder is listed on every call (a file's style list is read once per version)."""
        return sorted(self._entries())

    def _unknown(self, name: object) -> UserError:
        known = ", ".join(self.names()) or f"none (no .onnx files in {self.models_dir})"
        return UserError(f"unknown style {name!r}; known styles: {known}")

    def entry(self, name: str) -> tuple[Path, str | None]:
        """(file, style within it or None) of a listed name."""
        entries = self._entries()
        if not isinstance(name, str) or name not in entries:
            raise self._unknown(name)
        return entries[name]

    def path(self, name: str) -> Path:
        return self.entry(name)[0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries()

    def choose(self, spec: str) -> Choice:
        """A style spec (mix.py's grammar; no paths but a MODEL/ prefix) in this folder."""
        terms = mix.parse(spec)
        model, names = mix.model_of(terms), [t.name for t in terms]
        if model is not None:
            path, styles = self._model_file(model, spec)
        else:
            files = self._files()
            if len(terms) == 1 and names[0] in files:
                path, styles = files[names[0]], self.file_styles(files[names[0]])
                if not styles:
                    return Choice(path, None, names[0])  # a single-style model (the old rule)
                listed = ", ".join(f"{names[0]}/{s}" for s in styles)
                raise UserError(f"{names[0]} holds {len(styles)} styles: pick one ({listed}) or mix them ({styles[0]}:0.5,{styles[1]}:0.5)")
            path, styles = self._holder(names, spec)
        missing = [n for n in names if n not in styles]
        if missing:
            raise UserError(f"unknown style {missing[0]!r} in {path.name}; its styles: {', '.join(styles)}")
        weights = mix.normalized(terms)
        stem = path.stem if model is None or not is_model_path(model) else model
        name = f"{stem}/{names[0]}" if len(terms) == 1 else f"{stem}/{mix.describe(weights)}"
        return Choice(path, weights, name)

    def _model_file(self, model: str, spec: str) -> tuple[Path, list[str]]:
        """The file and styles of a MODEL/ prefix: a path, or a multi-style file of the folder."""
        if is_model_path(model):
            path = Path(model)
            if not path.is_file():
                raise UserError(f"{model}: no such model file")
            styles = file_style_names(path)
        else:
            files = self._files()
            if model not in files:
                multi = [stem for stem, p in files.items() if self.file_styles(p)]
                if not multi:  # the name-or-path rule of single-style folders: a path
                    raise UserError(f"{spec}: no such model file")
                raise UserError(f"{spec}: no such model file, nor a style of a model here (multi-style models: {', '.join(multi)})")
            path, styles = files[model], self.file_styles(files[model])
        if not styles:
            raise UserError(f"{model} is a single-style model; {spec!r} picks styles of a multi-style one")
        return path, styles

    def _holder(self, names: list[str], spec: str) -> tuple[Path, list[str]]:
        """The one multi-style file of the folder that holds every name."""
        holders = [(p, styles) for p in self._files().values() if (styles := self.file_styles(p)) and all(n in styles for n in names)]
        if len(holders) == 1:
            return holders[0]
        if not holders and len(names) == 1:
            raise self._unknown(names[0])
        if not holders:
            raise UserError(
                f"no multi-style model here holds all of {', '.join(names)} (a mix blends the styles of one model); known styles: {', '.join(self.names())}"
            )
        which = ", ".join(p.stem for p, _ in holders)
        raise UserError(f"{', '.join(names)}: in several models ({which}); name one, e.g. {holders[0][0].stem}/{spec}")

    def info(self, name: str) -> dict[str, Any]:
        """{"name", "file", "bytes", "metadata": {...}} for one style (validated; cached by mtime);
        a multi-style file's style also has "style": its record ({"name", "painting", ...}) and
        "styles": the file's style names."""
        path, style = self.entry(name)
        mtime = path.stat().st_mtime
        with self._lock:
            cached = self._info.get(name)
            if cached and cached[0] == mtime:
                return dict(cached[1])
        meta, _session = read_model_info(path)
        info = {"name": name, "file": path.name, "bytes": path.stat().st_size, "metadata": meta}
        if style is not None:
            records = model_styles(meta, path)
            info.update(style=next((r for r in records if r["name"] == style), {"name": style}), styles=[r["name"] for r in records])
        with self._lock:
            self._info[name] = (mtime, info)
        return dict(info)

    def _build(self, name: str, prepare: Callable[[Stylizer], None] | None) -> Stylizer:
        path, style = self.entry(name)
        if style is None:
            stylizer = Stylizer(path, **self.stylizer_options)  # checks the model's output (stylizer.check_model)
        else:
            stylizer = self.model(path).with_style({style: 1.0}, name)
        if prepare is not None:
            prepare(stylizer)
        return stylizer

    def model(self, path: Path) -> Stylizer:
        """The loaded multi-style model of `path`, shared by its styles and mixes; loaded again
        when the file has changed (a bad new file raises and leaves the old one cached)."""
        signature = self._signature(path)
        with self._lock:
            cached = self._models.get(path)
        if cached and cached[0] == signature:
            return cached[1]
        stylizer = Stylizer(path, **self.stylizer_options)
        with self._lock:
            self._models[path] = (signature, stylizer)
        return stylizer

    def mix(self, spec: str) -> Stylizer:
        """A Stylizer for any spec of this folder (mix.py's grammar): a listed name's cached one,
        else a view of the multi-style model with that mix (cheap: the model is shared)."""
        if spec in self:
            return self.get(spec)
        choice = self.choose(spec)
        if choice.weights is None:
            return self.get(choice.name)
        return self.model(choice.path).with_style(choice.weights, choice.name)

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
