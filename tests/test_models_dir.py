"""Where styles come from: one models-folder rule and one name-or-path rule for every command.

--models-dir > $STYLECAST_MODELS > ./checkpoints (when it holds .onnx files) > the shipped styles.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from stylecast.cli import main as stylecast_main
from stylecast.errors import UserError
from stylecast.images import load_image, save_image
from stylecast.inference.registry import MODELS_ENV, StyleRegistry, packaged_models_dir, resolve_models_dir, resolve_style

from conftest import shipped_styles, smooth_image

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = shipped_styles()  # painters/starry_night for each style of a multi-style model


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working folder outside the checkout, with no $STYLECAST_MODELS."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv(MODELS_ENV, raising=False)
    return cwd


def test_packaged_styles_are_the_checkouts_checkpoints():
    assert len(SHIPPED) >= 6
    assert packaged_models_dir().resolve() == (ROOT / "checkpoints").resolve()
    assert StyleRegistry(packaged_models_dir()).names() == SHIPPED


def test_resolution_order(elsewhere, tmp_path, monkeypatch, style_models):
    shipped = packaged_models_dir()
    assert resolve_models_dir() == shipped  # nothing else: the shipped styles
    local = elsewhere / "checkpoints"
    local.mkdir()
    (local / "last.ckpt").write_bytes(b"a Lightning checkpoint")
    assert resolve_models_dir() == shipped  # a checkpoints/ folder without .onnx files does not count
    shutil.copy(style_models / "slim.onnx", local / "mine.onnx")
    assert resolve_models_dir() == Path("checkpoints")  # ./checkpoints with a style
    env_dir = tmp_path / "env_models"
    monkeypatch.setenv(MODELS_ENV, str(env_dir))
    assert resolve_models_dir() == env_dir  # the environment beats ./checkpoints
    assert resolve_models_dir(style_models) == style_models  # --models-dir beats everything
    monkeypatch.setenv(MODELS_ENV, "")
    assert resolve_models_dir() == Path("checkpoints")  # an empty variable is unset


def test_name_or_path_rule(elsewhere, style_models):
    assert resolve_style("slim", style_models) == style_models / "slim.onnx"
    assert resolve_style(str(style_models / "full.onnx")) == style_models / "full.onnx"
    shutil.copy(style_models / "full.onnx", elsewhere / "mine.onnx")
    assert resolve_style("mine.onnx", style_models) == Path("mine.onnx")  # a file in the working folder
    with pytest.raises(UserError, match=r"^nope/slim: no such model file$"):
        resolve_style("nope/slim", style_models)  # a folder in it: a path, never a name
    with pytest.raises(UserError, match=r"^gone\.onnx: no such model file$"):
        resolve_style("gone.onnx", style_models)
    with pytest.raises(UserError, match=r"^unknown style 'starry'; known styles: full, slim$"):
        resolve_style("starry", style_models)
    assert resolve_style("starry_night") == packaged_models_dir() / "starry_night.onnx"


def test_compare_uses_the_same_rule(tmp_path, style_models):
    # compare used to read "a/b" as a style name and "x.onnx" only as a path
    from stylecast.optimization.compare import compare

    photo = tmp_path / "photo.png"
    save_image(smooth_image(32, 32), photo)
    with pytest.raises(UserError, match=r"^nope/slim: no such model file$"):
        compare([photo], "nope/slim", photo, tmp_path / "report", models_dir=style_models)
    assert not (tmp_path / "report").exists()


def test_stylize_and_styles_from_another_folder_use_the_shipped_styles(elsewhere, capsys):
    save_image(smooth_image(48, 64), elsewhere / "photo.png")
    assert stylecast_main(["styles"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == SHIPPED
    assert stylecast_main(["stylize", "photo.png", "-s", "starry_night_slim", "-o", "out/", "--backend", "ort"]) == 0
    out = load_image(elsewhere / "out" / "photo_starry_night_slim.png")
    assert out.shape == (48, 64, 3) and np.abs(out - load_image(elsewhere / "photo.png")).mean() > 0.05
