"""Stability training: the loss, the random camera motions, and the trainer option."""

import csv
import math

import pytest
import torch

from stylecast.losses.functional import stability_loss
from stylecast.training.cli import main as train_main
from stylecast.training.stability import Perturbation, random_theta, warp
from test_training import cli_args, photos, style  # noqa: F401  (fixtures)


def test_stability_loss_is_the_masked_mean_square():
    a = torch.zeros(2, 3, 4, 5)
    b = a.clone()
    b[..., :, :2] = 0.1  # differs by 0.1 on 2 of 5 columns
    assert stability_loss(b, a).item() == pytest.approx(0.01 * 2 / 5)
    mask = torch.zeros(2, 1, 4, 5)
    mask[..., :, :2] = 1
    assert stability_loss(b, a, mask).item() == pytest.approx(0.01)
    mask[..., :, :] = 0
    mask[..., :, 4] = 1
    assert stability_loss(b, a, mask).item() == 0.0


def test_a_one_pixel_shift_moves_the_image_by_exactly_one_pixel():
    x = torch.rand(1, 3, 6, 8)
    theta = torch.tensor([[[1.0, 0.0, 2 / 8], [0.0, 1.0, 0.0]]])  # +1 px in x (normalized units 2/W)
    moved, mask = warp(x, theta)
    torch.testing.assert_close(moved[..., :, :-1], x[..., :, 1:])
    assert mask[..., :, :-1].all() and not mask[..., :, -1].any()


def test_random_motions_stay_within_their_bounds():
    p = Perturbation(shift=3.0, rotation=2.0, zoom=0.05, noise=0.0)
    g = torch.Generator().manual_seed(0)
    theta = random_theta(500, 64, 96, p, generator=g)
    tx_px, ty_px = theta[:, 0, 2] * 96 / 2, theta[:, 1, 2] * 64 / 2
    assert tx_px.abs().max() <= 3.0 and ty_px.abs().max() <= 3.0 and tx_px.abs().max() > 2.5
    # rows of the linear part: (cos, -sin·a)/s and (sin/a, cos)/s; recover the angle and the zoom
    cos_s, sin_s = theta[:, 0, 0], theta[:, 1, 0] * 64 / 96
    angle = torch.rad2deg(torch.atan2(sin_s, cos_s))
    scale = 1 / torch.sqrt(cos_s**2 + sin_s**2)
    assert angle.abs().max() <= 2.0 + 1e-4 and (scale - 1).abs().max() <= 0.05 + 1e-6


def test_a_linear_pointwise_net_is_perfectly_stable():
    # bilinear warping commutes with an affine map of the colours: f(T(x)) == T(f(x)) exactly
    f = lambda x: 0.5 * x + 0.2  # noqa: E731
    x = torch.rand(4, 3, 32, 48)
    theta = random_theta(4, 32, 48, Perturbation(), generator=torch.Generator().manual_seed(1))
    moved, mask = warp(x, theta)
    target, _ = warp(f(x), theta)
    assert stability_loss(f(moved), target, mask).item() < 1e-12
    # and a net that adds a fixed pattern is not
    pattern = torch.rand(1, 3, 32, 48)
    g = lambda x: 0.5 * x + pattern  # noqa: E731
    target, _ = warp(g(x), theta)
    assert stability_loss(g(moved), target, mask).item() > 1e-3


def test_training_with_the_stability_loss_logs_it(photos, style, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    code = train_main(cli_args(photos, style, out, "--steps", "3", "--trainer.val_check_interval", "3",
                               "--trainer.log_every_n_steps", "1", "--model.stability_weight", "1000"))  # fmt: skip
    assert code == 0
    rows = list(csv.DictReader(next((out / "logs").glob("version_*/metrics.csv")).open()))
    train = [r for r in rows if r.get("train/stability")]
    val = [r for r in rows if r.get("val/stability")]
    assert len(train) == 3 and val
    for r in train:  # total = content + 5·style + 1000·TV (the module defaults) + 1000·stability
        objective = float(r["train/content"]) + 5.0 * float(r["train/style"]) + 1000.0 * float(r["train/tv"])
        assert float(r["train/total"]) == pytest.approx(objective + 1000 * float(r["train/stability"]), rel=1e-3)
    # validation measures it but keeps val/total the objective's, comparable across runs
    v = val[-1]
    assert float(v["val/total"]) == pytest.approx(float(v["val/content"]) + 5.0 * float(v["val/style"]) + 1000.0 * float(v["val/tv"]), rel=1e-3)
    assert math.isfinite(float(v["val/stability"])) and float(v["val/stability"]) > 0


def test_the_still_camera_noise_term_has_its_own_weight(photos, style, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    code = train_main(cli_args(photos, style, out, "--steps", "2", "--trainer.val_check_interval", "2", "--trainer.log_every_n_steps", "1",
                               "--model.stability_weight", "1000", "--model.stability_noise_weight", "3e5"))  # fmt: skip
    assert code == 0
    rows = list(csv.DictReader(next((out / "logs").glob("version_*/metrics.csv")).open()))
    train = [r for r in rows if r.get("train/stability_noise")]
    assert len(train) == 2
    for r in train:  # total = the objective + 1000·motion + 3e5·still-camera noise
        objective = float(r["train/content"]) + 5.0 * float(r["train/style"]) + 1000.0 * float(r["train/tv"])
        want = objective + 1000 * float(r["train/stability"]) + 3e5 * float(r["train/stability_noise"])
        assert float(r["train/total"]) == pytest.approx(want, rel=1e-3) and float(r["train/stability_noise"]) > 0
    v = [r for r in rows if r.get("val/stability_noise")][-1]
    assert float(v["val/total"]) == pytest.approx(float(v["val/content"]) + 5.0 * float(v["val/style"]) + 1000.0 * float(v["val/tv"]), rel=1e-3)
