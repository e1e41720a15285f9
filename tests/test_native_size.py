"""A style's native size: the exporter records it, `stylize` and the server scale larger inputs down
to it unless a size is asked for (0 = the input's own), smaller ones are kept (inference/contract.py
NATIVE_SCALE, measured by benchmarks/bench_scale.py)."""

from __future__ import annotations

import httpx
import numpy as np
import onnx
import pytest
from PIL import Image

from conftest import smooth_image, textured_net
from server_fixtures import METADATA, ServerProcess, decode, encode
from stylecast.cli import main as stylecast_main
from stylecast.errors import UserError
from stylecast.inference.contract import META_PREFIX, native_size, native_size_for
from stylecast.inference.stylizer import ORIGINAL_SIZE, Stylizer, target_size

NATIVE = 64  # the test style's: export from style_size 43 -> round(1.5 * 43 / 4) * 4 = 64


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from stylecast.training.export import export_onnx, metadata_from_checkpoint

    folder = tmp_path_factory.mktemp("native")
    hp = dict(width=0.25, residual_blocks=1, style_image="starry_night.jpg", recipe="test", content_weight=1.0, style_weight=1.0, tv_weight=0.0)
    hp.update(content_layers="relu2_2", style_layers="relu1_2", style_size=43, image_size=32)
    export_onnx(textured_net(0.25, 1, 3), folder / "native.onnx", metadata_from_checkpoint(hp, 10, style_name="native"), exporter="legacy")
    # a model from before native_size (no key): inputs keep their size, as they always did
    export_onnx(textured_net(0.25, 1, 4), folder / "plain.onnx", {**METADATA, "style_name": "plain"}, exporter="legacy")
    return folder


def test_the_rule_and_worked_values():
    assert [native_size_for(s) for s in (256, 128, 512, 43)] == [384, 192, 768, 64]
    # (asked size, native, input's longer side) -> longer side to stylize at (None: as it is)
    cases = {
        (None, 384, 1000): 384,  # larger: scaled down to the native size
        (None, 384, 384): None,
        (None, 384, 200): None,  # smaller: kept, not scaled up
        (None, None, 1000): None,  # a model without native_size
        (ORIGINAL_SIZE, 384, 1000): None,  # 0: the input's own
        (512, 384, 1000): 512,  # asked for: as asked, up or down
        (512, 384, 200): 512,
    }
    for (size, native, longer), want in cases.items():
        assert target_size(size, native, longer) == want, (size, native, longer)


def test_metadata_is_read_and_checked(models, tmp_path):
    assert Stylizer(models / "native.onnx", backend="ort").native_size == NATIVE
    assert Stylizer(models / "native.onnx", backend="ort").metadata["native_size"] == str(NATIVE)
    assert Stylizer(models / "plain.onnx", backend="ort").native_size is None
    assert native_size({"native_size": "384"}, "m") == 384 and native_size({}, "m") is None
    for bad in ("big", "8", "-384"):
        with pytest.raises(ValueError, match="m: metadata native_size"):
            native_size({"native_size": bad}, "m")
    # a model file with a broken value: a UserError naming the file
    model = onnx.load(str(models / "native.onnx"))
    for p in model.metadata_props:
        if p.key == META_PREFIX + "native_size":
            p.value = "huge"
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    with pytest.raises(UserError, match="broken.onnx: metadata native_size"):
        Stylizer(broken, backend="ort")


def _photo(path, h, w):
    Image.fromarray((smooth_image(h, w, 1) * 255).round().astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize(
    "style, h, w, args, want",
    [
        ("native", 100, 160, [], (NATIVE, 40)),  # (width, height): 160 -> 64, 100 -> 40
        ("native", 30, 50, [], (50, 30)),  # smaller than native: kept
        ("native", 100, 160, ["--size", "0"], (160, 100)),
        ("native", 100, 160, ["--size", "96"], (96, 60)),
        ("plain", 100, 160, [], (160, 100)),
    ],
)
def test_cli_default_is_the_native_size(models, tmp_path, capsys, style, h, w, args, want):
    src = _photo(tmp_path / "photo.png", h, w)
    out = tmp_path / "out.png"
    assert stylecast_main(["stylize", str(src), "-s", style, "--models-dir", str(models), "-o", str(out), "--backend", "ort", *args]) == 0
    assert Image.open(out).size == want
    err = capsys.readouterr().err
    assert (f"larger than {NATIVE} px are scaled down" in err) == (style == "native" and not args)


def test_cli_negative_size_is_a_one_line_error(models, tmp_path, capsys):
    src = _photo(tmp_path / "photo.png", 20, 20)
    out = tmp_path / "out.png"
    assert stylecast_main(["stylize", str(src), "-s", "native", "--models-dir", str(models), "-o", str(out), "--size", "-5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stylecast stylize: error: --size") and err.count("\n") == 1
    assert not out.exists()


def test_server_default_listing_and_size_zero(models, tmp_path):
    proc = ServerProcess(models, tmp_path / "server", "--max-side", "1024").start()
    try:
        with httpx.Client(base_url=proc.url, timeout=30) as c:
            styles = {s["name"]: s for s in c.get("/v1/styles").json()["styles"]}
            assert styles["native"]["native_size"] == NATIVE and styles["plain"]["native_size"] is None
            data = encode(smooth_image(100, 160, seed=2))

            def size_of(style, **params):
                r = c.post("/v1/stylize", params={"style": style, "format": "png", **params}, content=data)
                assert r.status_code == 200, r.text
                assert r.headers["x-stylecast-size"] == "x".join(map(str, decode(r.content).shape[1::-1]))
                return r.headers["x-stylecast-size"]

            assert size_of("native") == f"{NATIVE}x40"
            assert size_of("native", size=0) == "160x100"
            assert size_of("native", size=96) == "96x60"
            assert size_of("plain") == "160x100"
            small = c.post("/v1/stylize", params={"style": "native", "format": "png"}, content=encode(smooth_image(30, 50, seed=3)))
            assert small.headers["x-stylecast-size"] == "50x30"
            bad = c.post("/v1/stylize", params={"style": "native", "size": 5}, content=data)
            assert bad.status_code == 422 and bad.json()["error"] == "invalid_parameter" and "size" in bad.json()["detail"]
            # the Open Inference Protocol metadata carries it, for `stylecast stylize --server`
            meta = c.get("/v2/models/native").json()
            assert meta["parameters"]["native_size"] == str(NATIVE)
            # stylize --server: the remote network pass, the same default
            src = tmp_path / "photo.png"
            src.write_bytes(data)
            out = tmp_path / "remote.png"
            assert stylecast_main(["stylize", str(src), "-s", "native", "--server", proc.url, "-o", str(out), "-q"]) == 0
            assert Image.open(out).size == (NATIVE, 40)
    finally:
        proc.stop()
    assert proc.held_forbidden_modules() == []
