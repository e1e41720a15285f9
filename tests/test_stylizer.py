"""Torch-free stylizer, registry and `stylecast stylize`/`styles` (models exported once per session)."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
from PIL import Image

from conftest import smooth_image, textured_net
from stylecast.inference.backends import cuda_available, openvino_available
from stylecast.inference.contract import META_PREFIX
from stylecast.inference.registry import StyleRegistry
from stylecast.inference.stylizer import Stylizer, pad_amounts, reflect_pad
from stylecast.inference.tiling import run_tiled, tile_starts
from stylecast.cli import main as stylecast_main
from stylecast.color import rgb_to_yiq
from stylecast.errors import UserError

needs_openvino = pytest.mark.skipif(not openvino_available(), reason="openvino not installed")


def torch_reference(net, image: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return net(torch.from_numpy(image.transpose(2, 0, 1)[None].copy()))[0].numpy().transpose(1, 2, 0)


@pytest.fixture(scope="module")
def slim(style_models):
    return Stylizer(style_models / "slim.onnx", backend="ort")


# --- padding ---------------------------------------------------------------------------------


def test_pad_amounts():
    assert pad_amounts(256, 256) == (0, 0)
    assert pad_amounts(101, 67) == (3, 1)
    assert pad_amounts(3, 9) == (13, 7)  # up to MIN_SIDE=16 (the tiny net's 1/8 maps need 2 px), a multiple of 4
    x = np.arange(2 * 3 * 5 * 6, dtype=np.float32).reshape(2, 3, 5, 6)
    y = reflect_pad(x, 3, 2)
    assert y.shape == (2, 3, 8, 8)
    np.testing.assert_array_equal(y[..., 5, :6], x[..., 3, :])  # reflection about the last row
    np.testing.assert_array_equal(y[..., :5, 7], x[..., :, 3])


# --- the network ------------------------------------------------------------------------------


def test_matches_torch_and_keeps_odd_sizes(style_models):
    net = textured_net(1.0, 5, seed=0)
    s = Stylizer(style_models / "full.onnx", backend="ort")
    img = smooth_image(96, 128, seed=1)  # multiple of 4: no padding, same input as torch
    assert np.abs(s(img) - torch_reference(net, img)).max() < 1e-3
    odd = smooth_image(101, 67, seed=2)
    out = s(odd)
    assert out.shape == (101, 67, 3) and out.dtype == np.float32
    # = torch on the reflection-padded image, cropped back
    padded = reflect_pad(odd.transpose(2, 0, 1)[None], *pad_amounts(101, 67))[0].transpose(1, 2, 0)
    assert np.abs(out - torch_reference(net, padded)[:101, :67]).max() < 1e-3
    for h, w in [(5, 3), (1, 1), (100, 60), (333, 517)]:
        assert s(smooth_image(h, w)).shape == (h, w, 3)


def test_run_batch_and_metadata(slim):
    batch = np.stack([smooth_image(50, 70, seed=i).transpose(2, 0, 1) for i in range(2)])
    out = slim.run(batch)
    assert out.shape == (2, 3, 50, 70)
    assert np.abs(out[1] - slim.run(batch[1:])[0]).max() < 1e-5
    assert slim.name == "slim" and slim.backend == "ort" and slim.providers == ["CPUExecutionProvider"]
    assert slim.metadata["style_name"] == "slim" and slim.metadata["steps"] == "123"
    assert not any(k.startswith(META_PREFIX) for k in slim.metadata)


def test_size_resizes_longer_side(slim):
    assert slim(smooth_image(120, 90), size=60).shape == (60, 45, 3)


# --- strength and colour --------------------------------------------------------------------


def test_strength(slim):
    img = smooth_image(64, 80, seed=4)
    full = slim(img)
    np.testing.assert_array_equal(slim(img, strength=0.0), img)
    np.testing.assert_array_equal(slim(img, strength=1.0), full)
    np.testing.assert_allclose(slim(img, strength=0.25), 0.25 * full + 0.75 * img, atol=1e-6)
    assert np.abs(full - img).mean() > 0.1  # the test net changes the image: the blend is not trivial
    with pytest.raises(UserError, match="strength"):
        slim(img, strength=1.5)


def test_preserve_color_keeps_chroma(slim):
    img = smooth_image(64, 80, seed=5) * 0.6 + 0.2  # away from 0/1 so clipping does not bite
    plain = slim(img)
    kept = slim(img, preserve_color=True)
    yiq_in, yiq_kept, yiq_plain = rgb_to_yiq(img), rgb_to_yiq(kept), rgb_to_yiq(plain)
    unclipped = ((kept > 0.001) & (kept < 0.999)).all(axis=-1)
    assert unclipped.mean() > 0.9
    assert np.abs(yiq_kept[..., 1:] - yiq_in[..., 1:])[unclipped].max() < 1e-3
    assert np.abs(yiq_kept[..., 0] - yiq_plain[..., 0])[unclipped].max() < 1e-3
    assert np.abs(yiq_plain[..., 1:] - yiq_in[..., 1:]).mean() > 0.02  # plain output does shift colours


# --- tiling ---------------------------------------------------------------------------------


def test_tile_weights_sum_to_one():
    img = smooth_image(100, 150, seed=6)
    out = run_tiled(lambda x: 2.0 * x - 0.5, img, tile=40, overlap=12)
    np.testing.assert_allclose(out, 2.0 * img - 0.5, atol=1e-5)
    assert tile_starts(100, 40, 12) == [0, 28, 56, 60]
    assert tile_starts(30, 40, 12) == [0]


def test_tile_seams_are_feathered():
    # each tile adds its own constant: without blending the jump at a seam would be the full
    # step between the constants; with linear ramps over 16 px no adjacent pixels differ by more
    # than about step / 16
    counter = iter(range(100))
    step = 0.16

    def shifted(x):
        return x * 0 + step * next(counter)

    out = run_tiled(shifted, np.zeros((64, 256, 3), np.float32), tile=64, overlap=16)
    jumps = np.abs(np.diff(out[..., 0], axis=1)).max()
    assert jumps <= step / 16 * 1.01 + 1e-6


def test_tiled_matches_untiled(style_models):
    s = Stylizer(style_models / "full.onnx", backend="ort")
    img = smooth_image(256, 320, seed=5)
    ref = s(img)
    # thumbnail = the whole image: every tile gets the exact instance-norm statistics, so what is
    # left is the tiles' border effect. Measured on this net: mean 0.0025, p99 0.03, max 0.14.
    tiled = s(img, tile=192, overlap=48, thumbnail=320)
    diff = np.abs(tiled - ref)
    band = np.zeros(diff.shape[:2], bool)
    for start in tile_starts(320, 192, 48)[1:]:
        band[:, start : start + 48] = True
    for start in tile_starts(256, 192, 48)[1:]:
        band[start : start + 48, :] = True
    assert diff.mean() < 0.005 and np.quantile(diff, 0.99) < 0.05
    assert diff[band].max() < 0.25
    # without shared statistics (each tile its own instance norm) it is far worse: mean 0.16
    naive = run_tiled(s._stylize_hwc, img, 192, 48)
    assert np.abs(naive - ref).mean() > 5 * diff.mean()
    # default thumbnail (longer side = tile): the statistics come from another scale
    assert np.abs(s(img, tile=192, overlap=48) - ref).mean() < 0.1


# --- OpenVINO -------------------------------------------------------------------------------


@needs_openvino
def test_openvino_matches_ort(style_models):
    img = smooth_image(128, 160, seed=7)
    ort_out = Stylizer(style_models / "full.onnx", backend="ort")(img)
    fp32 = Stylizer(style_models / "full.onnx", backend="openvino", precision="fp32")
    assert fp32.backend == "openvino" and fp32.precision == "fp32"
    assert np.abs(fp32(img) - ort_out).max() < 2e-3
    # bf16 keeps 8 bits of mantissa in every conv; across 16 convs and 15 instance norms with
    # random affine parameters (output std 0.25) measured: mean 0.010, p99 0.042, max 0.095.
    bf16 = Stylizer(style_models / "full.onnx", backend="openvino", precision="bf16")
    d = np.abs(bf16(img) - ort_out)
    assert d.mean() < 0.02 and np.quantile(d, 0.99) < 0.08 and d.max() < 0.2


@needs_openvino
def test_openvino_compiles_once_per_shape(style_models):
    s = Stylizer(style_models / "slim.onnx", backend="openvino", precision="fp32")
    s(smooth_image(40, 40))
    s(smooth_image(40, 40, seed=1))
    s(smooth_image(37, 38))  # pads to 40x40: same compiled model
    assert len(s._backend.cached_shapes()) == 1
    s(smooth_image(48, 40))
    assert len(s._backend.cached_shapes()) == 2
    # several threads meeting a new size at once: one compile, same results
    from concurrent.futures import ThreadPoolExecutor

    img = smooth_image(56, 44, seed=3)
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: s(img), range(4)))
    assert len(s._backend.cached_shapes()) == 3
    assert all(np.array_equal(o, outs[0]) for o in outs)


@needs_openvino
def test_openvino_reuses_one_infer_request_per_thread_and_shape(style_models):
    # a fresh infer request per frame re-faulted the network's buffers every call (the webcam
    # stream's worker spent more time in page faults than in the network): one per thread and shape
    from concurrent.futures import ThreadPoolExecutor

    from stylecast.inference.backends import REQUESTS_PER_THREAD

    s = Stylizer(style_models / "slim.onnx", backend="openvino", precision="fp32")
    fresh = Stylizer(style_models / "slim.onnx", backend="openvino", precision="fp32")
    a, b, c = smooth_image(40, 40, seed=1), smooth_image(48, 40, seed=2), smooth_image(56, 40, seed=3)
    first = s(a)
    request = s._backend._local.requests[next(iter(s._backend._local.requests))][1]
    s(a)
    assert next(iter(s._backend._local.requests.values()))[1] is request  # the same request again
    # other shapes in between: results equal a fresh stylizer's (no state leaks between calls)
    for img in (b, a, c, b, a):
        assert np.array_equal(s(img), fresh(img))
    assert np.array_equal(s(a), first)
    assert len(s._backend._local.requests) <= REQUESTS_PER_THREAD  # photos of ever new sizes pin no buffers per size
    # threads: their own requests, the results of a sequential run
    imgs = [a, b, a, b, c, a]
    with ThreadPoolExecutor(3) as pool:
        outs = list(pool.map(s, imgs))
    assert all(np.array_equal(o, fresh(img)) for o, img in zip(outs, imgs))


def test_device_cuda_without_provider_is_user_error(style_models):
    if cuda_available():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(UserError, match="CUDA"):
        Stylizer(style_models / "slim.onnx", device="cuda")
    with pytest.raises(UserError, match="CPU only"):
        Stylizer(style_models / "slim.onnx", device="cuda", backend="openvino")


# --- registry and invalid models --------------------------------------------------------------


def _without_metadata(src, dst):
    model = onnx.load(str(src))
    del model.metadata_props[:]
    onnx.save(model, str(dst))


def _wrong_input(dst):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["content"], ["stylized"])],
        "g",
        [helper.make_tensor_value_info("content", TensorProto.FLOAT, [1, 1, "h", "w"])],
        [helper.make_tensor_value_info("stylized", TensorProto.FLOAT, [1, 1, "h", "w"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    good = onnx.load(str(dst.parent / "good.onnx"))
    model.metadata_props.extend(good.metadata_props)
    onnx.save(model, str(dst))


@pytest.fixture
def models_dir(style_models, tmp_path):
    (tmp_path / "good.onnx").write_bytes((style_models / "slim.onnx").read_bytes())
    (tmp_path / "junk.onnx").write_bytes(b"not onnx at all")
    _without_metadata(style_models / "slim.onnx", tmp_path / "nometa.onnx")
    _wrong_input(tmp_path / "gray.onnx")
    (tmp_path / "notes.txt").write_text("ignored")
    return tmp_path


def test_registry(models_dir):
    reg = StyleRegistry(models_dir, backend="ort")
    assert reg.names() == ["good", "gray", "junk", "nometa"]
    info = reg.info("good")
    assert info["file"] == "good.onnx" and info["metadata"]["style_image"] == "starry_night.jpg"
    s = reg.get("good")
    assert reg.get("good") is s and reg.path("good") == models_dir / "good.onnx"
    for name in ("nope", "../good", str(models_dir / "good.onnx"), "good.onnx", "notes"):
        with pytest.raises(UserError, match="unknown style .*known styles: good, gray, junk, nometa"):
            reg.get(name)
    for name, why in [("junk", "not a valid ONNX"), ("nometa", "metadata lacks"), ("gray", r"\(N, 3, H, W\)")]:
        with pytest.raises(UserError, match=f"{name}.onnx: .*{why}"):
            reg.get(name)
    assert reg.loaded() == ["good"]


def test_registry_reload_keeps_old_model_on_failure(models_dir):
    reg = StyleRegistry(models_dir, backend="ort")
    old = reg.get("good")
    (models_dir / "good.onnx").write_bytes(b"corrupt")
    with pytest.raises(UserError):
        reg.reload("good")
    assert reg.get("good") is old


def test_registry_missing_folder(tmp_path):
    reg = StyleRegistry(tmp_path / "none")
    assert reg.names() == []
    with pytest.raises(UserError, match="none"):
        reg.get("x")


# --- CLI ------------------------------------------------------------------------------------


def _save(arr, path, **kw):
    Image.fromarray((np.clip(arr, 0, 1) * 255).round().astype(np.uint8)).save(path, **kw)


def test_cli_folder_and_files(style_models, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _save(smooth_image(40, 60, 1), src / "a.png")
    _save(smooth_image(30, 20, 2), src / "b.jpg", quality=95)
    out = tmp_path / "out"
    rc = stylecast_main(["stylize", str(src), "--style", "slim", "--models-dir", str(style_models), "-o", str(out), "--backend", "ort"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_slim.png", "b_slim.jpg"]
    assert Image.open(out / "a_slim.png").size == (60, 40)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "60x40" in lines[0] and lines[0].endswith(" s")
    # rerun without --force: refuses, nothing changes
    before = (out / "a_slim.png").read_bytes()
    assert stylecast_main(["stylize", str(src), "-s", "slim", "--models-dir", str(style_models), "-o", str(out)]) == 2
    assert (out / "a_slim.png").read_bytes() == before


def test_cli_stdout_and_strength_zero(style_models, tmp_path, capsysbinary):
    img = smooth_image(24, 36, 3)
    _save(img, tmp_path / "p.png")
    rc = stylecast_main(["stylize", str(tmp_path / "p.png"), "-s", str(style_models / "slim.onnx"), "-o", "-", "--strength", "0", "--backend", "ort"])
    assert rc == 0
    data = capsysbinary.readouterr().out
    got = np.asarray(Image.open(io.BytesIO(data)), np.float32) / 255
    np.testing.assert_array_equal(got, np.asarray(Image.open(tmp_path / "p.png"), np.float32) / 255)  # PNG: lossless


def test_cli_exif_rotation_and_modes(style_models, tmp_path):
    # a 40x20 (w x h) JPEG tagged "rotate 90 CW" (orientation 6) must come out 20x40, upright
    base = np.zeros((20, 40, 3), np.float32)
    base[:, :20] = [1, 0, 0]
    base[:, 20:] = [0, 0, 1]
    exif = Image.Exif()
    exif[0x0112] = 6
    _save(base, tmp_path / "rot.jpg", exif=exif.tobytes(), quality=98)
    rgba = Image.fromarray((smooth_image(30, 30) * 255).astype(np.uint8)).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(tmp_path / "rgba.png")
    Image.fromarray((smooth_image(30, 30) * 255).astype(np.uint8)).convert("P").save(tmp_path / "pal.png")
    Image.fromarray((smooth_image(30, 30)[..., 0] * 65535).astype(np.uint16)).save(tmp_path / "g16.png")
    Image.fromarray((smooth_image(30, 30)[..., 0] * 255).astype(np.uint8), "L").save(tmp_path / "gray.png")
    out = tmp_path / "out"
    files = [str(tmp_path / n) for n in ("rot.jpg", "rgba.png", "pal.png", "g16.png", "gray.png")]
    assert stylecast_main(["stylize", *files, "-s", str(style_models / "slim.onnx"), "-o", str(out), "--strength", "0", "--format", "png"]) == 0
    rot = np.asarray(Image.open(out / "rot_slim.png"), np.float32) / 255
    assert rot.shape == (40, 20, 3)
    # rotated 90° clockwise for display: the red left half is now on top
    assert rot[:18, :, 0].mean() > 0.9 and rot[22:, :, 2].mean() > 0.9
    for n in ("rgba", "pal", "g16", "gray"):
        assert Image.open(out / f"{n}_slim.png").size == (30, 30)


@pytest.mark.parametrize("case", ["bad_image", "unknown_style", "invalid_model", "overwrite_input", "bad_strength", "cuda"])
def test_cli_errors_one_line_no_output(style_models, tmp_path, capsys, case):
    good = tmp_path / "good.png"
    _save(smooth_image(20, 20), good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"nope")
    out = tmp_path / "out"
    base = ["stylize", "--models-dir", str(style_models), "--backend", "ort"]
    args = {
        "bad_image": [str(good), str(bad), "-s", "slim", "-o", str(out)],
        "unknown_style": [str(good), "-s", "starry", "-o", str(out)],
        "invalid_model": [str(good), "-s", str(junk), "-o", str(out)],
        "overwrite_input": [str(good), "-s", "slim", "-o", str(good), "--force"],
        "bad_strength": [str(good), "-s", "slim", "-o", str(out), "--strength", "2"],
        "cuda": [str(good), "-s", "slim", "-o", str(out), "--device", "cuda"],
    }[case]
    if case == "cuda" and cuda_available():
        pytest.skip("CUDA present")
    before = good.read_bytes()
    assert stylecast_main(base + args) == 2
    err = capsys.readouterr().err
    assert err.startswith("stylecast stylize: error: ") and err.count("\n") == 1
    assert {
        "bad_image": "bad.jpg",
        "unknown_style": "known styles: full, slim",
        "invalid_model": "junk.onnx",
        "overwrite_input": "input",
        "bad_strength": "strength",
        "cuda": "CUDA",
    }[case] in err
    assert not out.exists()
    assert good.read_bytes() == before


def test_cli_styles(style_models, tmp_path, capsys):
    assert stylecast_main(["styles", "--models-dir", str(style_models)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["full", "slim"]
    assert "style_image=starry_night.jpg" in out[0] and "steps=123" in out[0]
    (tmp_path / "broken.onnx").write_bytes(b"x")
    assert stylecast_main(["styles", "--models-dir", str(tmp_path)]) == 0
    assert "broken  INVALID" in capsys.readouterr().out


# --- a model whose metadata is valid but whose output is wrong (issue 15.7) ------------------


def _contract_model(path, kind: str):
    """A tiny ONNX model with the contract's names and metadata whose output is `kind`:
    identity (fine), half (a Resize halving H and W), nan (0/0), range (x * 255)."""
    from onnx import TensorProto, helper, numpy_helper

    from stylecast.inference.contract import REQUIRED_METADATA

    inits, nodes = [], []
    if kind == "identity":
        nodes.append(helper.make_node("Identity", ["content"], ["stylized"]))
    elif kind == "half":
        inits.append(numpy_helper.from_array(np.array([1, 1, 0.5, 0.5], np.float32), "scales"))
        nodes.append(helper.make_node("Resize", ["content", "", "scales"], ["stylized"], mode="linear"))
    elif kind == "nan":
        inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "zero"))
        nodes += [helper.make_node("Sub", ["content", "content"], ["d"]), helper.make_node("Div", ["d", "zero"], ["stylized"])]
    elif kind == "range":
        inits.append(numpy_helper.from_array(np.array(255.0, np.float32), "k"))
        nodes.append(helper.make_node("Mul", ["content", "k"], ["stylized"]))
    graph = helper.make_graph(nodes, kind, [helper.make_tensor_value_info("content", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
                              [helper.make_tensor_value_info("stylized", TensorProto.FLOAT, ["batch", 3, None, None])], inits)  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    for key in REQUIRED_METADATA:
        model.metadata_props.add(key=META_PREFIX + key, value="test")
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("kind, why", [("half", r"output is 1x3x16x24 for a 1x3x32x48 input"), ("nan", "NaN"), ("range", r"outside \[0, 1\]")])
def test_model_with_wrong_output_is_refused_at_load(tmp_path, kind, why):
    ok = Stylizer(_contract_model(tmp_path / "ok.onnx", "identity"), backend="ort")
    assert ok(smooth_image(20, 30)).shape == (20, 30, 3)
    bad = _contract_model(tmp_path / f"{kind}.onnx", kind)
    with pytest.raises(UserError, match=f"{kind}.onnx: .*{why}"):
        Stylizer(bad, backend="ort")


def test_wrong_output_refused_by_cli_and_registry_reload(tmp_path, capsys):
    models = tmp_path / "models"
    models.mkdir()
    _contract_model(models / "s.onnx", "identity")
    reg = StyleRegistry(models, backend="ort")
    old = reg.get("s")
    _contract_model(models / "s.onnx", "half")
    with pytest.raises(UserError, match="s.onnx: "):
        reg.reload("s")
    assert reg.get("s") is old  # the good model keeps serving
    _save(smooth_image(20, 20), tmp_path / "p.png")
    assert stylecast_main(["stylize", str(tmp_path / "p.png"), "-s", str(models / "s.onnx"), "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "s.onnx" in err and "16x24" in err
    assert not (tmp_path / "o.png").exists()
    # the check itself, on a bare ONNX Runtime session (what the server's reload can call)
    from stylecast.inference.stylizer import check_model

    nan = _contract_model(tmp_path / "n.onnx", "nan")
    with pytest.raises(UserError, match="n.onnx: .*NaN"):
        check_model(_session(nan), nan)


def _session(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_cli_file_name_for_several_inputs_is_refused(style_models, tmp_path, capsys):
    # issue 15.8: `-o out/one.png` with two inputs made a folder named one.png
    _save(smooth_image(20, 20), tmp_path / "a.png")
    _save(smooth_image(20, 20, 1), tmp_path / "b.png")
    rc = stylecast_main(["stylize", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-s", str(style_models / "slim.onnx"),
                         "-o", str(tmp_path / "out" / "one.png")])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "one.png" in err and "2 inputs" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]
