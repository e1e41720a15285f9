"""`stylecast compare --reuse DIR`: a second net scored against the first run's optimizer curves."""

import numpy as np
import pytest
import torch

from stylecast.errors import UserError
from stylecast.images import load_image
from test_compare import ITERS, META, setup  # noqa: F401  (module fixture)


def test_reuse_takes_the_optimizer_runs_and_scores_the_new_net(setup, tmp_path):  # noqa: F811
    from stylecast.optimization.compare import compare
    from stylecast.training.export import export_onnx
    from stylecast.training.transformer import TransformerNet

    root, first = setup
    torch.manual_seed(1)
    net = TransformerNet(width=0.25, residual_blocks=1)
    with torch.no_grad():
        net.decoder[-1][1].weight.mul_(5)
    other = export_onnx(net, tmp_path / "other.onnx", META)
    contents = [root / "photo0.png", root / "photo1.png"]
    second = compare(
        contents, str(other), root / "stripes.png", tmp_path / "r2", iterations=ITERS, size=64, progress=False, repeats=1, reuse=str(root / "report")
    )
    assert second["options"]["reused_optimizer_runs_from"] == str(root / "report")
    for a, b in zip(first["images"], second["images"]):
        assert a["curve"] == b["curve"]  # the same optimizer run, not a new one
        for sa, sb in zip(a["slow"], b["slow"]):
            assert sb["losses"] == pytest.approx(sa["losses"], rel=1e-6)  # re-scored from the same 8-bit images
        for k in ITERS:
            stem = a["fast"]["file"].removesuffix(".fast.png")
            assert np.array_equal(load_image(root / "report" / f"{stem}.slow{k:04d}.png"), load_image(tmp_path / "r2" / f"{stem}.slow{k:04d}.png"))
        # a different net: a different loss, and its match looked up in the reused curve
        assert b["fast"]["losses"]["total"] != pytest.approx(a["fast"]["losses"]["total"], rel=1e-3)
        hit = next((p["iteration"] for p in b["curve"] if p["total"] <= b["fast"]["losses"]["total"]), None)
        assert b["match_iteration"] == hit


def test_reuse_refuses_runs_that_are_not_this_one(setup, tmp_path):  # noqa: F811
    from stylecast.optimization.compare import compare

    root, _ = setup
    args = dict(iterations=ITERS, progress=False, repeats=1, reuse=str(root / "report"))
    model, style = str(root / "stripes.onnx"), root / "stripes.png"
    with pytest.raises(UserError, match=r"--reuse: .*report.json: its --size differ from this run's \(64 vs 48\)"):
        compare([root / "photo0.png"], model, style, tmp_path / "a", size=48, **args)
    with pytest.raises(UserError, match=r"its --init differ"):
        compare([root / "photo0.png"], model, style, tmp_path / "b", size=64, init="content", **args)
    with pytest.raises(UserError, match=r"has no optimizer images at iterations \[9\]"):
        compare([root / "photo0.png"], model, style, tmp_path / "c", size=64, **{**args, "iterations": (3, 9)})
    with pytest.raises(UserError, match=r"has no optimizer run for stripes.png"):
        compare([style], model, style, tmp_path / "d", size=64, **args)
    with pytest.raises(UserError, match=r"is the output folder itself"):
        compare([root / "photo0.png"], model, style, root / "report", size=64, overwrite=True, **args)
    assert (root / "report" / "report.json").is_file()
    with pytest.raises(UserError, match=r"not a readable compare report"):
        compare([root / "photo0.png"], model, style, tmp_path / "e", size=64, **{**args, "reuse": str(tmp_path)})
