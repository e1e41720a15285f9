"""Multi-style models on the torch-free side: stylizer, registry names, the mix grammar, `stylize -s`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from conftest import smooth_image
from stylecast.cli import main as stylecast_main
from stylecast.errors import UserError
from stylecast.images import load_image, save_image
from stylecast.inference import mix
from stylecast.inference.backends import openvino_available
from stylecast.inference.contract import META_PREFIX, STYLES_KEY
from stylecast.inference.registry import StyleRegistry, resolve_choice
from stylecast.inference.stylizer import Stylizer
from stylecast.training.export import export_onnx, metadata_from_checkpoint
from test_multistyle import three_style_hparams, three_style_net

NAMES = ["starry_night", "great_wave", "the_scream"]


@pytest.fixture(scope="module")
def models(tmp_path_factory, style_models) -> Path:
    """A models folder: painters.onnx (3 styles) beside the single-style full.onnx and slim.onnx."""
    folder = tmp_path_factory.mktemp("multi_models")
    export_onnx(three_style_net(), folder / "painters.onnx", metadata_from_checkpoint(three_style_hparams(), 50, style_name="painters"))
    for name in ("full", "slim"):
        shutil.copy(style_models / f"{name}.onnx", folder)
    return folder


@pytest.fixture(scope="module")
def painters(models) -> Stylizer:
    return Stylizer(models / "painters.onnx", backend="ort")


def torch_out(image: np.ndarray, weights) -> np.ndarray:
    x = torch.from_numpy(image.transpose(2, 0, 1)[None].copy())
    with torch.no_grad():
        return three_style_net()(x, torch.tensor(weights, dtype=torch.float32))[0].numpy().transpose(1, 2, 0)


# ---- the stylizer ----------------------------------------------------------------------------


def test_stylizer_runs_each_style_and_mixes_like_torch(painters):
    assert painters.style_names == NAMES and painters.style_weights is None
    image = smooth_image(48, 64, seed=3)  # multiples of 4: no padding, so torch sees the same input
    for k, name in enumerate(NAMES):
        one_hot = [float(i == k) for i in range(3)]
        got = painters.with_style({name: 1.0})(image)
        assert np.abs(got - torch_out(image, one_hot)).max() < 1e-4, name
    mixed = painters(image, style_weights={"starry_night": 0.7, "the_scream": 0.3})
    assert np.abs(mixed - torch_out(image, [0.7, 0.0, 0.3])).max() < 1e-4
    # per-image weights in one batch: as each image alone
    batch = np.stack([smooth_image(32, 32, seed=s).transpose(2, 0, 1) for s in range(2)])
    rows = np.array([[1, 0, 0], [0.2, 0.5, 0.3]], np.float32)
    together = painters.run(batch, rows)
    alone = np.concatenate([painters.run(batch[i : i + 1], rows[i]) for i in range(2)])
    assert np.abs(together - alone).max() < 1e-5


def test_views_share_the_loaded_model(painters):
    a, b = painters.with_style({"great_wave": 1.0}, "painters/great_wave"), painters.with_style([0.5, 0.5, 0.0])
    assert a._backend is painters._backend is b._backend
    assert a.name == "painters/great_wave" and a.style_weights.tolist() == [0.0, 1.0, 0.0]
    assert painters.style_weights is None  # the original is untouched


def test_tiles_of_a_multi_style_model_share_statistics(painters):
    image = smooth_image(200, 260, seed=4)
    view = painters.with_style({"great_wave": 0.5, "the_scream": 0.5})
    whole = view(image)
    tiled = view(image, tile=128, overlap=24, thumbnail=260)  # the whole image as the thumbnail
    assert np.abs(tiled - whole).mean() < 0.01


def test_stylizer_errors(painters, models):
    image = smooth_image(32, 32)
    with pytest.raises(UserError, match=r"holds 3 styles \(starry_night, great_wave, the_scream\): pick one \(e.g. painters/starry_night\)"):
        painters(image)
    with pytest.raises(UserError, match="unknown style 'udnie' in painters.onnx; its styles: starry_night, great_wave, the_scream"):
        painters.with_style({"udnie": 1.0})
    with pytest.raises(UserError, match="a single-style model takes no style weights"):
        Stylizer(models / "slim.onnx", backend="ort")(image, style_weights=[1.0])


def test_a_style_list_that_does_not_match_the_input_is_refused(models, tmp_path):
    model = onnx.load(str(models / "painters.onnx"))
    for prop in model.metadata_props:
        if prop.key == META_PREFIX + STYLES_KEY:
            prop.value = json.dumps(json.loads(prop.value)[:2])
    onnx.save(model, str(tmp_path / "bad.onnx"))
    with pytest.raises(UserError, match=r"'style_weights' must be float32 \(N, 2\) for its 2 styles"):
        Stylizer(tmp_path / "bad.onnx")


@pytest.mark.skipif(not openvino_available(), reason="openvino not installed")
def test_openvino_compiles_once_for_every_mix(painters, models):
    ov = Stylizer(models / "painters.onnx", backend="openvino", precision="fp32")
    image = smooth_image(40, 48, seed=5)
    for weights in ([1, 0, 0], [0, 0.5, 0.5], [0.2, 0.3, 0.5]):
        assert np.abs(ov(image, style_weights=weights) - painters(image, style_weights=weights)).max() < 2e-3
    assert len(ov._backend.cached_shapes()) == 1  # a new mix is new values, not a new shape


# ---- the registry and the grammar ----------------------------------------------------------------


def test_registry_lists_each_style_of_a_multi_style_file(models):
    registry = StyleRegistry(models, backend="ort")
    assert registry.names() == ["full", *sorted(f"painters/{n}" for n in NAMES), "slim"]
    info = registry.info("painters/great_wave")
    assert (info["file"], info["style"]["painting"], info["styles"]) == ("painters.onnx", "great_wave.jpg", NAMES)
    wave, scream = registry.get("painters/great_wave"), registry.get("painters/the_scream")
    assert wave._backend is scream._backend  # one model for all its styles
    assert wave.style_weights.tolist() == [0, 1, 0] and wave.name == "painters/great_wave"
    blend = registry.mix("great_wave:1,the_scream:3")
    assert blend.style_weights.tolist() == [0, 0.25, 0.75] and blend.name == "painters/great_wave:0.25,the_scream:0.75"
    assert registry.mix("slim") is registry.get("slim")
    assert "painters/great_wave" in registry and "painters" not in registry and "great_wave" not in registry


@pytest.mark.parametrize("spec, path, weights, name", [
    ("slim", "slim.onnx", None, "slim"),
    ("painters/the_scream", "painters.onnx", {"the_scream": 1.0}, "painters/the_scream"),
    ("the_scream", "painters.onnx", {"the_scream": 1.0}, "painters/the_scream"),
    ("starry_night:0.7,great_wave:0.3", "painters.onnx", {"starry_night": 0.7, "great_wave": 0.3}, "painters/starry_night:0.7,great_wave:0.3"),
    ("painters/starry_night:3, great_wave", "painters.onnx", {"starry_night": 0.75, "great_wave": 0.25}, "painters/starry_night:0.75,great_wave:0.25"),
    ("great_wave:0,the_scream:2", "painters.onnx", {"great_wave": 0.0, "the_scream": 1.0}, "painters/great_wave:0,the_scream:1"),
])  # fmt: skip
def test_choices(models, spec, path, weights, name):
    choice = resolve_choice(spec, models)
    assert (choice.path.name, choice.name) == (path, name)
    assert choice.weights == (None if weights is None else pytest.approx(weights))


def test_a_model_file_path_with_a_style(models):
    path = models / "painters.onnx"
    choice = resolve_choice(f"{path}/great_wave:1,starry_night:1", models)
    assert choice.path == path and choice.weights == {"great_wave": 0.5, "starry_night": 0.5}
    assert resolve_choice(str(path), models).weights is None  # the file itself: the old path rule


@pytest.mark.parametrize("spec, message", [
    ("udnie", "unknown style 'udnie'; known styles: full, painters/great_wave, "),
    ("painters/udnie", "unknown style 'udnie' in painters.onnx; its styles: starry_night, great_wave, the_scream"),
    ("starry_night:0.5,udnie:0.5", "no multi-style model here holds all of starry_night, udnie"),
    ("starry_night:0,great_wave:0", "style weights must sum to more than 0 in 'starry_night:0,great_wave:0'"),
    ("starry_night:0.7,great_wave:-0.3", "style weight of 'great_wave' must be >= 0, got -0.3"),
    ("starry_night:nan", "style weight of 'starry_night' must be a finite number"),
    ("starry_night:lots", "style weight of 'starry_night' is not a number: 'lots'"),
    ("the_scream:0", "must be more than 0 when it is the only one"),
    ("starry_night,starry_night:2", "style 'starry_night' appears twice"),
    ("starry_night,", "empty style in 'starry_night,'"),
    ("painters/starry_night,slim/great_wave", "a mix blends the styles of one model, but .* names painters and slim"),
    ("slim/great_wave", "slim is a single-style model"),
    ("nope/great_wave", r"nope/great_wave: no such model file, nor a style of a model here \(multi-style models: painters\)"),
    ("painters", r"painters holds 3 styles: pick one \(painters/starry_night, painters/great_wave, painters/the_scream\) or mix them"),
    ("full:0.5,slim:0.5", "no multi-style model here holds all of full, slim"),
])  # fmt: skip
def test_grammar_errors_are_one_line(models, spec, message):
    with pytest.raises(UserError, match=message) as err:
        resolve_choice(spec, models)
    assert "\n" not in str(err.value)


def test_labels_for_file_names():
    assert mix.label("painters/starry_night") == "starry_night"
    assert mix.label("starry_night:0.7,great_wave:0.3") == "starry_night70+great_wave30"
    assert mix.label("a:1,b:1,c:2") == "a25+b25+c50"


# ---- the commands -------------------------------------------------------------------------------------


def test_stylize_a_style_and_a_mix_of_a_multi_style_model(models, painters, tmp_path, capsys):
    photo = tmp_path / "cat.png"
    save_image(smooth_image(48, 64, seed=6), photo)
    out = tmp_path / "out"
    for spec in ("painters/great_wave", "starry_night:0.7,the_scream:0.3"):
        assert stylecast_main(["stylize", str(photo), "-s", spec, "--models-dir", str(models), "-o", str(out), "--backend", "ort", "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["cat_great_wave.png", "cat_starry_night70+the_scream30.png"]
    image = load_image(photo)
    expected = painters(image, style_weights={"starry_night": 0.7, "the_scream": 0.3})
    assert np.abs(load_image(out / "cat_starry_night70+the_scream30.png") - expected).max() <= 1 / 255 + 1e-6
    # single-style models work as before
    assert stylecast_main(["stylize", str(photo), "-s", "slim", "--models-dir", str(models), "-o", str(out), "--backend", "ort", "-q"]) == 0
    assert (out / "cat_slim.png").exists()


@pytest.mark.parametrize("spec, message", [
    ("udnie", "unknown style 'udnie'"),
    ("starry_night:1,great_wave:-1", "must be >= 0"),
    ("starry_night:0,great_wave:0", "must sum to more than 0"),
    ("PAINTERS_FILE", "holds 3 styles .*: pick one"),
])  # fmt: skip
def test_stylize_errors_are_one_line_and_write_nothing(models, tmp_path, capsys, spec, message):
    photo = tmp_path / "cat.png"
    save_image(smooth_image(32, 32), photo)
    spec = spec.replace("PAINTERS_FILE", str(models / "painters.onnx"))
    code = stylecast_main(["stylize", str(photo), "-s", spec, "--models-dir", str(models), "-o", str(tmp_path / "out"), "--backend", "ort"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_styles_command_lists_each_style(models, capsys):
    assert stylecast_main(["styles", "--models-dir", str(models)]) == 0
    lines = capsys.readouterr().out.splitlines()
    wave = next(line for line in lines if line.startswith("painters/great_wave "))
    assert "painters.onnx, style 2 of 3" in wave and "style_image=great_wave.jpg" in wave
    assert any(line.startswith("slim ") for line in lines)
