"""Stylize images with an exported style model, without torch.

    from stylecast.images import load_image, save_image
    from stylecast.inference.stylizer import Stylizer

    s = Stylizer("checkpoints/candy.onnx")                 # backend/device "auto"
    save_image(s(load_image("photo.jpg"), size=1024, strength=0.8), "out.jpg")

Pre/post-processing is numpy only and shared by every backend: optional longer-side resize;
reflection padding to a multiple of 4 (and to MIN_SIDE) so the two stride-2 convolutions and the
two x2 upsamples line up exactly, cropped back afterwards; optional tiling with feathered seams;
colour preservation (luminance transfer in YIQ, Gatys et al. 2016) and a strength blend with the
(resized) input.

A multi-style model (several styles in one network, Dumoulin et al. 2017) takes a weight per style
with each image: `s.styles` names them; `s.with_style({"starry_night": 0.7, "great_wave": 0.3})`
is a Stylizer for that mix sharing the loaded model (no second session, no recompile), and
`run`/`__call__` take `style_weights=` for one call. The registry hands out such views by name.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from typing import Mapping, Union
from pathlib import Path

import numpy as np

from stylecast.inference.backends import BackendName, Device, Precision, make_backend, model_styles, read_model_info
from stylecast.inference.contract import INPUT_NAME, MIN_SIDE, OUTPUT_NAME, SIZE_MULTIPLE, STYLE_WEIGHTS_NAME, native_size
from stylecast.inference.tiling import ThumbnailNormGraphs, run_tiled, thumbnail_norm_graphs
from stylecast.color import preserve_luminance
from stylecast.errors import UserError
from stylecast.images import array_to_pil, pil_to_array, resize_longer

log = logging.getLogger(__name__)


def resized(image: np.ndarray, size: int | None) -> np.ndarray:
    """HxWx3 float image with its longer side `size` (unchanged when None or already that size)."""
    if size is None or size == max(image.shape[:2]):
        return image
    return pil_to_array(resize_longer(array_to_pil(image), int(size)))


# `size` 0 (`--size 0`, `?size=0`): the input's own size, not the style's native one.
ORIGINAL_SIZE = 0


def target_size(size: int | None, native: int | None, longer: int) -> int | None:
    """The longer side to stylize an input of longer side `longer` at (None: as it is). An asked-for
    `size` wins (ORIGINAL_SIZE: the input's own); else a larger input is scaled down to the style's
    `native` size, where its strokes have the painting's proportions (contract.NATIVE_SCALE); a
    smaller one is not scaled up: no pixels are invented unless asked for."""
    if size is not None:
        return None if size == ORIGINAL_SIZE else int(size)
    if native is not None and longer > native:
        return int(native)
    return None


def native_size_of(metadata: dict, where: str) -> int | None:
    """contract.native_size, a bad value as the one-line UserError naming `where` (file or server)."""
    try:
        return native_size(metadata, where)
    except ValueError as e:
        raise UserError(str(e)) from None


def pad_amounts(height: int, width: int) -> tuple[int, int]:
    """(bottom, right) padding that makes both sides multiples of SIZE_MULTIPLE and >= MIN_SIDE."""

    def amount(n: int) -> int:
        target = max(n, MIN_SIDE)
        target += (-target) % SIZE_MULTIPLE
        return target - n

    return amount(height), amount(width)


def reflect_pad(batch: np.ndarray, bottom: int, right: int) -> np.ndarray:
    """NCHW reflection padding at the bottom/right; sides shorter than the pad are mirrored
    repeatedly ('symmetric' for 1-px sides, where a reflection has nothing to mirror)."""
    if bottom == 0 and right == 0:
        return batch
    h, w = batch.shape[-2:]
    mode = "reflect" if min(h, w) > 1 else "symmetric"
    return np.pad(batch, ((0, 0), (0, 0), (0, bottom), (0, right)), mode=mode)


# The load-time check's input: non-square, so a model that swaps or resizes H and W shows it;
# a multiple of SIZE_MULTIPLE and above MIN_SIDE, so no padding is involved.
CHECK_SHAPE = (1, 3, 32, 48)
# The contract's output range is [0, 1] (a sigmoid); fp16 rounding may step past it by a hair.
RANGE_SLACK = 1e-3


def _check_input() -> np.ndarray:
    """A smooth, photo-like, deterministic test input in [0, 1] of CHECK_SHAPE."""
    n, c, h, w = CHECK_SHAPE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    channels = [0.5 + 0.4 * np.sin(yy / h * (2 + k) + xx / w * (3 - k)) for k in range(c)]
    return np.stack(channels)[None].repeat(n, 0).astype(np.float32)


def check_model(session, path: str | os.PathLike) -> None:
    """Refuse a model whose metadata is valid but whose output is wrong (issue 15.7): one
    forward pass of a 32x48 image must give the input's shape, finite values, within [0, 1].

    `session`: an onnxruntime InferenceSession of the file (`read_model_info` returns one).
    Raises UserError naming `path` and what is wrong, like a corrupt file, so a server's reload
    keeps the old model. Costs one small forward pass: 3 ms for the slim net, 27 ms for the
    full one on this 2-core CPU at load 10, beside 60-140 ms to open the session itself.
    """
    x = _check_input()
    shape = "x".join(map(str, x.shape))
    feeds = {INPUT_NAME: x}
    weights = next((i for i in session.get_inputs() if i.name == STYLE_WEIGHTS_NAME), None)
    if weights is not None and isinstance(weights.shape[1], int):  # a multi-style model: the even mix
        feeds[STYLE_WEIGHTS_NAME] = np.full((x.shape[0], weights.shape[1]), 1.0 / weights.shape[1], np.float32)
    try:
        y = np.asarray(session.run([OUTPUT_NAME], feeds)[0])
    except Exception as exc:  # onnxruntime's errors have no common base class
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: the model fails on a {shape} test input ({reason})") from None
    if y.shape != x.shape:
        raise UserError(f"{path}: output is {'x'.join(map(str, y.shape))} for a {shape} input; a style model keeps the input's size")
    bad = int(np.size(y) - np.isfinite(y).sum())
    if bad:
        raise UserError(f"{path}: output has NaN or infinite values ({bad} of {y.size}) for a {shape} test input")
    low, high = float(y.min()), float(y.max())
    if low < -RANGE_SLACK or high > 1 + RANGE_SLACK:
        raise UserError(f"{path}: output range [{low:.3g}, {high:.3g}] is outside [0, 1] for a {shape} test input")


StyleWeights = Union[Mapping[str, float], np.ndarray, "list[float]"]


class Stylizer:
    """One style model, ready to run. Thread-safe for concurrent calls (ORT sessions and OpenVINO
    compiled models both are; each call creates its own request).

    model_path: an .onnx file written by `stylecast export` (checked: ONNX, contract metadata,
        (N, 3, H, W) float input/output, and `check_model`: one small forward pass).
    device: "auto" (CUDA when onnxruntime has it, else CPU), "cpu", or "cuda" (UserError if absent).
    backend: "auto" (OpenVINO on CPU when installed, else ONNX Runtime), "ort", "openvino".
    threads: intra-op threads (None: the runtime's default, all physical cores).
    precision: OpenVINO only: "auto" (bf16 on CPUs with bf16 units), "fp32", "bf16".

    A multi-style model: `styles` (its style records), `style_names`; `style_weights` is this
    Stylizer's mix ((n_styles,) float32, None until `with_style` picks one: then every call needs
    `style_weights=`). Single-style models have styles == [] and take no weights.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        device: Device = "auto",
        backend: BackendName = "auto",
        threads: int | None = None,
        precision: Precision = "auto",
    ):
        self.path = Path(model_path)
        self.metadata, session = read_model_info(self.path)
        check_model(session, self.path)
        self.name = self.path.stem
        self.styles: list[dict] = model_styles(self.metadata, self.path)
        self.style_names: list[str] = [s["name"] for s in self.styles]
        self.style_weights: np.ndarray | None = None
        self.native_size: int | None = native_size_of(self.metadata, str(self.path))
        self._backend = make_backend(self.path, session, device=device, backend=backend, threads=threads, precision=precision)
        self.backend: str = self._backend.name
        self.device: str = self._backend.device
        self.providers: list[str] = list(self._backend.providers)
        self.precision: str = getattr(self._backend, "precision", self.metadata.get("precision", "fp32"))
        self._tin: tuple[ThumbnailNormGraphs, object, object] | None = None
        self._tin_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Stylizer({str(self.path)!r}, backend={self.backend!r}, providers={self.providers})"

    # --- styles of a multi-style model --------------------------------------------------------

    def style_vector(self, weights: StyleWeights) -> np.ndarray:
        """{name: weight} (or a sequence in style order) -> float32 (n_styles,); unnamed styles 0.
        The weights are used as given (the grammar in mix.py normalizes them to sum 1)."""
        if not self.styles:
            raise UserError(f"{self.path}: a single-style model takes no style weights")
        n = len(self.styles)
        if isinstance(weights, Mapping):
            unknown = [k for k in weights if k not in self.style_names]
            if unknown:
                raise UserError(f"unknown style {unknown[0]!r} in {self.path.name}; its styles: {', '.join(self.style_names)}")
            return np.array([float(weights.get(name, 0.0)) for name in self.style_names], np.float32)
        vector = np.asarray(weights, np.float32)
        if vector.shape not in ((n,), (1, n)) and not (vector.ndim == 2 and vector.shape[1] == n):
            raise ValueError(f"style weights for {n} styles must be ({n},) or (B, {n}), got shape {vector.shape}")
        return vector

    def with_style(self, weights: StyleWeights, name: str | None = None) -> "Stylizer":
        """This model with `weights` as its mix (a view: the session, compiled models and tiling
        graphs are shared, so switching styles or mixes costs nothing)."""
        view = copy.copy(self)
        view.style_weights = self.style_vector(weights).reshape(-1)
        view.name = name or self.name
        return view

    def _weights_for(self, batch: int, style_weights: StyleWeights | None) -> np.ndarray | None:
        """(batch, n_styles) float32 for a multi-style model, None for a single-style one."""
        if not self.styles:
            if style_weights is not None:
                raise UserError(f"{self.path}: a single-style model takes no style weights")
            return None
        vector = self.style_weights if style_weights is None else self.style_vector(style_weights)
        if vector is None:
            example = f"{self.path.stem}/{self.style_names[0]}"
            raise UserError(f"{self.path}: holds {len(self.styles)} styles ({', '.join(self.style_names)}): pick one (e.g. {example}) or a mix")
        vector = np.asarray(vector, np.float32)
        return np.ascontiguousarray(np.broadcast_to(vector.reshape(-1, len(self.styles)), (batch, len(self.styles))))

    # --- the network, batch in, batch out -----------------------------------------------------

    def run(self, batch: np.ndarray, style_weights: StyleWeights | None = None) -> np.ndarray:
        """float32 (N, 3, H, W) RGB in [0, 1] -> same shape, stylized. Any H, W >= 1: padded by
        reflection to multiples of 4 (and >= MIN_SIDE) and cropped back. style_weights (multi-style
        models; default this Stylizer's mix): {name: w}, (n_styles,) for all images or (N, n_styles)."""
        batch = np.asarray(batch)
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected a (N, 3, H, W) batch, got shape {batch.shape}")
        h, w = batch.shape[-2:]
        if h < 1 or w < 1 or batch.shape[0] < 1:
            raise ValueError(f"empty batch {batch.shape}")
        weights = self._weights_for(batch.shape[0], style_weights)
        bottom, right = pad_amounts(h, w)
        x = np.ascontiguousarray(reflect_pad(batch.astype(np.float32, copy=False), bottom, right))
        if weights is None:
            y = self._backend.run(x)
        else:
            y = self._backend.run_feeds({INPUT_NAME: x, STYLE_WEIGHTS_NAME: weights}, [OUTPUT_NAME])[0]
        return np.ascontiguousarray(y[:, :, :h, :w], dtype=np.float32)

    def _stylize_hwc(self, image: np.ndarray, style_weights: StyleWeights | None = None) -> np.ndarray:
        return self.run(image.transpose(2, 0, 1)[None], style_weights)[0].transpose(1, 2, 0)

    # --- tiles with thumbnail instance normalization (inference/tiling.py) --------------------

    def _tin_backends(self):
        with self._tin_lock:
            if self._tin is None:
                try:
                    graphs = thumbnail_norm_graphs(self.path.read_bytes())
                except ImportError:
                    raise UserError("tiling needs the onnx package: pip install onnx") from None
                except ValueError as exc:  # a graph the rewrite does not understand
                    raise UserError(f"{self.path}: cannot tile this model: {exc}") from None
                self._tin = (graphs, self._backend.derive(graphs.stats_model), self._backend.derive(graphs.apply_model))
            return self._tin

    def _padded(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        return np.ascontiguousarray(reflect_pad(image.transpose(2, 0, 1)[None].astype(np.float32), *pad_amounts(h, w)))

    def stylize_tiled(
        self, image: np.ndarray, tile: int, overlap: int = 32, thumbnail: int | None = None, style_weights: StyleWeights | None = None
    ) -> np.ndarray:
        """HxWx3 -> HxWx3 in `tile`-px tiles that share instance-norm statistics (those of a
        thumbnail with longer side `thumbnail`, default `tile`, so peak memory follows the tile);
        overlaps are feathered (inference/tiling.py)."""
        h, w = image.shape[:2]
        if max(h, w) <= tile:
            return self._stylize_hwc(image, style_weights)
        weights = self._weights_for(1, style_weights)
        # a multi-style model's mix is an input of both rewritten graphs (the norms' γ, β follow it)
        mix = {} if weights is None else {STYLE_WEIGHTS_NAME: weights}
        graphs, stats_backend, apply_backend = self._tin_backends()
        thumb = pil_to_array(resize_longer(array_to_pil(image), int(thumbnail or tile))) if (thumbnail or tile) < max(h, w) else image
        stats = dict(zip(graphs.stat_names, stats_backend.run_feeds({INPUT_NAME: self._padded(thumb), **mix}, graphs.stat_names)))

        def one_tile(part: np.ndarray) -> np.ndarray:
            th, tw = part.shape[:2]
            out = apply_backend.run_feeds({INPUT_NAME: self._padded(part), **stats, **mix}, [OUTPUT_NAME])[0]
            return out[0, :, :th, :tw].transpose(1, 2, 0)

        return run_tiled(one_tile, image, tile, overlap)

    # --- one image, with the user-facing options ------------------------------------------------

    def __call__(
        self,
        image: np.ndarray,
        *,
        size: int | None = None,
        strength: float = 1.0,
        preserve_color: bool = False,
        tile: int | None = None,
        overlap: int = 32,
        thumbnail: int | None = None,
        style_weights: StyleWeights | None = None,
    ) -> np.ndarray:
        """Stylize one HxWx3 float32 image in [0, 1]; returns HxWx3 float32 in [0, 1], the size of
        the input after the optional longer-side resize to `size`.

        strength: 0 returns the (resized) input, 1 the stylized image; between, a linear blend.
        preserve_color: keep the input's chroma, take only the stylized luminance.
        tile, overlap: run `tile`-px tiles overlapping by `overlap` px (for images that do not fit
            in memory); all tiles share the instance-norm statistics of a thumbnail (longer side
            `thumbnail`, default `tile`) and seams are feathered.
        style_weights: a multi-style model's mix for this call (default: this Stylizer's).
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
        if not 0.0 <= float(strength) <= 1.0:
            raise UserError(f"strength must be between 0 and 1, got {strength}")
        if tile is not None and tile < 16:
            raise UserError(f"tile must be at least 16 px, got {tile}")
        if overlap < 0:
            raise UserError(f"overlap must be >= 0, got {overlap}")
        if image.dtype == np.uint8:  # tolerate 8-bit arrays instead of clipping 0..255 to 1
            image = image.astype(np.float32) / 255.0
        image = np.clip(image.astype(np.float32, copy=False), 0.0, 1.0)
        image = resized(image, size)
        self._weights_for(1, style_weights)  # a missing or bad mix is an error even at strength 0
        if strength == 0.0:
            return image.copy()
        if tile:
            stylized = self.stylize_tiled(image, int(tile), int(overlap), thumbnail, style_weights)
        else:
            stylized = self._stylize_hwc(image, style_weights)
        return finish(stylized, image, strength, preserve_color)

    def stylize_batch(
        self,
        images: np.ndarray,
        *,
        strength: float = 1.0,
        preserve_color: bool = False,
        tile: int | None = None,
        overlap: int = 32,
        style_weights: StyleWeights | None = None,
    ) -> np.ndarray:
        """Stylize N same-size frames in one network run: float32 (N, H, W, 3) in [0, 1] ->
        the same shape. Each frame comes out as `self(frame, ...)` would give it (the network sees
        each frame on its own: instance normalization has per-image statistics). No resize: the
        caller sizes the frames (stylecast.inference.video). With `tile`, frames run one by one."""
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected an (N, H, W, 3) batch, got shape {images.shape}")
        if not 0.0 <= float(strength) <= 1.0:
            raise UserError(f"strength must be between 0 and 1, got {strength}")
        self._weights_for(1, style_weights)  # a missing or bad mix is an error even at strength 0
        if strength == 0.0:
            return images.copy()
        if tile:
            stylized = np.stack([self.stylize_tiled(im, int(tile), int(overlap), style_weights=style_weights) for im in images])
        else:
            stylized = self.run(images.transpose(0, 3, 1, 2), style_weights).transpose(0, 2, 3, 1)
        return np.stack([finish(out, im, strength, preserve_color) for out, im in zip(stylized, images)])


def finish(stylized: np.ndarray, image: np.ndarray, strength: float, preserve_color: bool) -> np.ndarray:
    """The user-facing options applied to one network output (HxWx3): colour preservation, then
    the strength blend with the input, clipped to [0, 1]. One place for photos and video frames."""
    if preserve_color:
        stylized = preserve_luminance(stylized, image)
    if strength != 1.0:
        stylized = strength * stylized + (1.0 - strength) * image
    return np.clip(stylized, 0.0, 1.0).astype(np.float32, copy=False)
