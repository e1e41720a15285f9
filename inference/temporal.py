"""Motion-compensated recursive filter: a steadier stylized video from any per-frame network.

A per-frame network cannot see the frame before. On a still camera it redraws the sensor noise a
little differently each frame, and when the camera pans by less than its total stride the texture
it paints jumps with the phase of its stride-2 grid (README, "Where the tiny net's flicker comes
from"). Both are frame-to-frame differences that the photo itself does not have. The classic video
denoising answer is a recursive filter with motion compensation:

    out_t = a · warp(out_t−1) + (1 − a) · net(x_t)

- warp: the camera's global translation between x_t−1 and x_t, found by phase correlation on a
  downscaled luminance (whole pixels), refined to sub-pixel by Lucas–Kanade steps (on the
  downscaled frames, then one at full size); the previous output is resampled with Keys' cubic.
  Only translation is compensated (pans and hand shake); zoom, rotation and things that move in the
  scene are left to the gate.
- a, per pixel: `history` (the user's "steady") where the input, after that warp, differs from the
  filter's own running estimate of the input by no more than sensor noise does (`still` levels),
  falling linearly to 0 where it differs by `moving` levels or more. So anything that really
  changed in the photo is drawn from the new frame alone (no ghosts), and what did not change keeps
  its painted texture still.
- A still camera (the found translation under STILL_SHIFT) gets the higher `still_history`: sensor
  noise is then the only change, and a longer average cuts it further (a recursive average keeps
  √((1 − a)/(1 + a)) of the noise: 0.42 at 0.7, 0.23 at 0.9) at no cost in detail, because nothing
  is resampled. While the camera moves, `history` stays lower: every frame there averages another
  phase of the network's stride grid (a softer texture).

Why the gate compares with the running estimate and not with the previous input frame: a slow
change (a brightness ramp under `still` a frame) never opens a frame-to-frame gate, so the output
trails it by history / (1 − history) frames, 9 at 0.9, without bound in levels. Against the
estimate, the lag itself is what the gate sees: once the input is `still` levels ahead the history
fades, so a slow change trails by about `still` levels whatever the weight (worked out in
tests/test_temporal.py). The estimate also has less noise than one frame, so sensor noise opens
the gate less.

Its cost is that during motion the output averages a few grid phases of the network's texture (a
softer texture while panning), and that slow changes trail by a few levels.
`benchmarks/bench_flicker.py` measures both beside the gain.
numpy only (the serving install has no torch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stylecast.errors import UserError

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
PHASE_SIDE = 128  # phase correlation runs on a luminance whose longer side is at most this
MAX_SHIFT = 0.25  # a shift beyond this share of the frame is not the same view: start over
MIN_PEAK = 0.03  # phase-correlation peak below this: no trustworthy translation (flat or new view)
LK_STEPS = 2  # Lucas–Kanade refinements after the whole-pixel estimate
SNAP = 0.01  # px: a history shift this close to a whole pixel is resampled as whole (a still camera: exact)
MAX_HISTORY = 0.95  # beyond this a still scene would take ~20+ frames to show a real change below `moving`
STILL_SHIFT = 0.1  # px: a found translation under this on both axes is a still camera (`still_history`)


@dataclass(frozen=True)
class TemporalSettings:
    """The filter's knobs; the defaults are the ones `benchmarks/bench_flicker.py` measured."""

    history: float = 0.7  # weight of the previous output where nothing moved (0 switches the filter off)
    still_history: float = 0.9  # the weight while the camera is still (the higher of the two is used)
    still: float = 4.0  # 8-bit levels: a local input change up to this is sensor noise
    moving: float = 12.0  # levels: a local change from this up is a real change; the new frame alone

    def check(self) -> "TemporalSettings":
        if not 0.0 <= self.history <= MAX_HISTORY:
            raise UserError(f"steady (the previous frame's weight) must be between 0 and {MAX_HISTORY}, got {self.history}")
        if not 0.0 <= self.still_history <= MAX_HISTORY:
            raise UserError(f"the still camera's weight must be between 0 and {MAX_HISTORY}, got {self.still_history}")
        if not 0.0 <= self.still < self.moving:
            raise UserError(f"temporal thresholds need 0 <= still < moving, got still={self.still}, moving={self.moving}")
        return self


def luminance(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 float [0, 1] -> HxW float32."""
    return rgb.astype(np.float32, copy=False) @ LUMA


def _block_mean(image: np.ndarray, k: int) -> np.ndarray:
    """Mean of each k×k block (the last partial row/column of blocks dropped): k² strided slices."""
    if k == 1:
        return image
    h, w = image.shape[0] // k, image.shape[1] // k
    out = np.zeros((h, w), np.float32)
    for i in range(k):
        for j in range(k):
            out += image[i : h * k : k, j : w * k : k]
    out *= np.float32(1.0 / (k * k))
    return out


def _box(image: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)² window, edges repeated: 2r+1 shifted slices summed per axis."""
    n = 2 * r + 1
    p = np.pad(image.astype(np.float32, copy=False), r, mode="edge")
    h, w = image.shape
    rows = p[0:h].copy()
    for i in range(1, n):
        rows += p[i : i + h]
    out = rows[:, 0:w].copy()
    for j in range(1, n):
        out += rows[:, j : j + w]
    out *= np.float32(1.0 / (n * n))
    return out


def _phase_peak(prev: np.ndarray, cur: np.ndarray) -> tuple[int, int, float]:
    """Whole-pixel (dx, dy) with cur(q) ≈ prev(q + d), and the peak's height (1 = a perfect match).
    The windowed frames are zero-padded to powers of two: no wrap-around, and the same radix-2 sizes
    as the page's port (inference/web/temporal.js)."""
    h, w = prev.shape
    size = (1 << (h - 1).bit_length(), 1 << (w - 1).bit_length())
    window = np.outer(np.hanning(h), np.hanning(w))
    a = np.fft.rfft2((prev - prev.mean()) * window, s=size)
    b = np.fft.rfft2((cur - cur.mean()) * window, s=size)
    cross = b * np.conj(a)
    corr = np.fft.irfft2(cross / np.maximum(np.abs(cross), 1e-12), s=size)
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
    peak = float(corr[iy, ix])
    # corr peaks at −d (cur is prev moved back by d); indices past the middle are negative shifts.
    dy = -(iy if iy <= size[0] // 2 else iy - size[0])
    dx = -(ix if ix <= size[1] // 2 else ix - size[1])
    return int(dx), int(dy), peak


def _view(h: int, w: int, dx: float, dy: float) -> tuple[int, int, float, float, int, int, int, int]:
    """(ix, iy, fx, fy, x0, x1, y0, y1): the whole and fractional parts of the shift, and the output
    pixels (columns x0..x1, rows y0..y1) whose sample q + d lies inside the image."""
    ix, iy = int(np.floor(dx)), int(np.floor(dy))
    fx, fy = float(dx - ix), float(dy - iy)
    return ix, iy, fx, fy, max(0, -ix), min(w, w - ix - int(fx > 0)), max(0, -iy), min(h, h - iy - int(fy > 0))


def shift(image: np.ndarray, dx: float, dy: float) -> tuple[np.ndarray, tuple[slice, slice]]:
    """`image` (HxW or HxWxC) sampled at q + (dx, dy) for every pixel q (bilinear), and the (rows,
    columns) slices of the pixels whose sample lies inside the image. A translation keeps that region
    a rectangle, so this is four slice products, no gather; outside it the result is 0."""
    ix, iy, fx, fy, x0, x1, y0, y1 = _view(*image.shape[:2], dx, dy)
    fx, fy = np.float32(fx), np.float32(fy)
    out = np.zeros(image.shape, np.float32)
    if x1 <= x0 or y1 <= y0:
        return out, (slice(0, 0), slice(0, 0))

    def at(oy: int, ox: int) -> np.ndarray:
        return image[y0 + iy + oy : y1 + iy + oy, x0 + ix + ox : x1 + ix + ox]

    region = (1 - fy) * ((1 - fx) * at(0, 0) + fx * at(0, 1)) if fx else (1 - fy) * at(0, 0)
    if fy:
        region = region + fy * ((1 - fx) * at(1, 0) + fx * at(1, 1) if fx else at(1, 0))
    out[y0:y1, x0:x1] = region
    return out, (slice(y0, y1), slice(x0, x1))


def _pad_edge(image: np.ndarray, py: tuple[int, int], px: tuple[int, int]) -> np.ndarray:
    """`image` with py/px rows/columns of its edge repeated before/after (np.pad's "edge", faster)."""
    if py != (0, 0):
        image = np.concatenate([image[:1]] * py[0] + [image] + [image[-1:]] * py[1], axis=0)
    if px != (0, 0):
        image = np.concatenate([image[:, :1]] * px[0] + [image] + [image[:, -1:]] * px[1], axis=1)
    return image


def _weighted_sum(arrays: list[np.ndarray], weights: list[float], out: np.ndarray | None = None) -> np.ndarray:
    """sum(w · a) into `out` (a new float32 array if None), with one scratch array for the products."""
    out = np.multiply(arrays[0], np.float32(weights[0]), out=out, dtype=np.float32, casting="unsafe")
    scratch = np.empty_like(out) if len(arrays) > 1 else None
    for a, wt in zip(arrays[1:], weights[1:]):
        np.multiply(a, np.float32(wt), out=scratch)
        out += scratch
    return out


def _keys(t: float) -> tuple[float, float, float, float]:
    """Keys' cubic convolution weights (a = −0.5, Catmull–Rom) for taps −1, 0, 1, 2 at fraction t."""
    return ((-(t**3) + 2 * t**2 - t) / 2, (3 * t**3 - 5 * t**2 + 2) / 2, (-3 * t**3 + 4 * t**2 + t) / 2, (t**3 - t**2) / 2)


def shift_cubic(image: np.ndarray, dx: float, dy: float) -> tuple[np.ndarray, tuple[slice, slice]]:
    """As `shift` (the same view), with Keys' cubic instead of bilinear; the taps past the image's
    edge repeat it. The history is resampled every frame, and bilinear at a half pixel is a [½, ½]
    blur that compounds frame after frame (measured on a 0.5-px pan of the tiny net: 54 % of the
    texture's gradient kept, 63 % with the cubic). A shift within SNAP of a whole pixel is taken as
    whole on that axis (a still camera: exact)."""
    dx, dy = (float(round(v)) if abs(v - round(v)) < SNAP else v for v in (dx, dy))
    ix, iy, fx, fy, x0, x1, y0, y1 = _view(*image.shape[:2], dx, dy)
    out = np.zeros(image.shape, np.float32)
    if x1 <= x0 or y1 <= y0:
        return out, (slice(0, 0), slice(0, 0))
    # taps −1..2 on a fractional axis: pad 1 before and 2 after with the edge (only there)
    px, py = (1, 2) if fx else (0, 0), (1, 2) if fy else (0, 0)
    padded = _pad_edge(image, py, px)
    taps = (-1, 0, 1, 2)
    ys = [(o, wt) for o, wt in zip(taps, _keys(fy)) if wt] if fy else [(0, 1.0)]
    xs = [(o, wt) for o, wt in zip(taps, _keys(fx)) if wt] if fx else [(0, 1.0)]
    cols = slice(x0 + ix, x1 + ix + px[0] + px[1])  # padded columns the x taps need
    # Weighted sums accumulated in place (one scratch array): at 640x480x3 the temporaries, not the
    # arithmetic, were most of the time.
    rows = _weighted_sum([padded[y0 + iy + py[0] + o : y1 + iy + py[0] + o, cols] for o, _ in ys], [wt for _, wt in ys])
    n = x1 - x0
    _weighted_sum([rows[:, px[0] + o : px[0] + o + n] for o, _ in xs], [wt for _, wt in xs], out=out[y0:y1, x0:x1])
    return out, (slice(y0, y1), slice(x0, x1))


def estimate_translation(prev: np.ndarray, cur: np.ndarray) -> tuple[float, float] | None:
    """The global (dx, dy) with cur(q) ≈ prev(q + d), both HxW luminance; None when the frames do not
    share a view (no clear phase-correlation peak, or a shift beyond MAX_SHIFT of the frame)."""
    h, w = prev.shape
    k = max(1, -(-max(h, w) // PHASE_SIDE))
    small_prev, small_cur = _block_mean(prev, k), _block_mean(cur, k)
    dx, dy, peak = _phase_peak(small_prev, small_cur)
    dx, dy = float(dx * k), float(dy * k)
    if peak < MIN_PEAK or abs(dx) > MAX_SHIFT * w or abs(dy) > MAX_SHIFT * h:
        return None
    # Sub-pixel: Lucas–Kanade steps, first on the downscaled frames (cheap), then at full size.
    if k > 1:
        small = _lucas_kanade(small_prev, small_cur, dx / k, dy / k, LK_STEPS + 1)
        if small is None:
            return None
        dx, dy = small[0] * k, small[1] * k
    # The downscaled steps leave ~0.01 px to go: one full-size step (measured: within 0.002 px).
    return _lucas_kanade(prev, cur, dx, dy, LK_STEPS if k == 1 else 1)


def _lucas_kanade(prev: np.ndarray, cur: np.ndarray, dx: float, dy: float, steps: int) -> tuple[float, float] | None:
    """Refine (dx, dy) by `steps` Gauss–Newton steps on sum (prev(q + d) − cur(q))² over the view."""
    gy, gx = np.gradient(cur)
    for _ in range(steps):
        warped, (rows, cols) = shift(prev, dx, dy)
        ex, ey = gx[rows, cols].ravel(), gy[rows, cols].ravel()
        err = (warped - cur)[rows, cols].ravel()
        if err.size < 64:
            return None
        # Solved with a brightness offset as a third unknown (centring each term): otherwise a
        # uniform brightness change reads as a shift on a still scene, because a frame's gradients
        # need not sum to 0 (measured on the tests' smooth scene: 0.07 px for +2 levels, 0.15 px
        # for +4; with the offset, 0), and a still camera is told by its shift.
        ex, ey, err = ex - ex.mean(), ey - ey.mean(), err - err.mean()
        a = np.array([[ex @ ex, ex @ ey], [ex @ ey, ey @ ey]], np.float64)
        if np.linalg.cond(a) > 1e6:  # a flat or one-directional frame: keep what we have
            break
        ux, uy = np.linalg.solve(a, -np.array([ex @ err, ey @ err], np.float64))
        # warp(prev)(q) = prev(q + d) ≈ cur(q) − u·∇cur(q) when d falls short of the true shift by u.
        dx, dy = dx + ux, dy + uy
        if abs(ux) < 1e-3 and abs(uy) < 1e-3:
            break
    return dx, dy


class TemporalFilter:
    """One video's state: feed it (frame, stylized frame) pairs in order; it returns the steadied
    frame. `reset()` before an unrelated clip; a change of frame size resets it by itself."""

    def __init__(self, settings: TemporalSettings = TemporalSettings()):
        self.settings = settings.check()
        self.reset()

    def reset(self) -> None:
        self._luma: np.ndarray | None = None  # the previous input's luminance: the translation is found against it
        self._estimate: np.ndarray | None = None  # the filtered luminance: the gate compares with it
        self._out: np.ndarray | None = None
        self.last_shift: tuple[float, float] | None = None  # what the last call compensated, for tests and logs

    def __call__(self, frame: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        """frame: the HxWx3 float [0, 1] input the network saw; stylized: its HxWx3 output."""
        s = self.settings
        luma = luminance(frame)
        stylized = stylized.astype(np.float32, copy=False)
        d = None
        if s.history > 0 and self._out is not None and self._out.shape == stylized.shape and self._luma.shape == luma.shape:
            d = estimate_translation(self._luma, luma)
        self.last_shift = d
        if d is None:
            out, estimate = stylized.copy(), luma
        else:
            prev_out, (rows, cols) = shift_cubic(self._out, *d)
            estimate, _ = shift_cubic(self._estimate, *d)
            # The input's difference from the estimate, on luminance, averaged over 5x5 (inside the
            # view only, its edge repeated) so that sensor noise (mean |difference| ≈ 0.8 σ a pixel)
            # does not open the gate pixel by pixel.
            change = _box(np.abs(luma[rows, cols] - estimate[rows, cols]) * 255.0, 2)
            history = max(s.history, s.still_history) if max(abs(d[0]), abs(d[1])) < STILL_SHIFT else s.history
            a = np.zeros(luma.shape, np.float32)  # what came into view has no history
            a[rows, cols] = history * np.clip((s.moving - change) / (s.moving - s.still), 0.0, 1.0)
            estimate -= luma  # estimate = luma + a · (estimate − luma), in place
            estimate *= a
            estimate += luma
            a = a[..., None]
            prev_out -= stylized  # out = stylized + a · (prev_out − stylized), in place
            prev_out *= a
            prev_out += stylized
            out = prev_out  # the cubic overshoots sharp edges a little: 8-bit encoding clips, as for the net's own output
        self._luma, self._estimate, self._out = luma, estimate, out
        return out


class Steadied:
    """A per-frame stylize function (HxWx3 -> HxWx3) with a TemporalFilter after it: a drop-in for
    stylecast.flicker.measure, which calls reset() before each clip."""

    def __init__(self, stylize, settings: TemporalSettings = TemporalSettings()):
        self.stylize = stylize
        self.filter = TemporalFilter(settings)

    def reset(self) -> None:
        self.filter.reset()

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.filter(frame, self.stylize(frame))
