"""Warping error and noise amplification on synthetic clips: worked values."""

import re

import numpy as np
import pytest

from conftest import ROOT, smooth_image
from stylecast.flicker import MOTIONS, Motion, bilinear, make_clip, measure, temporal_std, warping_error

PHOTO = smooth_image(200, 260, seed=3)
SMALL = (60, 80)


def test_pointwise_functions_have_zero_error_on_integer_pans():
    for f in (lambda x: x, lambda x: 1.0 - x, lambda x: x**2):
        out = measure(f, PHOTO, [Motion("p1", pan=(1, 0)), Motion("p3", pan=(0, 3)), Motion("p2", pan=(2, -1))], frames=5, size=SMALL)
        assert max(out.values()) == 0.0


def test_a_fixed_pattern_gives_its_expected_difference():
    # out = 0.5·x + U, U ~ uniform[0, a) fixed per pixel: a one-pixel pan compares U at neighbouring
    # pixels, E|U1 − U2| = a/3, so the error is 255·a/3 = 8.5 levels for a = 0.1.
    pattern = np.random.default_rng(0).uniform(0, 0.1, (*SMALL, 3)).astype(np.float32)
    err = measure(lambda x: 0.5 * x + pattern, PHOTO, [Motion("p1", pan=(1, 0))], frames=6, size=SMALL)["p1"]
    assert err == pytest.approx(255 * 0.1 / 3, rel=0.03)


def test_subpixel_pans_and_zoom_are_exact_on_a_linear_image():
    # bilinear interpolation reproduces a linear function exactly: the warp adds no error there
    yy, xx = np.mgrid[0:200, 0:260].astype(np.float32)
    ramp = np.stack([xx / 260, yy / 200, (xx + yy) / 460], -1)
    out = measure(lambda x: x, ramp, [Motion("half", pan=(0.5, 0.25)), Motion("zoom", zoom=1.01)], frames=5, size=SMALL)
    assert max(out.values()) < 1e-3


def test_noise_amplification_is_the_ratio_of_temporal_stds():
    out = measure(lambda x: 0.5 * x + 0.25, PHOTO, [Motion("n", noise=3 / 255)], frames=10, size=SMALL)
    assert out["n amplification"] == pytest.approx(0.5, abs=1e-6)
    clip = make_clip(PHOTO, Motion("n", noise=3 / 255), frames=40, size=SMALL)
    # fresh N(0, 3/255) each frame, a few pixels clipped at 0/1: the temporal std is ~3 levels
    assert temporal_std(clip.frames) == pytest.approx(3.0 * np.sqrt(39 / 40), rel=0.05)


def test_a_one_pixel_shift_inside_the_model_is_seen():
    # a model that moves its output one pixel right compared to the input: on a still camera
    # (brightness ramp of 0) nothing changes, but a pan of 1 px is still matched exactly, since
    # the shift is the same in every frame: warping error compares outputs only
    shift = lambda x: np.roll(x, 1, axis=1)  # noqa: E731
    clip = make_clip(PHOTO, Motion("p", pan=(1, 0)), frames=4, size=SMALL)
    outs = [shift(f) for f in clip.frames]
    # only column 0 (the wrapped one) and its neighbour disagree
    assert 0 < warping_error(clip, outs) < 255 * 2 / SMALL[1]


def test_bilinear_samples_between_pixels_and_clips_at_edges():
    img = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
    assert bilinear(img, np.array([1.5]), np.array([1.0]))[0, 0] == pytest.approx(5.5)
    assert bilinear(img, np.array([-3.0]), np.array([9.0]))[0, 0] == pytest.approx(8.0)


def test_a_clip_that_leaves_the_photo_is_refused():
    with pytest.raises(ValueError, match="pan 4 px: frame .* leaves the 90x70 photo"):
        make_clip(smooth_image(70, 90), MOTIONS[1], frames=8, size=(60, 80))


def test_the_benchmark_measures_a_multi_style_model_with_its_first_style():
    # painters.onnx takes a style with every frame; the benchmark's row says which one it used
    from benchmarks.bench_flicker import _stylize, extra_nets
    from stylecast.inference.stylizer import Stylizer

    path = ROOT / "checkpoints" / "painters.onnx"
    name, fn, _ = _stylize(path)
    s = Stylizer(path, backend="ort")
    first = s.style_names[0]
    assert name == f"painters/{first}"
    frame = smooth_image(48, 64, seed=3)
    np.testing.assert_array_equal(fn(frame), s(frame, style_weights={first: 1.0}))
    assert list(extra_nets([f"{path}=my label"])) == ["my label"]


def test_the_filtered_print_gives_the_shipped_tiny_nets_card_numbers(shared_data, capsys):
    # --filtered prints frame-by-frame / filtered means at the filter's defaults: for the tiny net, the
    # numbers its model card gives (scripts/model_card.py measured them through another path; 6.55 and
    # 2.15 at a 1-px pan, noise 0.27 and 0.04 when this was written)
    from benchmarks.bench_flicker import print_filtered

    card = (ROOT / "checkpoints" / "starry_night_tiny.md").read_text()

    def card_row(prefix: str) -> dict[str, float]:
        row = next(line for line in card.splitlines() if line.startswith(f"| {prefix}"))
        return {k: float(v) for k, v in re.findall(r"(pan 1 px|noise 3/255 amplification) ([0-9.]+)", row)}

    alone, steady = card_row("flicker (frames stylized"), card_row("flicker with the temporal filter (its defaults")
    print_filtered([str(ROOT / "checkpoints" / "starry_night_tiny.onnx")], frames=6)
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| starry_night_tiny")][0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    one_px, noise = cells[1].split(" / "), cells[5].split(" / ")
    assert [float(v) for v in one_px] == pytest.approx([alone["pan 1 px"], steady["pan 1 px"]], abs=0.006)
    assert [float(v) for v in noise] == pytest.approx([alone["noise 3/255 amplification"], steady["noise 3/255 amplification"]], abs=0.006)
    assert steady["noise 3/255 amplification"] < 0.5 * alone["noise 3/255 amplification"]
