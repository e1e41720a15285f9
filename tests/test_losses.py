"""The loss formulas against values worked out by hand, and PerceptualLoss == the functional form."""

import math

import pytest
import torch

from stylecast.losses.functional import blend_grams, content_loss, gram_matrix, style_loss, total_variation
from stylecast.losses.perceptual import PerceptualLoss, parse_layers


def test_gram_matrix_by_hand():
    # C=2 channels over H·W=2 pixels: f0 = [1, 2], f1 = [3, 4]
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, 2, 1, 2)
    g = gram_matrix(f)
    # F·Fᵀ = [[1+4, 3+8], [3+8, 9+16]] = [[5, 11], [11, 25]], divided by C·H·W = 4
    assert torch.allclose(g, torch.tensor([[[1.25, 2.75], [2.75, 6.25]]]))
    assert g.dtype == torch.float32


def test_gram_matrix_batched_and_size_independent():
    torch.manual_seed(0)
    f = torch.rand(3, 4, 5, 6)
    g = gram_matrix(f)
    assert g.shape == (3, 4, 4)
    for b in range(3):
        fb = f[b].reshape(4, -1)
        assert torch.allclose(g[b], fb @ fb.T / (4 * 30), atol=1e-6)
    # Tiling an image 2x2 keeps the normalized Gram: a style image's size does not change its target.
    tiled = f.repeat(1, 1, 2, 2)
    assert torch.allclose(gram_matrix(tiled), g, atol=1e-6)


def test_gram_matrix_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    f = torch.rand(1, 8, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g = gram_matrix(f.to(torch.bfloat16))
    assert g.dtype == torch.float32
    # the input was rounded to bf16 (3 significant digits), the product was not
    assert torch.allclose(g, gram_matrix(f), rtol=1e-2)


def test_content_loss_by_hand():
    a = torch.zeros(1, 1, 2, 2)
    b = torch.tensor([[[[1.0, 2.0], [3.0, 0.0]]]])
    assert content_loss(a, b).item() == pytest.approx((1 + 4 + 9 + 0) / 4)


def test_style_loss_by_hand():
    g = {"a": torch.ones(1, 2, 2), "b": torch.zeros(1, 2, 2)}
    t = {"a": torch.zeros(1, 2, 2), "b": torch.full((1, 2, 2), 2.0)}
    # a: mean((1-0)²) = 1 ; b: mean((0-2)²) = 4 ; weighted 0.5·1 + 2·4 = 8.5
    assert style_loss(g, t, {"a": 0.5, "b": 2.0}).item() == pytest.approx(8.5)
    # a (1, C, C) target is shared across a batch of 3
    gb = {"a": torch.ones(3, 2, 2)}
    assert style_loss(gb, {"a": torch.zeros(1, 2, 2)}, {"a": 1.0}).item() == pytest.approx(1.0)


def test_total_variation_checkerboard_and_constant():
    board = (torch.arange(8).view(8, 1) + torch.arange(8).view(1, 8)) % 2
    board = board.float().expand(1, 3, 8, 8)
    assert total_variation(board).item() == pytest.approx(2.0)
    assert total_variation(board, exponent=2.0).item() == pytest.approx(2.0)
    assert total_variation(torch.full((1, 3, 5, 7), 0.3)).item() == 0.0
    # a horizontal ramp 0, .1, .2, ...: only x-differences, each 0.1
    ramp = (torch.arange(6).float() / 10).expand(1, 1, 4, 6)
    assert total_variation(ramp).item() == pytest.approx(0.1)
    assert total_variation(ramp, exponent=2.0).item() == pytest.approx(0.01)


def test_blend_grams():
    g1 = {"x": torch.ones(1, 2, 2)}
    g2 = {"x": torch.full((1, 2, 2), 3.0)}
    assert torch.allclose(blend_grams([g1, g2], [1, 0])["x"], g1["x"])
    assert torch.allclose(blend_grams([g1, g2], [0.5, 0.5])["x"], torch.full((1, 2, 2), 2.0))
    assert torch.allclose(blend_grams([g1, g2], [3, 1])["x"], torch.full((1, 2, 2), 1.5))  # normalized
    with pytest.raises(ValueError):
        blend_grams([g1, g2], [1.0])


def test_parse_layers():
    assert parse_layers("relu1_1, relu2_1:0.5") == {"relu1_1": 1.0, "relu2_1": 0.5}
    assert parse_layers(["relu4_2"]) == {"relu4_2": 1.0}
    assert parse_layers({"relu3_1": 2}) == {"relu3_1": 2.0}
    with pytest.raises(ValueError):
        parse_layers("relu1_1:abc")


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(0)
    return torch.rand(2, 3, 40, 48), torch.rand(2, 3, 40, 48), torch.rand(1, 3, 56, 64)


def test_perceptual_loss_equals_functional(vgg, images):
    image, content, style = images
    loss = PerceptualLoss("relu2_2", "relu1_1,relu3_1:0.5", content_weight=2.0, style_weight=30.0, tv_weight=5.0, vgg=vgg)
    loss.set_style(style)
    out = loss(image, content)

    f_img = vgg(image, ["relu2_2", "relu1_1", "relu3_1"])
    f_con = vgg(content, ["relu2_2"])
    f_sty = vgg(style, ["relu1_1", "relu3_1"])
    c = content_loss(f_img["relu2_2"], f_con["relu2_2"])
    s = 1.0 * torch.mean((gram_matrix(f_img["relu1_1"]) - gram_matrix(f_sty["relu1_1"])) ** 2) + 0.5 * torch.mean(
        (gram_matrix(f_img["relu3_1"]) - gram_matrix(f_sty["relu3_1"])) ** 2
    )
    tv = total_variation(image)
    assert out["content"].item() == pytest.approx(c.item(), rel=1e-5)
    assert out["style"].item() == pytest.approx(s.item(), rel=1e-5)
    assert out["tv"].item() == pytest.approx(tv.item(), rel=1e-6)
    assert out["total"].item() == pytest.approx(2 * c.item() + 30 * s.item() + 5 * tv.item(), rel=1e-5)

    # cached content targets give the same numbers as passing the content image
    loss.set_content(content)
    assert loss(image)["total"].item() == pytest.approx(out["total"].item(), rel=1e-6)


def test_perceptual_loss_zero_at_target(vgg, images):
    _, content, _ = images
    loss = PerceptualLoss("relu2_2", "relu1_1,relu2_1", vgg=vgg)
    loss.set_style(content[:1])
    out = loss(content[:1], content[:1])
    assert out["content"].item() == 0.0
    assert out["style"].item() == pytest.approx(0.0, abs=1e-6)


def test_perceptual_loss_blend_weights_one_zero_equals_single(vgg, images):
    _, content, style = images
    single = PerceptualLoss(vgg=vgg)
    single.set_style(style)
    blended = PerceptualLoss(vgg=vgg)
    blended.set_style([style, content[:1]], blend=[1.0, 0.0])
    for name, target in single.style_targets.items():
        assert torch.equal(target, blended.style_targets[name])


def test_per_style_targets_score_each_image_against_its_own_style(vgg, images):
    image, content, style = images
    other = torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(5))
    multi = PerceptualLoss("relu2_2", "relu1_1,relu3_1:0.5", style_weight=30.0, vgg=vgg)
    multi.set_styles([style, other])
    assert multi.style_targets["relu1_1"].shape == (2, 64, 64)
    out = multi(image, content, style_index=torch.tensor([1, 0]))
    # image i against style s_i, computed one image at a time with a single-style loss
    per_image = []
    for i, target in enumerate((other, style)):
        single = PerceptualLoss("relu2_2", "relu1_1,relu3_1:0.5", style_weight=30.0, vgg=vgg)
        single.set_style(target)
        per_image.append(single(image[i : i + 1], content[i : i + 1])["style"].item())
    assert out["style_per_sample"].tolist() == pytest.approx(per_image, rel=1e-5)
    assert out["style"].item() == pytest.approx(sum(per_image) / 2, rel=1e-5)
    # a per-image factor on the style term (per-style style weights) moves "total" only
    scaled = multi(image, content, style_index=torch.tensor([1, 0]), style_scale=torch.tensor([2.0, 0.5]))
    assert scaled["style"].item() == pytest.approx(out["style"].item(), rel=1e-6)
    extra = 30.0 * (2.0 * per_image[0] + 0.5 * per_image[1]) / 2 - 30.0 * sum(per_image) / 2
    assert scaled["total"].item() - out["total"].item() == pytest.approx(extra, rel=1e-4)


def test_perceptual_loss_state_dict_is_empty(vgg, images):
    # Neither the VGG nor the cached targets belong in a checkpoint.
    loss = PerceptualLoss(vgg=vgg)
    loss.set_style(images[2])
    loss.set_content(images[1])
    assert len(loss.state_dict()) == 0
    assert list(loss.parameters()) == []


def test_perceptual_loss_bf16_autocast_close_to_fp32(vgg, images):
    image, content, style = images
    loss = PerceptualLoss(vgg=vgg)
    loss.set_style(style)
    ref = loss(image, content)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = loss(image, content)
    assert low["total"].dtype == torch.float32
    for key in ("total", "content", "style"):
        assert math.isfinite(low[key].item())
        assert low[key].item() == pytest.approx(ref[key].item(), rel=0.1)


def test_perceptual_loss_unknown_layer_lists_valid_names(vgg):
    from stylecast.errors import UserError

    with pytest.raises(UserError, match="relu6_1.*valid names: conv1_1, relu1_1"):
        PerceptualLoss(content_layers="relu6_1", vgg=vgg)
