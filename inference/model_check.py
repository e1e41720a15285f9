"""Load-time check of a style model's output: one small forward pass.

The metadata and the declared I/O (backends.read_model_info) say what a model claims; this checks
what it does. A model that returns half-size images, NaN, or values far outside [0, 1] passes the
contract check and would then serve wrong pictures (or a 500 when the output is blended with the
input), so it is refused at load like a corrupt file: a reload keeps the old model serving.
"""

from __future__ import annotations

import numpy as np

from stylecast.errors import UserError
from stylecast.inference.contract import INPUT_NAME, OUTPUT_NAME

# (H, W): small, and multiples of 4 so no padding (and no crop by the stylizer) can hide a wrong shape.
CHECK_SIZE = (48, 64)
# The contract's range is [0, 1]; a net without a final clamp may overshoot a little.
RANGE_SLACK = 0.1


def probe_batch(height: int = CHECK_SIZE[0], width: int = CHECK_SIZE[1]) -> np.ndarray:
    """A deterministic (1, 3, H, W) image in [0, 1] with structure (gradients and a disc)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = yy / max(height - 1, 1)
    g = xx / max(width - 1, 1)
    b = (((yy - height / 2) ** 2 + (xx - width / 2) ** 2) < (min(height, width) / 3) ** 2).astype(np.float32) * 0.8 + 0.1
    return np.stack([r, g, b])[None].astype(np.float32)


def check_model(model) -> None:
    """Run `model` (a Stylizer, or an onnxruntime InferenceSession) once on a small image; UserError
    unless the output has the input's shape, is finite, and lies within [0, 1] +- RANGE_SLACK."""
    x = probe_batch()
    backend = getattr(model, "_backend", None)
    if backend is not None:
        # A Stylizer: the runtime's own output, before the stylizer crops it to the input's size.
        name = getattr(getattr(model, "path", None), "name", "model")
        y = np.asarray(backend.run(x))
    else:
        name = "model"
        y = np.asarray(model.run([OUTPUT_NAME], {INPUT_NAME: x})[0])
    if y.shape != x.shape:
        raise UserError(f"{name}: output shape {tuple(y.shape)} for an input of {tuple(x.shape)}: a style model must return an image of its input's size")
    if not np.isfinite(y).all():
        bad = int(np.size(y) - np.isfinite(y).sum())
        raise UserError(f"{name}: output is not finite ({bad} of {y.size} values are NaN or infinite)")
    low, high = float(y.min()), float(y.max())
    if low < -RANGE_SLACK or high > 1 + RANGE_SLACK:
        raise UserError(f"{name}: output values span [{low:.3g}, {high:.3g}], outside the contract's range [0, 1]")
