"""Warm start (`--model.init_from`): from an exported .onnx (fp16-stored too) or a .ckpt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from conftest import ROOT, fake_checkpoint, smooth_image, textured_net
from stylecast.errors import UserError
from stylecast.training.cli import main as train_main
from stylecast.training.export import export_onnx, load_checkpoint, metadata_from_checkpoint
from stylecast.training.transformer import TransformerNet
from stylecast.training.warm_start import apply_warm_start, load_warm_start
from test_training import cli_args, photos, style  # noqa: F401  (fixtures)


def _export(net, path: Path, fp16_weights: bool) -> Path:
    hp = dict(width=net.width, residual_blocks=net.residual_blocks, style_image="s.jpg", recipe="test", content_weight=1.0,
              style_weight=5.0, tv_weight=1e-6, content_layers="relu2_2", style_layers="relu1_2,relu2_2")  # fmt: skip
    export_onnx(net, path, metadata_from_checkpoint(hp, 77, style_name=path.stem), fp16_weights=fp16_weights)
    return path


@pytest.mark.parametrize("fp16_weights", [False, True])
def test_onnx_warm_start_reproduces_the_exported_net(tmp_path, fp16_weights):
    src = textured_net(0.5, 3, seed=3)
    path = _export(src, tmp_path / "src.onnx", fp16_weights)
    warm = load_warm_start(path)
    assert (warm.width, warm.residual_blocks, warm.steps) == (0.5, 3, 77)
    net = TransformerNet(0.5, 3).eval()
    apply_warm_start(net, warm)
    x = smooth_image(48, 64, seed=1).transpose(2, 0, 1)[None].copy()
    with torch.no_grad():
        ours = net(torch.from_numpy(x)).numpy()
    theirs = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"content": x})[0]
    # fp16 storage: the ONNX model computes with the fp16-rounded weights, and so does the warm
    # start (they are cast back to exactly those fp32 values): the same parity as fp32 storage
    assert np.abs(ours - theirs).max() < 1e-4
    if fp16_weights:
        with torch.no_grad():
            exact = src(torch.from_numpy(x)).numpy()
        assert np.abs(ours - exact).max() > 1e-5  # it did read the rounded weights, not the originals


def test_shipped_models_load_as_warm_starts():
    shipped = sorted((ROOT / "checkpoints").glob("*.onnx"))
    assert shipped
    for path in shipped:
        warm = load_warm_start(path)
        net = TransformerNet(warm.width, warm.residual_blocks, n_styles=warm.n_styles, variant=warm.variant)  # painters.onnx: 9, starry_night_tiny: tiny
        apply_warm_start(net, warm)
        assert warm.steps > 0, path.name


def test_a_tiny_net_grows_a_fullres_head_that_starts_as_nothing(tmp_path):
    torch.manual_seed(4)
    tiny = TransformerNet(0.5, 3, variant="tiny").eval()
    with torch.no_grad():  # a textured output, not the random init's near-constant one
        for m in tiny.modules():
            if isinstance(m, torch.nn.InstanceNorm2d):
                m.weight.normal_(1.0, 0.5)
                m.bias.normal_(0.0, 0.5)
    warm = load_warm_start(fake_checkpoint(tmp_path / "tiny.ckpt", tiny, step=5))
    assert warm.variant == "tiny"
    grown = TransformerNet(0.5, 3, variant="tiny_fullres").eval()
    apply_warm_start(grown, warm)
    x = torch.from_numpy(smooth_image(40, 56, seed=2).transpose(2, 0, 1)[None].copy())
    with torch.no_grad():
        assert torch.equal(grown(x), tiny(x)) and tiny(x).std() > 0.05  # the head's last conv starts at zero
    assert any(p.abs().sum() > 0 for p in grown.head.parameters())  # the rest of the head is initialized
    with pytest.raises(UserError, match=r"is the 'tiny_fullres' network variant, this run builds 'tiny'"):
        apply_warm_start(TransformerNet(0.5, 3, variant="tiny"), load_warm_start(fake_checkpoint(tmp_path / "f.ckpt", grown, step=5)))


def test_ckpt_warm_start_and_errors(tmp_path):
    ckpt = fake_checkpoint(tmp_path / "a.ckpt", textured_net(0.25, 1, seed=5), step=9)
    warm = load_warm_start(ckpt)
    net = TransformerNet(0.25, 1)
    apply_warm_start(net, warm)
    ref, _, _ = load_checkpoint(ckpt)
    for key, value in ref.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key
    with pytest.raises(UserError, match=r"width=0.25, residual_blocks=1\), this run builds width=1"):
        apply_warm_start(TransformerNet(1.0, 5), warm)
    with pytest.raises(UserError, match="no such file"):
        load_warm_start(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(UserError, match="junk.onnx"):
        load_warm_start(tmp_path / "junk.onnx")


def test_train_from_an_exported_model_starts_from_its_weights(photos, style, tmp_path):  # noqa: F811
    src = textured_net(0.25, 1, seed=7)
    path = _export(src, tmp_path / "base.onnx", fp16_weights=False)
    out = tmp_path / "run"
    code = train_main(cli_args(photos, style, out, "--steps", "1", "--trainer.val_check_interval", "1",
                               "--model.lr", "1e-12", "--model.init_from", str(path)))  # fmt: skip
    assert code == 0
    trained, hparams, step = load_checkpoint(out / "checkpoints" / "last.ckpt")
    assert step == 1 and hparams["init_steps"] == 77
    # one step at lr 1e-12 leaves the warm-started weights where they were: they are the source's
    for key, value in src.state_dict().items():
        torch.testing.assert_close(trained.state_dict()[key], value, atol=1e-6, rtol=0, msg=key)
    meta = metadata_from_checkpoint(hparams, step, style_name="x")
    assert (meta["init_from"], meta["init_steps"]) == ("base.onnx", "77")
    # a warm start from this run counts the steps of its source too: 1 + 77 (a chain of warm starts)
    assert load_warm_start(export_onnx(trained, tmp_path / "second.onnx", meta)).steps == 78
    assert load_warm_start(out / "checkpoints" / "last.ckpt").steps == 78
    # a fresh run without it starts elsewhere
    assert not torch.allclose(TransformerNet(0.25, 1).state_dict()["encoder.0.0.1.weight"], src.state_dict()["encoder.0.0.1.weight"])
    onnx.checker.check_model(onnx.load(str(path)))
