"""A multi-style model served: each style by name, mixes over HTTP and on an open WebSocket, and
the page's mix sliders (headless Chromium, skipped without it)."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import torch

from conftest import smooth_image
from server_fixtures import CHROMIUM, CHROMIUM_ARGS, METADATA, ServerProcess, decode, encode, export_tiny_style, parse_metric, to_uint8

websockets_sync = pytest.importorskip("websockets.sync.client")


def export_tiny_painters(path) -> None:
    """A quarter-width 2-style net (textured convolutions, random γ, β rows) as painters.onnx."""
    from conftest import textured_net
    from stylecast.training.export import export_onnx
    from stylecast.training.transformer import TransformerNet

    single = textured_net(0.25, 1, seed=4)
    net = TransformerNet(0.25, 1, n_styles=2).eval()
    gen = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for key, value in net.state_dict().items():
            value.copy_(
                (1.0 if key.endswith("weight") else 0.0) + 0.6 * torch.randn(value.shape, generator=gen) if value.dim() == 2 else single.state_dict()[key]
            )
    styles = [{"name": "dots", "painting": "dots.jpg", "style_weight": 1.0}, {"name": "waves", "painting": "waves.jpg", "style_weight": 1.0}]
    meta = {**METADATA, "style_name": "painters", "styles": json.dumps(styles), "architecture": "TransformerNet(width=0.25, residual_blocks=1, n_styles=2)"}
    export_onnx(net, path, meta, exporter="legacy")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multi_served")
    export_tiny_style(folder / "alpha.onnx", seed=1)
    export_tiny_painters(folder / "painters.onnx")
    return folder


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    proc = ServerProcess(models, tmp_path_factory.mktemp("multi-server")).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def painters(models, client):
    from stylecast.inference.stylizer import Stylizer

    info = client.get("/v1/styles").json()
    first = info["styles"][0]
    return Stylizer(models / "painters.onnx", backend=first["backend"], device=first["device"], threads=info["threads"])


def expected(stylizer, data: bytes, weights) -> np.ndarray:
    from stylecast.images import open_image, pil_to_array

    return to_uint8(stylizer(pil_to_array(open_image(data)), style_weights=weights))


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    diff = np.abs(got.astype(int) - want.astype(int))
    assert got.shape == want.shape and diff.max() <= 1 and diff.mean() < 0.05, (diff.max(), diff.mean())


def test_styles_lists_each_style_with_its_model(client):
    info = client.get("/v1/styles").json()
    by_name = {s["name"]: s for s in info["styles"]}
    assert sorted(by_name) == ["alpha", "painters/dots", "painters/waves"]
    dots = by_name["painters/dots"]
    assert (dots["model"], dots["styles"]) == ("painters", ["dots", "waves"])
    assert "model_url" not in dots["browser"] and dots["browser"]["reason"] == "multi-style models run on the server"
    assert "styles" not in by_name["alpha"]


def test_each_style_of_a_multi_style_model_has_its_swatch(client):
    urls = {s["name"]: s["swatch_url"] for s in client.get("/v1/styles").json()["styles"]}
    assert urls["painters/dots"].startswith("v1/swatches/painters/dots?v=")
    dots, waves = (client.get("/" + urls[name]) for name in ("painters/dots", "painters/waves"))
    assert dots.status_code == waves.status_code == 200 and dots.headers["content-type"] == "image/jpeg"
    assert dots.content != waves.content and dots.headers["etag"] != waves.headers["etag"]  # one model file, two pictures
    for mix in ("painters/dots:1", "dots:0.5,waves:0.5"):
        r = client.get(f"/v1/swatches/{mix}")
        assert r.status_code == 404 and "not for mixes" in r.json()["detail"]


def test_a_style_and_a_mix_over_http(client, painters, server):
    png = encode(smooth_image(60, 80, seed=21))
    cases = {"painters/dots": {"dots": 1.0}, "dots:0.3,waves:0.7": {"dots": 0.3, "waves": 0.7}, "painters/waves:1,dots:1": {"dots": 0.5, "waves": 0.5}}
    for spec, weights in cases.items():
        r = client.post("/v1/stylize", params={"style": spec, "format": "png"}, content=png)
        assert r.status_code == 200, r.text
        assert_close(decode(r.content), expected(painters, png, weights))
    assert r.headers["x-stylecast-style"] == "painters/waves:0.5,dots:0.5"  # in the order given
    assert r.headers["content-disposition"] == 'inline; filename="painters_waves_0.5_dots_0.5.png"'
    # mixes are counted under their model, not one metric series per mix
    assert parse_metric(client.get("/metrics").text, "stylecast_inference_seconds_count", style="painters/(mix)") == 2


@pytest.mark.parametrize("spec, status, error", [
    ("dots:0.5,waves:-0.5", 422, "invalid_style"),
    ("dots:0,waves:0", 422, "invalid_style"),
    ("dots:0.5,nope:0.5", 404, "unknown_style"),
    ("alpha:0.5,dots:0.5", 404, "unknown_style"),
    ("../painters/dots", 404, "unknown_style"),
    ("/etc/painters.onnx/dots", 404, "unknown_style"),
])  # fmt: skip
def test_bad_mixes(client, spec, status, error):
    r = client.post("/v1/stylize", params={"style": spec}, content=encode(smooth_image(24, 24)))
    assert r.status_code == status and r.json()["error"] == error, r.text
    assert "Traceback" not in r.text


def test_the_mix_changes_on_the_open_stream(server, painters):
    frame = encode(smooth_image(240, 320, seed=22), "PNG")
    with websockets_sync.connect(server.ws_url + "?style=painters/dots&format=png", max_size=2**24) as ws:
        assert json.loads(ws.recv(timeout=10))["style"] == "painters/dots"
        answers = []
        for seq, spec in enumerate((None, "dots:0.2,waves:0.8", "waves:1,dots:1"), start=1):
            if spec:
                ws.send(json.dumps({"style": spec}))
                ack = json.loads(ws.recv(timeout=10))
                assert ack["type"] == "config", ack
            ws.send(frame)
            while True:
                msg = ws.recv(timeout=30)
                if isinstance(msg, bytes):
                    n = int.from_bytes(msg[:4], "big")
                    answers.append((json.loads(msg[4 : 4 + n]), decode(msg[4 + n :])))
                    break
        assert [h["style"] for h, _ in answers] == ["painters/dots", "painters/dots:0.2,waves:0.8", "painters/waves:0.5,dots:0.5"]
        assert_close(answers[1][1], expected(painters, frame, {"dots": 0.2, "waves": 0.8}))
        ws.send(json.dumps({"style": "dots:-1,waves:1"}))
        err = json.loads(ws.recv(timeout=10))
        assert err["type"] == "error" and err["status"] == 422  # refused; the stream goes on


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium")
def test_page_shows_mix_sliders_for_a_multi_style_model(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url)
        page.wait_for_function("() => document.querySelector('#style').options.length === 3 && !document.querySelector('#style').disabled")
        page.select_option("#style", "alpha")
        assert page.locator("#mix").is_hidden()  # a single-style model: no sliders
        page.select_option("#style", "painters/dots")
        assert page.locator("#mix").is_visible()
        assert page.eval_on_selector_all("#mix-sliders input", "els => els.map(e => [e.dataset.style, e.value])") == [["dots", "100"], ["waves", "0"]]
        assert page.evaluate("window.stylecast && settings().style") == "painters/dots"
        page.locator("#mix-sliders input[data-style=waves]").fill("40")
        assert page.evaluate("settings().style") == "painters/dots:1.00,waves:0.40"
        assert page.locator("#mix-value").inner_text() == "dots:1.00,waves:0.40"
        # the photo tab stylizes with the mix
        png = encode(smooth_image(60, 80, seed=23))
        page.set_input_files("#file", files=[{"name": "photo.png", "mimeType": "image/png", "buffer": png}])
        page.wait_for_function("() => window.stylecast.photoDone >= 1", timeout=30_000)
        assert page.locator("#download").get_attribute("download") == "photo-painters_dots_1.00_waves_0.40.png"
        browser.close()
        assert errors == [], errors
