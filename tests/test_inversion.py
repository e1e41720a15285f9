"""Feature inversion: the α-norm prior and PSNR by hand, the objective's terms, relu1_1 gives the
image back closely and a deep layer less closely (PSNRs we measured), CLI errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stylecast.losses.functional import alpha_norm, content_loss, total_variation
from stylecast.losses.images import to_tensor
from stylecast.optimization.common import psnr
from stylecast.optimization.inversion import InversionObjective, InversionOptions, invert
from stylecast import cli
from stylecast.images import load_image, save_image


def test_alpha_norm_by_hand():
    x = torch.tensor([[-1.0, 0.5], [2.0, 0.0]])
    # α = 2: (1 + 0.25 + 4 + 0) / 4 ; α = 6: (1 + 1/64 + 64 + 0) / 4
    assert alpha_norm(x, 2.0).item() == pytest.approx(1.3125)
    assert alpha_norm(x, 6.0).item() == pytest.approx(16.25390625)
    assert alpha_norm(torch.zeros(1, 3, 4, 4)).item() == 0.0
    # fp32 even for a bf16 input
    assert alpha_norm(x.to(torch.bfloat16), 2.0).dtype == torch.float32


def test_psnr_by_hand():
    a = np.zeros((4, 4, 3), np.float32)
    assert psnr(a, a) == math.inf
    assert psnr(a + 0.1, a) == pytest.approx(20.0)  # MSE 0.01
    assert psnr(a + 0.5, a) == pytest.approx(10 * math.log10(4))


def test_objective_terms(vgg, make_image):
    photo = to_tensor(make_image(32, 40, 0))
    o = InversionOptions(tv_weight=0.5, alpha_weight=1e-3)
    objective = InversionObjective(vgg, "relu2_1", photo, o)
    at_target = objective(photo)
    assert at_target["features"].item() == 0.0
    x = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(0))
    terms = objective(x)
    target = vgg(photo, ["relu2_1"])["relu2_1"]
    features = content_loss(vgg(x, ["relu2_1"])["relu2_1"], target) / target.pow(2).mean()
    assert terms["features"].item() == pytest.approx(features.item(), rel=1e-5)
    assert terms["alpha"].item() == pytest.approx(alpha_norm(2 * (x - 0.5), 6.0).item(), rel=1e-6)
    assert terms["tv"].item() == pytest.approx(total_variation(x, 2.0).item(), rel=1e-6)
    assert terms["total"].item() == pytest.approx(features.item() + 1e-3 * terms["alpha"].item() + 0.5 * terms["tv"].item(), rel=1e-5)


def test_low_layer_reconstructs_closely_deep_layer_less(vgg, make_image):
    image = make_image(48, 64, 0)
    low = invert(image, layer="relu1_1", size=None, iterations=30, vgg=vgg, progress=False, device="cpu")
    deep = invert(image, layer="relu4_1", size=None, iterations=20, vgg=vgg, progress=False, device="cpu")
    assert low.image.shape == deep.image.shape == image.shape
    # measured: relu1_1 32.7 dB after 30 L-BFGS steps from noise, relu4_1 12.2 dB after 20 (48x64)
    assert low.psnr > 30.0
    assert deep.psnr < low.psnr - 10.0
    assert low.psnr == pytest.approx(psnr(low.image, image))
    # from noise: the start is far from the photo
    assert psnr(np.clip(0.5 + 0.15 * np.random.default_rng(0).standard_normal(image.shape), 0, 1), image) < 15


@pytest.mark.slow
def test_psnr_falls_layer_by_layer(vgg, shared_data):
    photo = load_image(shared_data / "content" / "chelsea_cat.jpg", 96)
    values = [
        invert(photo, layer=layer, size=None, iterations=150, vgg=vgg, progress=False, device="cpu").psnr
        for layer in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    ]
    assert values == sorted(values, reverse=True), values


def test_cli_writes_output(tmp_path, capsys, make_image):
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    save_image(make_image(40, 60, 1), src)
    assert cli.main(["invert", str(src), "-o", str(out), "--layer", "relu1_1", "--size", "30", "--iterations", "3", "-q", "--device", "cpu"]) == 0
    assert load_image(out).shape == (20, 30, 3)
    assert "PSNR" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--layer", "fc7"], "unknown vgg19 layer name(s) 'fc7'"),
        (["--size", "-3"], "--size must be an integer > 0"),
        (["--size", "8", "--layer", "relu5_1"], "relu5_1 needs at least 16 px"),
        (["--iterations", "-1"], "--iterations must be an integer >= 0"),
        (["--tv-weight", "nan"], "--tv-weight must be a number >= 0"),
        (["--optimizer", "sgd"], "invalid choice: 'sgd'"),
    ],
)
def test_cli_errors_one_line_exit_2_no_output(tmp_path, capsys, make_image, args, message):
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    save_image(make_image(40, 40, 2), src)
    assert cli.main(["invert", str(src), "-o", str(out), "-q", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("stylecast invert: error: ") and message in err, err
    assert list(tmp_path.iterdir()) == [src]
