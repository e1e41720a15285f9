"""DeepDream: octave geometry by hand, tiled gradients == whole-image gradients, the chosen layer's
activation norm grows by the factor we measured, output size, --iterations 0, Ctrl-C, CLI errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stylecast.losses.images import to_tensor
from stylecast.optimization.deepdream import ascent_objective, dream, normalize_gradient, octave_sizes, tile_slices
from stylecast import cli
from stylecast.images import load_image, save_image


def test_octave_sizes_by_hand():
    # round(side / 1.4^k): 1.4^3 = 2.744 -> 36.44, 51.02; 1.4^2 = 1.96 -> 51.02, 71.43; 1.4 -> 71.43, 100
    assert octave_sizes(100, 140, 4, 1.4) == [(36, 51), (51, 71), (71, 100), (100, 140)]
    assert octave_sizes(64, 48, 1, 1.4) == [(64, 48)]
    assert octave_sizes(90, 60, 3, 1.5) == [(40, 27), (60, 40), (90, 60)]


def test_tile_slices_cover_without_thin_remainders():
    assert tile_slices(100, 40) == [slice(0, 33), slice(33, 67), slice(67, 100)]
    assert tile_slices(30, 40) == [slice(0, 30)]
    assert tile_slices(80, 40) == [slice(0, 40), slice(40, 80)]


@pytest.mark.parametrize("jitter", [0, 5])
def test_tiled_gradient_equals_whole_image_gradient(jitter):
    # For a score that is a per-pixel mean, the area-weighted tile means are the global mean, so the
    # tiled objective (per-tile backward + surrogate term) must give exactly the whole-image value and
    # gradient, whatever the random roll and tile grid.
    torch.manual_seed(0)
    x = torch.rand(1, 3, 40, 50, requires_grad=True)
    terms = ascent_objective(lambda t: t.pow(2).mean(), jitter=jitter, tile=16)(x)
    terms["total"].backward()
    assert terms["total"].item() == pytest.approx(-x.detach().pow(2).mean().item(), rel=1e-6)
    assert torch.allclose(x.grad, -2 * x.detach() / x.numel(), atol=1e-9, rtol=1e-5)
    with torch.no_grad():  # the loop's final scoring pass: no backward, same value
        assert ascent_objective(lambda t: t.pow(2).mean(), jitter, 16)(x)["total"].item() == pytest.approx(terms["total"].item(), rel=1e-6)


def test_normalized_gradient_has_unit_mean_abs():
    g = torch.tensor([[-4.0, 2.0], [0.0, 2.0]])  # mean |g| = 2
    assert torch.equal(normalize_gradient(g), torch.tensor([[-2.0, 1.0], [0.0, 1.0]]))


def _norm(vgg, image: np.ndarray, layer: str, channel: int | None = None) -> float:
    with torch.no_grad():
        a = vgg(to_tensor(image), [layer])[layer]
    return float((a[:, channel] if channel is not None else a).norm())


def test_dream_raises_layer_norm_keeps_size(vgg, make_image):
    image = make_image(61, 77, 1)  # odd sizes on purpose
    result = dream(image, layer="relu3_1", octaves=2, iterations=5, vgg=vgg, progress=False, device="cpu")
    assert result.image.shape == image.shape
    assert 0.0 <= result.image.min() and result.image.max() <= 1.0
    assert result.octave_sizes == octave_sizes(61, 77, 2, 1.4) == [(44, 55), (61, 77)]
    # every evaluation ran at its octave's size, 5 steps + the final scoring pass per octave
    assert [(r["height"], r["width"]) for r in result.history] == [(44, 55)] * 6 + [(61, 77)] * 6
    # measured: x1.40 (relu3_1, 2 octaves x 5 steps, step 1.5, jitter 32)
    ratio = _norm(vgg, result.image, "relu3_1") / _norm(vgg, image, "relu3_1")
    assert ratio == pytest.approx(result.norm_ratio, rel=1e-4)
    assert ratio > 1.3
    # monotonic-ish: within each octave the (jittered) objective ends well above where it started
    for octave in (0, 1):
        acts = [r["activation"] for r in result.history if r["octave"] == octave]
        assert acts[-1] > 1.2 * acts[0]  # measured x1.35, x1.36
        assert sum(b > a for a, b in zip(acts, acts[1:])) >= 4


def test_dream_channel_amplifies_that_channel(vgg, make_image):
    image = make_image(48, 48, 2)
    result = dream(image, layer="relu3_1", channel=5, octaves=1, iterations=6, jitter=4, vgg=vgg, progress=False, device="cpu")
    # measured: channel 5 norm x2.70, the whole layer only x1.10
    channel_ratio = _norm(vgg, result.image, "relu3_1", 5) / _norm(vgg, image, "relu3_1", 5)
    layer_ratio = _norm(vgg, result.image, "relu3_1") / _norm(vgg, image, "relu3_1")
    assert channel_ratio == pytest.approx(result.norm_ratio, rel=1e-4)
    assert channel_ratio > 2.2 and channel_ratio > 2 * layer_ratio


def test_dream_guide_pushes_towards_the_guide(vgg, make_image, make_style):
    image, guide = make_image(48, 48, 3), make_style(40, 40)
    result = dream(image, layer="relu2_1", guide=guide, octaves=1, iterations=5, jitter=4, vgg=vgg, progress=False, device="cpu")
    # measured: guide score (mean over positions of a_p . best-matching guide feature) x1.25
    assert result.score_after > 1.15 * result.score_before > 0


def test_tiled_dream_raises_norm(vgg, make_image):
    image = make_image(72, 96, 4)
    result = dream(image, layer="relu3_1", octaves=1, iterations=4, tile=40, vgg=vgg, progress=False, device="cpu")
    assert result.image.shape == image.shape
    # measured: x1.19 (2x3 tiles of 36x32 px, 4 steps)
    assert result.norm_ratio > 1.12


def test_zero_iterations_return_the_input(vgg, make_image, tmp_path):
    image = make_image(50, 70, 5)
    result = dream(image, layer="relu3_1", iterations=0, vgg=vgg, progress=False, device="cpu")
    assert np.array_equal(result.image, image)
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    save_image(image, src)
    assert cli.main(["dream", str(src), "-o", str(out), "--layer", "relu3_1", "--iterations", "0", "-q", "--device", "cpu"]) == 0
    assert np.array_equal(load_image(out), load_image(src))


def test_ctrl_c_writes_the_dream_so_far_at_full_size(vgg, make_image, tmp_path):
    image = make_image(60, 80, 6)
    out = tmp_path / "out.png"

    def interrupt(step):
        if step.iteration == 2:
            raise KeyboardInterrupt

    result = dream(image, layer="relu2_1", octaves=3, iterations=4, vgg=vgg, progress=False, device="cpu", output=str(out), callbacks=[interrupt])
    assert result.interrupted and result.iterations == 2  # stopped in the first octave
    assert load_image(out).shape == image.shape
    assert not np.array_equal(result.image, image)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--layer", "relu9_9"], "unknown vgg19 layer name(s) 'relu9_9'; valid names: conv1_1"),
        (["--layer", "relu3_1", "--channel", "256"], "--channel 256 is out of range: relu3_1 has channels 0..255"),
        (["--octaves", "0"], "--octaves must be an integer > 0"),
        (["--octaves", "12", "--layer", "relu5_1"], "the smallest octave is 2x2, but relu5_1 needs at least 16 px"),
        (["--tile", "8"], "--tile must be at least 32"),
        (["--channel", "3", "--guide", "IN"], "not allowed with argument"),
        (["--iterations", "many"], "invalid int value"),
        (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--step", "0"], ""),
    ],
)
def test_cli_errors_one_line_exit_2_no_output(tmp_path, capsys, make_image, args, message):
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    save_image(make_image(64, 64, 7), src)
    args = [str(src) if a == "IN" else a for a in args]
    assert cli.main(["dream", str(src), "-o", str(out), "-q", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("stylecast dream: error: ") and message in err
    assert list(tmp_path.iterdir()) == [src]


def test_cli_bad_files_exit_2_no_output(tmp_path, capsys, make_image):
    src = tmp_path / "in.png"
    save_image(make_image(64, 64, 8), src)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    cases = [
        ([str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "a.png")], "missing.jpg: no such file"),
        ([str(tmp_path / "broken.jpg"), "-o", str(tmp_path / "a.png")], "broken.jpg: not a readable image"),
        ([str(src), "-o", str(tmp_path / "a.xyz")], "unsupported output format '.xyz'"),
        ([str(src), "-o", str(tmp_path / "nodir" / "a.png")], "does not exist"),
        ([str(src), "-o", str(tmp_path / "a.png"), "--guide", str(tmp_path / "missing.jpg")], "missing.jpg: no such file"),
    ]
    for argv, message in cases:
        assert cli.main(["dream", *argv, "-q"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.jpg", "in.png"]
