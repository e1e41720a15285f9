"""The motion-compensated recursive filter (stylecast.inference.temporal): the translation it finds,
the worked-out noise reduction of a recursive average, exact pass-through of what moved, and the
measured flicker cut on the shipped webcam net."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stylecast.errors import UserError
from stylecast.flicker import Motion, make_clip, measure, temporal_std
from stylecast.images import load_image
from stylecast.inference.temporal import (
    Steadied,
    TemporalFilter,
    TemporalSettings,
    estimate_translation,
    luminance,
    shift,
    shift_cubic,
)

from conftest import smooth_image

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def photo(shared_data):
    return load_image(shared_data / "content" / "chelsea_cat.jpg", 480)


# ---- warping -------------------------------------------------------------------------------------


@pytest.mark.parametrize("warp", [shift, shift_cubic])
def test_whole_pixel_shift_is_exact_and_a_ramp_survives_any_shift(warp):
    img = smooth_image(30, 40, seed=2)
    out, (rows, cols) = warp(img, 3, -2)  # out(q) = img(q + (3, -2))
    assert np.array_equal(out[rows, cols], img[rows.start - 2 : rows.stop - 2, cols.start + 3 : cols.stop + 3])
    assert (rows.start, rows.stop, cols.start, cols.stop) == (2, 30, 0, 37)  # the view: whole shifts need no extra taps
    yy, xx = np.mgrid[0:30, 0:40].astype(np.float32)
    ramp = (0.01 * xx + 0.02 * yy)[..., None]
    out, (rows, cols) = warp(ramp, 0.5, -1.25)  # both reproduce a linear ramp exactly (away from the
    expected = (0.01 * (xx + 0.5) + 0.02 * (yy - 1.25))[..., None]  # edge, which the cubic's outer taps repeat)
    inner = (slice(rows.start + 1, rows.stop - 2), slice(cols.start + 1, cols.stop - 2))
    assert np.abs(out[inner] - expected[inner]).max() < 1e-6
    assert (out[: rows.start] == 0).all() and (out[:, cols.stop :] == 0).all()  # outside the view: nothing
    assert (rows.start, rows.stop, cols.start, cols.stop) == (2, 30, 0, 39)  # the samples at q + d inside the image


def test_cubic_keeps_more_texture_than_bilinear_at_half_a_pixel():
    # Stripes of period 4 px sampled ½ px off: the true values are ±cos(π/4). Bilinear's taps (½, ½)
    # pass cos(π/4) of that frequency; Keys' (−1/16, 9/16, 9/16, −1/16) pass 2·(9/16 + 1/16)·cos(π/4).
    xx = np.arange(64, dtype=np.float32)
    img = np.tile(np.cos(2 * np.pi * xx / 4)[None, :, None], (8, 1, 1))
    c = np.cos(np.pi / 4)
    lin, (r, cl) = shift(img, 0.5, 0)
    cub, (r2, c2) = shift_cubic(img, 0.5, 0)
    assert np.abs(lin[r, cl]).max() == pytest.approx(c * c, abs=1e-5)
    assert np.abs(cub[r2, c2]).max() == pytest.approx(2 * (10 / 16) * c * c, abs=1e-5)


# ---- the translation ------------------------------------------------------------------------------


@pytest.mark.parametrize("pan", [(1.0, 0.0), (4.0, 0.0), (-3.0, 2.0), (0.0, 0.0)])
def test_whole_pixel_pans_of_a_photo_are_found_exactly(photo, pan):
    clip = make_clip(photo, Motion("p", pan=pan), frames=2)
    d = estimate_translation(luminance(clip.frames[0]), luminance(clip.frames[1]))
    assert d == pytest.approx(pan, abs=1e-3)


@pytest.mark.parametrize("pan", [(0.5, 0.25), (-2.3, 1.7)])
def test_sub_pixel_pans_are_found_to_a_twentieth_of_a_pixel(pan):
    big = smooth_image(300, 400, seed=4)
    clip = make_clip(big, Motion("p", pan=pan), frames=2, size=(200, 280))
    d = estimate_translation(luminance(clip.frames[0]), luminance(clip.frames[1]))
    assert d == pytest.approx(pan, abs=0.05)


def test_large_frames_are_correlated_downscaled_and_refined_at_full_size(photo):
    wide = np.concatenate([photo, photo[:, ::-1]], axis=1)  # 960 px wide: a 4x downscale for the correlation
    clip = make_clip(wide, Motion("p", pan=(7.0, -3.0)), frames=2, size=(300, 880))
    d = estimate_translation(luminance(clip.frames[0]), luminance(clip.frames[1]))
    assert d == pytest.approx((7.0, -3.0), abs=2e-3)


# ---- the filter -----------------------------------------------------------------------------------


def test_still_camera_noise_is_averaged_as_a_recursive_filter_does():
    # Identity "network", a still photo with fresh σ = 3/255 noise a frame. The input's difference
    # from the filter's estimate averages ~2.5 levels over 5x5, under `still` (4): the history has
    # its full weight everywhere, so the output is the recursive average out_t = x_t + a (out_t−1 − x_t),
    # whose steady-state noise std is sqrt((1 − a) / (1 + a)) of the input's. A still camera takes
    # the higher of `history` and `still_history`: 0.229 at the defaults (0.7, 0.9); 0.420 and 0.577
    # at history 0.7 and 0.5 with the still camera's weight set lower.
    clean = smooth_image(60, 80, seed=1) * 0.8 + 0.1
    rng = np.random.default_rng(0)
    frames = [np.clip(clean + rng.normal(0, 3 / 255, clean.shape), 0, 1).astype(np.float32) for _ in range(200)]
    for settings, a in (
        (TemporalSettings(), 0.9),
        (TemporalSettings(history=0.7, still_history=0), 0.7),
        (TemporalSettings(history=0.5, still_history=0.2), 0.5),
    ):
        f = TemporalFilter(settings)
        outs = [f(x, x) for x in frames]
        assert f.last_shift == pytest.approx((0.0, 0.0), abs=0.02)
        ratio = temporal_std(outs[20:]) / temporal_std(frames[20:])
        assert ratio == pytest.approx(np.sqrt((1 - a) / (1 + a)), rel=0.06)


def test_a_moving_camera_keeps_the_lower_history(photo):
    # A 1-px pan is not a still camera: the weight is `history` (0.7), not `still_history` (0.9).
    # An identity network with a pattern fixed to the frame: after the pan is compensated the input
    # is unchanged (full weight), so the first filtered pair carries exactly (1 − a) of the pattern's
    # frame-to-frame difference (see the next test): 0.3 here, not 0.1.
    clip = make_clip(photo, Motion("p", pan=(1.0, 0.0)), frames=2, size=(96, 128))
    yy, xx = np.mgrid[0:96, 0:128]
    pattern = (0.05 * ((xx // 4 + yy // 4) % 2))[..., None].astype(np.float32)
    f = TemporalFilter(TemporalSettings(still=255.0 - 1, moving=255.0))
    o0, o1 = (f(x, x + pattern) for x in clip.frames)
    prev, (rows, cols) = shift_cubic(o0, 1.0, 0.0)
    moved = np.abs(o1 - prev)[rows, cols].mean()
    assert moved == pytest.approx(0.3 * 0.05 * 31 / 127, rel=1e-3)


def test_a_screen_fixed_artifact_flickers_less_by_exactly_one_minus_the_history(photo):
    # A network whose output carries a pattern fixed to the frame (what a stride grid does) flickers
    # on a pan by |p − shift(p)|. The filter compensates the pan exactly (whole pixels, the input
    # unchanged after it: gate open), so at the first pair the error is (1 − h) of that.
    h = 0.7
    clip = make_clip(photo, Motion("p", pan=(1.0, 0.0)), frames=2, size=(96, 128))
    yy, xx = np.mgrid[0:96, 0:128]
    pattern = (0.05 * ((xx // 4 + yy // 4) % 2))[..., None].astype(np.float32)
    net = [x + pattern for x in clip.frames]
    f = TemporalFilter(TemporalSettings(history=h, still=255.0 - 1, moving=255.0))  # gate open on the whole overlap
    outs = [f(x, y) for x, y in zip(clip.frames, net)]

    def error(o0, o1):
        prev, (rows, cols) = shift_cubic(o0, 1.0, 0.0)
        return np.abs(o1 - prev)[rows, cols].mean()

    assert error(*outs) == pytest.approx((1 - h) * error(*net), rel=1e-4)
    assert error(*net) == pytest.approx(0.05 * 31 / 127, rel=1e-4)  # the checker's edges: 31 of the 127 columns in view


def test_what_moved_or_came_into_view_is_the_new_frame_alone(photo):
    # An identity network on a pan: the compensated history equals the new frame where both see the
    # photo, and the strip that came into view has no history: the output is the input (no ghost).
    clip = make_clip(photo, Motion("p", pan=(4.0, 0.0)), frames=3)
    f = TemporalFilter()
    for x in clip.frames:
        out = f(x, x)
        assert np.abs(out - x).max() < 1e-5
    # A different photo (a cut): every pixel changed by more than `moving`, nothing of the old frame.
    other = np.ascontiguousarray(clip.frames[0][::-1, ::-1])
    stylized = other * 0.5
    out = f(other, stylized)
    assert np.abs(out - stylized).mean() * 255 < 0.5


def test_a_new_size_starts_over_and_history_zero_is_the_network_alone():
    a, b = smooth_image(48, 64, seed=1), smooth_image(64, 48, seed=1)
    f = TemporalFilter()
    f(a, a * 0.5)
    out = f(b, b * 0.5)
    assert f.last_shift is None and np.array_equal(out, b * 0.5)
    off = TemporalFilter(TemporalSettings(history=0))
    off(a, a)
    assert np.array_equal(off(a, a * 0.3), a * 0.3)


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(history=0.96), "steady (the previous frame's weight) must be between 0 and 0.95, got 0.96"),
        (dict(history=-0.1), "between 0 and 0.95, got -0.1"),
        (dict(still=12.0, moving=12.0), "still < moving"),
        (dict(still_history=0.99), "the still camera's weight must be between 0 and 0.95, got 0.99"),
    ],
)
def test_bad_settings_are_one_line_errors(settings, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TemporalSettings(**settings).check()


def test_the_shipped_webcam_net_flickers_less_than_half_with_the_filter(photo):
    # Measured (README, BENCHMARKS "Flicker with the temporal filter"): starry_night_tiny 7.42 -> 2.46
    # levels on 1-px pans and noise 0.32 -> 0.05 (two photos, 6 frames). Here one photo: bounds with room.
    from stylecast.inference.stylizer import Stylizer

    s = Stylizer(ROOT / "checkpoints" / "starry_night_tiny.onnx", backend="ort")
    motions = [Motion("pan 1 px", pan=(1.0, 0.0)), Motion("noise", noise=3 / 255)]
    alone = measure(lambda x: s(x), photo, motions, frames=6)
    steady = measure(Steadied(lambda x: s(x)), photo, motions, frames=6)
    assert steady["pan 1 px"] < 0.45 * alone["pan 1 px"]
    assert steady["noise amplification"] < 0.7 * alone["noise amplification"]


def test_the_stream_never_carries_a_frame_of_old_settings_into_the_new_ones():
    # A frame submitted before a settings message (stylized with the old style or strength) reaches
    # the filter after it: it passes unfiltered and leaves no history, or the old style would ghost
    # into the new one for a few frames (seen in the page: strength 0 still showed the style).
    from stylecast.inference.server_stream import StreamSteady

    x = smooth_image(40, 60, seed=3)
    old_style, new_style = x * 0.2, x * 0.9
    steady = StreamSteady(0.7)
    late = steady.step(1)  # submitted under the old settings
    steady.reset(0.7)  # the settings message
    assert np.array_equal(late(x, old_style), old_style)
    assert np.array_equal(steady.step(2)(x, new_style), new_style)  # no history from frame 1
    assert np.abs(steady.step(3)(x, new_style) - new_style).max() < 1e-6
    older = steady.step(2)  # pipelined: an older frame after a newer one passes unfiltered
    assert np.array_equal(older(x, old_style), old_style)


@pytest.mark.parametrize("r, lag, lag_07", [(2.0, 4.051, 3.075), (1.0, 3.918, 2.333), (0.3, 2.7, 0.7)])
def test_a_slow_brightness_ramp_trails_by_about_still_levels(r, lag, lag_07):
    # A still camera, an identity network, every pixel brighter by r levels a frame. The gate sees the
    # input's difference from the estimate, c = e + r, where e is the lag; the estimate (and, for an
    # identity network, the output) then trails by e = a·c with a = h · clip((12 − c) / 8). The
    # fixed point, worked out at h = 0.9 (a still camera's weight): 0.1125 c² − 0.35 c − r = 0 where
    # c > 4 (r = 2: c = 6.051, e = 4.051; r = 1: c = 4.918, e = 3.918), e = 9 r where c ≤ 4 (r = 0.3:
    # e = 2.7). At h = 0.7: 0.0875 c² − 0.05 c − r = 0 (r = 2: e = 3.075), else e = 7/3 r. A gate on
    # the frame-to-frame change would never open (r < 4): the output would trail by 9 r at 0.9, 18
    # levels at r = 2.
    scene = smooth_image(80, 100, seed=4) * 0.3 + 0.2
    frames = [scene + np.float32(t * r / 255) for t in range(80)]  # 0.9⁸⁰: settled
    for settings, want in ((TemporalSettings(), lag), (TemporalSettings(history=0.7, still_history=0), lag_07)):
        f = TemporalFilter(settings)
        outs = [f(x, x) for x in frames]
        assert f.last_shift == (0.0, 0.0) or max(map(abs, f.last_shift)) < 1e-3  # a brightness change is not a pan
        assert (frames[-1] - outs[-1]).mean() * 255 == pytest.approx(want, rel=0.01)
