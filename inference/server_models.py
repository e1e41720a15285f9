"""The styles a server is serving: loaded once, checked, warmed up, swapped whole on reload.

`ServedModels.current` is an immutable name -> LoadedStyle mapping. A reload builds a new mapping
next to it and replaces the reference in one assignment, so a request sees either the old set or
the new one, never a mix; a request already holding a Stylizer finishes on it. Whether a changed
file replaces the model loaded from it is decided by `StyleRegistry.reload` (registry.py): only
after it loaded, passed check_model and the warm-up; otherwise the old model keeps serving and
this module reports it under `kept_old`. An unchanged file (same mtime and size) keeps its warmed
Stylizer.

Each LoadedStyle also holds the bytes of its file (0.6-3.4 MB for the shipped styles) and their
sha256, read after the model passed its checks and the file was seen unchanged: the page's
in-browser inference downloads exactly the model the server runs, even when a changed file on
disk was refused and the old model keeps serving.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from stylecast.paintings import painting_of
from stylecast.inference import mix
from stylecast.inference.registry import StyleRegistry, resolve_models_dir
from stylecast.inference.stylizer import Stylizer

log = logging.getLogger("stylecast.server")

_ABS_PATH = re.compile(r"(?:[A-Za-z]:)?[/\\][^\s:'\"()\[\],]+")


def public_reason(exc: BaseException) -> str:
    """An error message fit for a response: file names kept, folders stripped."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return _ABS_PATH.sub(lambda m: Path(m.group()).name, text)[:300]


@dataclass(frozen=True)
class LoadedStyle:
    name: str
    stylizer: Stylizer
    signature: tuple[int, int]  # (mtime_ns, size) of the file it was built from
    info: dict[str, Any]  # what GET /v1/styles shows
    model: bytes = b""  # the .onnx file the stylizer was built from (for in-browser inference)
    sha256: str = ""  # of `model`: the download's ETag
    # the metrics' style label: a mix is labelled by its model ("painters/(mix)"), so a client
    # sending ever new mixes cannot grow the metrics without bound
    metric_label: str = ""


@dataclass
class ReloadReport:
    loaded: list[str] = field(default_factory=list)  # new or changed files, now serving
    unchanged: list[str] = field(default_factory=list)  # same file, same warmed model
    kept_old: list[dict[str, str]] = field(default_factory=list)  # changed file failed; old model kept
    failed: list[dict[str, str]] = field(default_factory=list)  # new file failed; not served
    removed: list[str] = field(default_factory=list)  # file gone; no longer served
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _signature(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_mtime_ns, st.st_size)


class ServedModels:
    def __init__(self, models_dir: str | os.PathLike | None, stylizer_options: dict[str, Any], warmup_sizes: tuple[tuple[int, int], ...]):
        self.models_dir = resolve_models_dir(models_dir)
        self.registry = StyleRegistry(self.models_dir, **stylizer_options)
        self.warmup_sizes = tuple(warmup_sizes)
        self.current: Mapping[str, LoadedStyle] = MappingProxyType({})
        self.loaded_once = False
        self._lock = threading.Lock()  # one (re)load at a time

    def names(self) -> list[str]:
        return sorted(self.current)

    def get(self, name: str) -> LoadedStyle | None:
        # names come from the folder listing only; a request's string is a dict key, never a path
        return self.current.get(name) if isinstance(name, str) else None

    def mix(self, spec: str) -> LoadedStyle | None:
        """A mix of one served multi-style model's styles (mix.py's grammar; the MODEL/ prefix is a
        served model's name, never a path): a view sharing that model, or None when the names are
        not served. UserError for a malformed mix (bad or negative weights, ...)."""
        terms = mix.parse(spec)
        models: dict[str, set[str]] = {}
        for served in self.current:
            model, slash, style = served.rpartition("/")
            if slash:
                models.setdefault(model, set()).add(style)
        names, prefix = {t.name for t in terms}, mix.model_of(terms)
        holders = [prefix] if prefix in models else [] if prefix else [m for m, styles in models.items() if names <= styles]
        if len(holders) != 1 or not names <= models[holders[0]]:
            return None
        first = self.current[f"{holders[0]}/{terms[0].name}"]
        weights = mix.normalized(terms)
        name = f"{holders[0]}/{mix.describe(weights)}"
        view = first.stylizer.with_style(weights, name)
        return LoadedStyle(
            name, view, first.signature, {**first.info, "name": name, "mix": weights}, first.model, first.sha256, metric_label=f"{holders[0]}/(mix)"
        )

    def changed_on_disk(self) -> bool:
        """Cheap check for the file watch: did the set of files or any (mtime, size) change?"""
        registry = self.registry
        try:
            on_disk = {n: _signature(registry.path(n)) for n in registry.names()}
        except OSError:
            return True
        return on_disk != {n: s.signature for n, s in self.current.items()}

    def _warm(self, stylizer: Stylizer) -> None:
        # The first run pays session initialisation (and OpenVINO compiles per input shape):
        # pay it here, for the shapes the page's webcam sends, not in a user's request.
        for h, w in self.warmup_sizes:
            stylizer(np.full((h, w, 3), 0.5, np.float32))

    def reload(self) -> ReloadReport:
        """(Re)load every `.onnx` in the folder and swap the served set in one assignment."""
        with self._lock:
            start = time.perf_counter()
            old = self.current
            new: dict[str, LoadedStyle] = {}
            report = ReloadReport()
            names = self.registry.names()
            for name in names:
                loaded = self._load(name, old.get(name), report)
                if loaded is not None:
                    new[name] = loaded
            report.removed = sorted(set(old) - set(names))
            for name in report.removed:
                self.registry.forget(name)
            self.current = MappingProxyType(new)
            self.loaded_once = True
            report.seconds = round(time.perf_counter() - start, 3)
            log.info(
                "models: %d serving (%s loaded, %s unchanged, %s kept old, %s failed, %s removed) in %.2f s",
                len(new),
                len(report.loaded),
                len(report.unchanged),
                len(report.kept_old),
                len(report.failed),
                len(report.removed),
                report.seconds,
            )
            return report

    def _load(self, name: str, prev: LoadedStyle | None, report: ReloadReport) -> LoadedStyle | None:
        """The LoadedStyle to serve under `name` after this reload (None: nothing), noted in `report`."""
        try:
            path = self.registry.path(name)
            sig = _signature(path)
            if prev is not None and prev.signature == sig:
                report.unchanged.append(name)
                return prev

            held: dict[str, bytes] = {}

            def prepare(stylizer: Stylizer) -> None:
                self._warm(stylizer)
                held["model"] = path.read_bytes()
                if _signature(path) != sig:
                    raise RuntimeError("file changed while it was being loaded")

            stylizer = self.registry.reload(name, prepare=prepare)
        except Exception as exc:  # corrupt, truncated mid-copy, wrong contract, wrong output, vanished
            log.warning("style %r could not be loaded: %s", name, exc)
            entry = {"style": name, "error": public_reason(exc)}
            # the registry kept whatever it had loaded before; serve that, if anything
            (report.kept_old if prev is not None else report.failed).append(entry)
            return prev
        report.loaded.append(name)
        model = held["model"]
        return LoadedStyle(name, stylizer, sig, self._info(name, stylizer, sig), model, hashlib.sha256(model).hexdigest())

    @staticmethod
    def _info(name: str, stylizer: Stylizer, sig: tuple[int, int]) -> dict[str, Any]:
        # a multi-style model's style: which model, and all its styles (the page's mix sliders)
        multi = {"model": name.rpartition("/")[0], "styles": list(stylizer.style_names)} if stylizer.styles else {}
        return {
            "name": name,
            **multi,
            "painting": painting_info(stylizer.metadata, name),
            "native_size": stylizer.native_size,  # /v1/stylize's default for larger inputs (None: the input's size)
            "metadata": dict(sorted(stylizer.metadata.items())),
            "backend": stylizer.backend,
            "device": stylizer.device,
            "precision": stylizer.precision,
            "bytes": sig[1],
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }


def painting_info(metadata: dict[str, str], name: str) -> dict[str, str] | None:
    """{"title", "artist", "year"} of the painting a style learned, for the page: the model's own
    `title`/`artist` metadata when it carries them (a user's painting), else stylecast/paintings.py
    looked up by `style_image` (the shipped models carry only the file name). A multi-style
    model's style looks up its own row of `styles`; None when nothing is known."""
    if metadata.get("title"):
        return {"title": metadata["title"], "artist": metadata.get("artist", ""), "year": metadata.get("year", "")}
    image = metadata.get("style_image")
    own = name.rpartition("/")[2]
    try:
        rows = json.loads(metadata.get("styles", "[]"))
    except ValueError:
        rows = []
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and row.get("name") == own:
            image = row.get("painting", image)
    painting = painting_of(image)
    return None if painting is None else {"title": painting.title, "artist": painting.artist, "year": painting.year}
