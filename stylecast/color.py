"""Colour preservation, shared by the slow optimizer and the torch-free stylizer (numpy only).

Gatys et al. 2016, "Preserving Color in Neural Artistic Style Transfer", give two methods:
luminance-only transfer (keep the content's chroma, take the stylized luminance) and colour
histogram matching. Arrays are float HxWx3 RGB in [0, 1].
"""

from __future__ import annotations

import numpy as np

# NTSC YIQ (the paper's choice): Y carries luminance, I and Q the chroma.
RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]],
    dtype=np.float64,
)
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)


def rgb_to_yiq(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb, dtype=np.float64) @ RGB_TO_YIQ.T


def yiq_to_rgb(yiq: np.ndarray) -> np.ndarray:
    return np.asarray(yiq, dtype=np.float64) @ YIQ_TO_RGB.T


def preserve_luminance(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Stylized luminance (Y) with the content's chroma (I, Q). Shapes must match."""
    if stylized.shape != content.shape:
        raise ValueError(f"shapes differ: {stylized.shape} vs {content.shape}")
    yiq = rgb_to_yiq(content)
    yiq[..., 0] = rgb_to_yiq(stylized)[..., 0]
    return np.clip(yiq_to_rgb(yiq), 0.0, 1.0).astype(np.float32)


def match_histogram(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-channel CDF matching: `source` gets `reference`'s colour histogram (sizes may differ)."""
    out = np.empty(source.shape, dtype=np.float32)
    for c in range(source.shape[-1]):
        src = source[..., c].ravel()
        ref = np.sort(reference[..., c].ravel())
        # rank of each source pixel -> quantile -> reference value at that quantile
        order = np.argsort(src, kind="stable")
        quantiles = np.empty(src.size, dtype=np.float64)
        quantiles[order] = (np.arange(src.size) + 0.5) / src.size
        out[..., c] = np.interp(quantiles, (np.arange(ref.size) + 0.5) / ref.size, ref).reshape(source.shape[:-1])
    return np.clip(out, 0.0, 1.0)
