"""`stylecast demo`: the bundled samples, every style stylized, the optimizer path through the CLI."""

from __future__ import annotations

from importlib import resources

import numpy as np

from stylecast.cli import main as stylecast_main
from stylecast.images import load_image
from stylecast.inference import demo


def test_bundled_samples_are_small_and_credited():
    folder = resources.files("stylecast") / "samples"
    sources = (folder / "SOURCES.md").read_text()
    for name in (demo.CONTENT, demo.STYLE):
        assert f"`{name}`" in sources
        data = (folder / name).read_bytes()
        assert len(data) < 400_000
        assert max(load_image(data).shape[:2]) <= 512


def test_demo_stylizes_the_photo_with_every_style(style_models, tmp_path, capsys):
    out = tmp_path / "out" / "demo.png"
    assert stylecast_main(["demo", "--models-dir", str(style_models), "-o", str(out), "--no-serve"]) == 0
    written = sorted(p.name for p in out.parent.iterdir())
    assert written == ["demo_full.png", "demo_slim.png"]
    photo = load_image(resources.files("stylecast") / "samples" / demo.CONTENT)
    for name in written:
        img = load_image(out.parent / name)
        assert img.shape == photo.shape  # (height, width) of the photo, unchanged
        assert np.abs(img - photo).mean() > 0.05  # stylized, not a copy
    assert capsys.readouterr().err.count("stylized chelsea.jpg with ") == 2


def test_demo_optimize_runs_the_optimize_command(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert stylecast_main(["demo", "--optimize", "-o", str(out), "--size", "64", "--iterations", "2"]) == 0
    assert load_image(out).shape == (43, 64, 3)
    err = capsys.readouterr().err
    assert "stylecast optimize " in err and "--style-weight 4.0" in err
