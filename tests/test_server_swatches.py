"""Swatches over HTTP (the app in-process): the sample photo stylized by each style, the same
pixels /v1/stylize gives at that size, made once per model file (a reload of a changed model makes
a new one), cached by URL version with an ETag; the listing links them and names the painting.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import warnings

import numpy as np
import onnx
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from server_fixtures import ROOT, decode, tiny_models  # noqa: F401 (fixture)
from stylecast.inference.server import ServerConfig, create_app
from stylecast.inference.server_browser import YEAR_S
from stylecast.inference.server_models import painting_info
from stylecast.images import encode_image
from stylecast.inference.server_swatches import SWATCH_QUALITY, SWATCH_SIDE

TOKEN = "sw4tch-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SAMPLE = (ROOT / "stylecast" / "samples" / "chelsea.jpg").read_bytes()


def with_metadata(src, dst, **values: str) -> None:
    """A copy of a model whose contract metadata says something else (the weights stay)."""
    model = onnx.load(str(src))
    for prop in model.metadata_props:
        key = prop.key.removeprefix("stylecast.")
        if key in values:
            prop.value = values[key]
    onnx.save(model, str(dst))


@pytest.fixture
def models(tiny_models, tmp_path):
    folder = tmp_path / "models"
    shutil.copytree(tiny_models, folder)
    # a full-width net painting The Starry Night, as far as its metadata says
    with_metadata(folder / "beta.onnx", folder / "starry.onnx", style_image="starry_night.jpg", architecture="TransformerNet(width=1, residual_blocks=5)")
    return folder


@pytest.fixture
def client(models):
    config = ServerConfig(models_dir=str(models), backend="ort", warmup_sizes=((32, 32),), token=TOKEN, allowed_hosts=("*",))
    with TestClient(create_app(config)) as c:
        for _ in range(300):
            if c.get("/readyz").status_code == 200:
                break
            time.sleep(0.1)
        yield c


def test_listing_links_swatches_and_names_the_painting(client, models):
    styles = {s["name"]: s for s in client.get("/v1/styles", headers=AUTH).json()["styles"]}
    for name, style in styles.items():
        sha = hashlib.sha256((models / f"{name}.onnx").read_bytes()).hexdigest()
        assert style["swatch_url"] == f"v1/swatches/{name}?v={sha[:16]}"
    assert styles["starry"]["painting"] == {"title": "The Starry Night", "artist": "Vincent van Gogh", "year": "1889"}
    assert styles["alpha"]["painting"] is None  # random.jpg: not a painting we know
    assert styles["starry"]["browser"]["realtime"] is False and styles["alpha"]["browser"]["realtime"] is True


def test_painting_from_own_metadata_then_the_table_then_a_multi_style_row():
    assert painting_info({"title": "Mine", "artist": "Me", "style_image": "starry_night.jpg"}, "x") == {"title": "Mine", "artist": "Me", "year": ""}
    assert painting_info({"style_image": "/data/styles/great_wave.jpg"}, "x")["artist"] == "Katsushika Hokusai"
    rows = '[{"name": "a", "painting": "the_scream.jpg"}, {"name": "b", "painting": "udnie.jpg"}]'
    assert painting_info({"style_image": "the_scream.jpg,udnie.jpg", "styles": rows}, "painters/b")["title"] == "Udnie"
    assert painting_info({"styles": "not json"}, "m/a") is None


def test_swatch_is_the_sample_stylized_and_cached(client):
    url = "/" + client.get("/v1/styles", headers=AUTH).json()["styles"][0]["swatch_url"]
    assert client.get(url).status_code == 401
    r = client.get(url, headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    img = decode(r.content)
    assert max(img.shape[:2]) == SWATCH_SIDE and img.shape[:2] == (128, 192)  # chelsea.jpg is 451x300
    direct = client.post("/v1/stylize", params={"style": "alpha", "size": SWATCH_SIDE, "format": "png"}, headers=AUTH, content=SAMPLE)
    # the same stylization: /v1/stylize's PNG, JPEG-coded as the swatch is, gives the swatch's pixels
    assert np.array_equal(img, decode(encode_image(decode(direct.content), "JPEG", quality=SWATCH_QUALITY)))
    etag = r.headers["etag"]
    assert r.headers["cache-control"] == f"private, max-age={YEAR_S}, immutable"
    assert client.get(url, headers={**AUTH, "If-None-Match": etag}).status_code == 304
    plain = client.get("/v1/swatches/alpha", headers=AUTH)
    assert plain.content == r.content and plain.headers["cache-control"] == "private, no-cache"


def test_a_changed_model_gets_a_new_swatch(client, models):
    first = client.get("/v1/swatches/alpha", headers=AUTH)
    shutil.copy(models / "beta.onnx", models / "alpha.onnx")
    assert client.post("/v1/reload", headers=AUTH).json()["loaded"] == ["alpha"]
    second = client.get("/v1/swatches/alpha", headers={**AUTH, "If-None-Match": first.headers["etag"]})
    assert second.status_code == 200 and second.headers["etag"] != first.headers["etag"]
    assert second.content == client.get("/v1/swatches/beta", headers=AUTH).content  # the same model now
    state = client.app.state.stylecast
    assert {k[0] for k in state.swatches.made} == {"alpha", "beta"} and len(state.swatches.made) == 2  # the old one forgotten


@pytest.mark.parametrize("name", ["nope", "..%2F..%2Fsecret", "alpha:0.5,beta:0.5", "../alpha"])
def test_swatch_names_are_served_styles_only(client, models, name):
    r = client.get(f"/v1/swatches/{name}", headers=AUTH)
    assert r.status_code in (404, 422) and set(r.json()) == {"error", "detail"}
    assert str(models) not in r.text
