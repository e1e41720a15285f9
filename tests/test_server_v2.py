"""The Open Inference Protocol (KServe v2 REST) on a real `stylecast serve`, driven by NVIDIA's own
client (tritonclient.http): metadata, readiness, inference with JSON and binary tensors equal to
the local stylizer, a multi-style model's style_weights, and the protocol's error cases."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from server_fixtures import ServerProcess, export_tiny_style
from test_multistyle_server import export_tiny_painters

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("v2_models")
    export_tiny_style(folder / "alpha.onnx", seed=1)
    export_tiny_painters(folder / "painters.onnx")
    return folder


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    # ONNX Runtime on both sides: exact comparisons with a local run (OpenVINO bf16 rounds per batch layout)
    proc = ServerProcess(models, tmp_path_factory.mktemp("v2-server"), "--max-pixels", "200000", "--backend", "ort").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def triton(server):
    return httpclient.InferenceServerClient(server.url.removeprefix("http://").rstrip("/"), network_timeout=60)


@pytest.fixture(scope="module")
def local(models, server):
    from stylecast.inference.stylizer import Stylizer

    info = httpx.get(server.url + "v1/styles", timeout=30).json()
    opts = dict(backend=info["styles"][0]["backend"], device="cpu", threads=info["threads"])
    return {"alpha": Stylizer(models / "alpha.onnx", **opts), "painters": Stylizer(models / "painters.onnx", **opts)}


def photo_batch(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    from conftest import smooth_image

    return np.stack([smooth_image(h, w, seed=seed + i).transpose(2, 0, 1) for i in range(n)]).astype(np.float32)


def infer(triton, model: str, x: np.ndarray, weights: np.ndarray | None = None, binary: bool = True) -> np.ndarray:
    inputs = [httpclient.InferInput("content", list(x.shape), "FP32")]
    inputs[0].set_data_from_numpy(x, binary_data=binary)
    if weights is not None:
        inputs.append(httpclient.InferInput("style_weights", list(weights.shape), "FP32"))
        inputs[1].set_data_from_numpy(weights, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput("stylized", binary_data=binary)]
    return triton.infer(model, inputs, outputs=outputs, request_id="r1").as_numpy("stylized")


def test_health_and_metadata(triton, server):
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    assert triton.is_model_ready("alpha") and triton.is_model_ready("painters")
    meta = triton.get_model_metadata("painters")
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [("content", "FP32", [-1, 3, -1, -1]), ("style_weights", "FP32", [-1, 2])]
    assert meta["outputs"] == [{"name": "stylized", "datatype": "FP32", "shape": [-1, 3, -1, -1]}]
    assert meta["parameters"]["styles"] == ["dots", "waves"]
    assert httpx.get(server.url + "v2/health/live").json() == {"live": True}


@pytest.mark.parametrize("binary", [True, False])
def test_round_trip_equals_the_local_stylizer(triton, local, binary):
    x = photo_batch(2, 40, 56)
    got = infer(triton, "alpha", x, binary=binary)
    want = local["alpha"].run(x)
    assert got.shape == (2, 3, 40, 56) and got.dtype == np.float32
    assert float(np.abs(got - want).max()) < 1e-5


def test_a_multi_style_model_takes_style_weights(triton, local):
    x = photo_batch(2, 32, 48, seed=5)
    weights = np.array([[1, 0], [0.3, 0.7]], np.float32)
    got = infer(triton, "painters", x, weights)
    want = local["painters"].run(x, style_weights=weights)
    assert float(np.abs(got - want).max()) < 1e-5
    assert float(np.abs(got[0] - got[1]).mean()) > 1e-3  # the two rows really got different styles


def error_of(call) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as info:
        call()
    return str(info.value.status()), info.value.message()


def test_protocol_errors(triton, server):
    x = photo_batch(1, 24, 24)
    assert error_of(lambda: infer(triton, "nope", x)) == ("404", "no model named 'nope'")
    # a multi-style model without its weights; wrong weight shape; a 3-D image
    assert "takes inputs ['content', 'style_weights']" in error_of(lambda: infer(triton, "painters", x))[1]
    assert "must be [1, 2]" in error_of(lambda: infer(triton, "painters", x, np.ones((1, 3), np.float32)))[1]
    assert "must be [N, 3, H, W]" in error_of(lambda: infer(triton, "alpha", x[0]))[1]
    # 3 x 300 x 300 = 270,000 pixels > --max-pixels 200,000
    assert "over the server's 200000 per request" in error_of(lambda: infer(triton, "alpha", photo_batch(3, 300, 300)))[1]
    url = server.url + "v2/models/"
    for body, headers, status, text in [
        (b"{not json", {}, 400, "the request is not valid JSON"),
        (
            json.dumps({"inputs": [{"name": "content", "shape": [1, 3, 2, 2], "datatype": "INT64", "data": [0] * 12}]}).encode(),
            {},
            400,
            "datatype 'INT64' is not supported",
        ),
        (
            json.dumps({"inputs": [{"name": "content", "shape": [1, 3, 2, 2], "datatype": "FP32", "data": [0.5] * 11}]}).encode(),
            {},
            400,
            "11 values for shape [1, 3, 2, 2]",
        ),
        (
            json.dumps({"inputs": [{"name": "content", "shape": [1, 3, 2, 2], "datatype": "FP32", "parameters": {"binary_data_size": 48}}]}).encode(),
            {"Inference-Header-Content-Length": "999"},
            400,
            "does not fit a body",
        ),
    ]:
        r = httpx.post(url + "alpha/infer", content=body, headers=headers, timeout=30)
        assert r.status_code == status and text in r.json()["error"] and set(r.json()) == {"error"}, r.text
    r = httpx.get(url + "nope", timeout=30)
    assert r.status_code == 404 and r.json() == {"error": "no model named 'nope'"}


# ---- stylecast stylize --server URL --------------------------------------------------------------


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from conftest import smooth_image
    from stylecast.images import save_image

    folder = tmp_path_factory.mktemp("v2_photos")
    for i, (h, w) in enumerate([(40, 56), (40, 56), (40, 56), (48, 32)]):
        save_image(smooth_image(h, w, seed=30 + i), folder / f"p{i}.png")
    return folder


def test_stylize_server_writes_what_a_local_run_writes(server, models, photos, tmp_path, capsys):
    from stylecast.cli import main as stylecast_main
    from stylecast.images import load_image

    for style, model in [("alpha", "alpha.onnx"), ("painters/dots:0.25,waves:0.75", "painters.onnx/dots:0.25,waves:0.75")]:
        remote, here = tmp_path / f"remote_{model[:5]}", tmp_path / f"local_{model[:5]}"
        # 3 photos of one size go as one request of 2 and one of 1 (--batch 2), the fourth alone
        assert stylecast_main(["stylize", str(photos), "-s", style, "-o", str(remote), "--server", server.url, "--batch", "2", "--strength", "0.8", "-q"]) == 0
        assert stylecast_main(["stylize", str(photos), "-s", str(models / model), "-o", str(here), "--strength", "0.8", "--backend", "ort", "-q"]) == 0
        got, want = sorted(remote.iterdir()), sorted(here.iterdir())
        assert len(got) == 4 and [p.name.split("_")[0] for p in got] == [p.name.split("_")[0] for p in want]
        for a, b in zip(got, want):
            diff = np.abs(load_image(a) * 255 - load_image(b) * 255)
            assert diff.max() <= 1.0, (a.name, diff.max())  # 8-bit rounding at most
    capsys.readouterr()


@pytest.mark.parametrize("args, message", [
    (["-s", "nope"], "--server {url}: 404 no model named 'nope'"),
    (["-s", "painters/nope"], "--server: model 'painters' has no style 'nope'; its styles: dots, waves"),
    (["-s", "dots:0.5,waves:0.5"], "--server: name the model of a mix, e.g. MODEL/dots:0.5,... ('dots:0.5,waves:0.5')"),
    (["-s", "alpha", "--tile", "64"], "--tile chooses how the network runs on this machine; it does not apply with --server"),
    (["-s", "alpha", "--server-url-down"], "--server http://127.0.0.1:9: cannot connect"),
])  # fmt: skip
def test_stylize_server_errors_are_one_line_and_write_nothing(server, photos, tmp_path, capsys, args, message):
    from stylecast.cli import main as stylecast_main

    url = "http://127.0.0.1:9" if "--server-url-down" in args else server.url
    args = [a for a in args if a != "--server-url-down"]
    out = tmp_path / "out"
    assert stylecast_main(["stylize", str(photos / "p0.png"), *args, "-o", str(out), "--server", url]) == 2
    err = capsys.readouterr().err
    assert message.format(url=url.rstrip("/")) in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not out.exists()
