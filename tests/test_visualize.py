"""Activation maximization: the Fourier/colour parameterization by hand, the channel's mean
activation rises far above its value on noise (factor measured), pixel vs Fourier, CLI errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stylecast.optimization.inversion import noise_image
from stylecast.optimization.visualize import (
    COLOR_MATRIX,
    VisualizeOptions,
    channel_activation,
    image_from_parameters,
    init_parameters,
    spectrum_scale,
    standard_transforms,
    visualize,
)
from stylecast import cli
from stylecast.images import load_image


def test_spectrum_scale_by_hand():
    s = spectrum_scale(4, 4)
    assert s.shape == (4, 3)  # rfft2 keeps W//2+1 columns
    # f(0,0) = 0 is clamped to 1/4 -> 4·sqrt(16) = 16; f = 0.25 -> 16 too; f(2,2) = sqrt(0.5) -> 4/sqrt(0.5)
    assert s[0, 0].item() == pytest.approx(16.0)
    assert s[0, 1].item() == pytest.approx(16.0)
    assert s[2, 2].item() == pytest.approx(4 / math.sqrt(0.5))


def test_parameterization_maps_to_an_image():
    o = VisualizeOptions()
    zeros = torch.zeros(2, 3, 8, 5)
    assert torch.equal(image_from_parameters(zeros, 8, 8, o), torch.full((1, 3, 8, 8), 0.5))
    assert COLOR_MATRIX.norm(dim=0).max().item() == pytest.approx(1.0)
    start = image_from_parameters(init_parameters(32, 32, "fourier", 0), 32, 32, o)
    assert start.shape == (1, 3, 32, 32) and (start - 0.5).abs().max() < 0.2  # lucid starts near grey
    pixel = VisualizeOptions(parameterization="pixel")
    assert image_from_parameters(init_parameters(32, 32, "pixel", 0), 32, 32, pixel).shape == (1, 3, 32, 32)


def test_standard_transforms_shape():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 64)
    y = standard_transforms(x)
    # pad 12 each side (88), jitter 8 (80), scale 0.9..1.1 (72..88), jitter 4
    assert 68 <= y.shape[-1] <= 84 and y.shape[-2] == y.shape[-1]


def _high_frequency_share(image: np.ndarray) -> float:
    """Share of the grey image's spectral energy (mean removed) above half the Nyquist frequency."""
    grey = image.mean(axis=2)
    spec = np.abs(np.fft.fft2(grey - grey.mean())) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(grey.shape[0]), np.fft.fftfreq(grey.shape[1]), indexing="ij")
    return float(spec[np.hypot(fy, fx) > 0.25].sum() / spec.sum())


def test_channel_activation_rises_far_above_noise(vgg):
    layer, channel, size = "relu4_1", 0, 64
    with torch.no_grad():
        on_noise = channel_activation(vgg, noise_image(size, size, 0), layer, channel).item()
    result = visualize(layer=layer, channel=channel, size=size, iterations=24, vgg=vgg, progress=False, device="cpu")
    assert result.image.shape == (size, size, 3)
    # measured: 164 on noise, 33 on the grey random start, 5924 after 24 Adam steps (36x noise)
    assert result.activation > 20 * on_noise
    assert result.activation > 100 * result.activation_start
    with torch.no_grad():
        again = channel_activation(vgg, torch.from_numpy(result.image).permute(2, 0, 1)[None], layer, channel).item()
    assert again == pytest.approx(result.activation, rel=0.02)  # the saved 8-bit-able image, no transforms


@pytest.mark.slow
def test_fourier_parameterization_is_smoother_than_pixels(vgg):
    kw = dict(layer="relu4_1", channel=0, size=96, iterations=128, vgg=vgg, progress=False, device="cpu")
    lucid = visualize(**kw)
    naive = visualize(parameterization="pixel", transforms=False, **kw)
    # measured: energy above half Nyquist 0.30 (Fourier + transforms) vs 0.60 (pixels, no transforms);
    # pixels + transforms 0.41, Fourier without transforms 0.41
    assert lucid.activation > 100 * lucid.activation_start
    assert _high_frequency_share(lucid.image) < 0.6 * _high_frequency_share(naive.image)


def test_cli_writes_output(tmp_path, capsys):
    out = tmp_path / "ch.png"
    assert cli.main(["visualize", "--layer", "relu2_1", "--channel", "3", "--size", "40", "--iterations", "2", "-o", str(out), "-q", "--device", "cpu"]) == 0
    assert load_image(out).shape == (40, 40, 3)
    assert "relu2_1 channel 3" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--layer", "relu4_1", "--channel", "512"], "--channel 512 is out of range: relu4_1 has channels 0..511"),
        (["--layer", "relu4_1"], "the following arguments are required: --channel"),
        (["--layer", "relu4_1", "--channel", "-1"], "--channel must be a channel number >= 0"),
        (["--layer", "relu5_1", "--channel", "1", "--size", "8"], "--size 8 is too small: relu5_1 needs at least 16 px"),
        (["--layer", "relu9_1", "--channel", "1"], "unknown vgg19 layer name(s) 'relu9_1'"),
        (["--channel", "1", "--lr", "0"], "--lr must be a number > 0"),
        (["--channel", "1", "--parameterization", "cppn"], "invalid choice: 'cppn'"),
    ],
)
def test_cli_errors_one_line_exit_2_no_output(tmp_path, capsys, args, message):
    out = tmp_path / "out.png"
    assert cli.main(["visualize", "-o", str(out), "-q", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("stylecast visualize: error: ") and message in err, err
    assert list(tmp_path.iterdir()) == []
