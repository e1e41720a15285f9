"""The server's side of in-browser inference, over HTTP (the app in-process, no browser):

- GET /v1/styles says, per style, what the page needs (tensor contract, real time or not, the
  model's URL, size and sha256) and whether the runtime is there;
- GET /v1/styles/NAME/model: the API's token rules, names never paths, exactly the bytes the
  server runs (also after a reload that kept the old model), ETag = sha256, 304 on If-None-Match,
  a year of caching only for the URL the listing links;
- GET /ort/VERSION/FILE: only the runtime's own files, with JavaScript / wasm types, COEP/CORP and
  long caching; the page's CSP allows WebAssembly and nothing more; the page is cross-origin isolated;
- without the runtime (npm was unavailable) everything else works and the reason carries no path;
- package.json pins onnxruntime-web exactly, as the lockfile does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import warnings

import pytest

with warnings.catch_warnings():  # starlette's notice that it will move to httpx2; the client works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from server_fixtures import ROOT, tiny_models  # noqa: F401 (fixture)
from stylecast.inference.server import ServerConfig, create_app
from stylecast.inference.server_browser import YEAR_S, is_realtime
from stylecast.inference.web_runtime import FILES, MANIFEST, PACKAGE, load_runtime

TOKEN = "br0wser-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RUNTIME = load_runtime()
needs_runtime = pytest.mark.skipif(not RUNTIME.available, reason=f"no onnxruntime-web built: {RUNTIME.reason}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def models(tiny_models, tmp_path):
    folder = tmp_path / "models"
    shutil.copytree(tiny_models, folder)
    return folder


def make_client(models, **config) -> TestClient:
    options = dict(models_dir=str(models), backend="ort", warmup_sizes=((32, 32),), token=TOKEN, allowed_hosts=("*",))
    return TestClient(create_app(ServerConfig(**{**options, **config})))


def wait_ready(client: TestClient) -> None:
    for _ in range(300):
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError("the app never became ready")


@pytest.fixture
def client(models):
    with make_client(models) as c:
        wait_ready(c)
        yield c


def test_listing_describes_each_model_for_the_page(client, models):
    body = client.get("/v1/styles", headers=AUTH).json()
    assert [s["name"] for s in body["styles"]] == ["alpha", "beta"]
    for style in body["styles"]:
        data = (models / f"{style['name']}.onnx").read_bytes()
        b = style["browser"]
        assert b["sha256"] == sha256(data) and b["bytes"] == len(data)
        assert b["model_url"] == f"v1/styles/{style['name']}/model?v={sha256(data)[:16]}"
        assert b["realtime"] is True and b["recommended_size"] == [640, 480]  # the test nets are filed as variant=tiny
        assert b["input"] == {
            "name": "content",
            "type": "float32",
            "shape": ["N", 3, "H", "W"],
            "channels": "RGB",
            "range": [0, 1],
            "size_multiple": 4,
            "min_side": 16,
            "padding": "reflect, at the bottom and right, cropped back from the output",
        }
        assert b["output"]["name"] == "stylized"
    runtime = body["browser_runtime"]
    if RUNTIME.available:
        assert runtime["available"] is True and runtime["base"] == f"ort/{RUNTIME.version}/"
        assert runtime["bundles"] == {"webgpu": "ort.webgpu.min.mjs", "wasm": "ort.wasm.min.mjs"}
        assert 10e6 < runtime["bytes"]["wasm"] < runtime["bytes"]["webgpu"] < 40e6
    else:
        assert runtime["available"] is False


def test_realtime_is_the_tiny_variants_not_the_slim_nets():
    assert is_realtime({"architecture": "TransformerNet(width=0.5, residual_blocks=3, variant=tiny)"})
    assert is_realtime({"architecture": "TransformerNet(width=0.5, residual_blocks=3, variant=tiny_fullres)"})
    # the slim nets ran 3.5-6.4 FPS at 640x480 on the server path (2 cores): no badge (the name is not read)
    assert not is_realtime({"architecture": "TransformerNet(width=0.5, residual_blocks=3)"})
    assert not is_realtime({"architecture": "TransformerNet(width=1, residual_blocks=5)"})
    assert not is_realtime({"architecture": "TransformerNet(width=x.y)"}) and not is_realtime({})


def test_model_download_follows_the_api_rules_and_caches(client, models):
    data = (models / "alpha.onnx").read_bytes()
    url = client.get("/v1/styles", headers=AUTH).json()["styles"][0]["browser"]["model_url"]
    assert client.get("/" + url).status_code == 401
    assert client.get("/" + url, params={"token": TOKEN}).status_code == 401  # headers only: a URL ends up in logs
    r = client.get("/" + url, headers={"X-API-Token": TOKEN})
    assert r.status_code == 200 and r.content == data and r.headers["content-type"] == "application/octet-stream"
    etag = f'"sha256-{sha256(data)}"'
    assert r.headers["etag"] == etag and r.headers["cache-control"] == f"private, max-age={YEAR_S}, immutable"
    for plain in ("/v1/styles/alpha/model", "/v1/styles/alpha/model?v=0123456789abcdef"):  # not the listed version: revalidate
        r = client.get(plain, headers=AUTH)
        assert r.status_code == 200 and r.content == data and r.headers["cache-control"] == "private, no-cache"
    for header in (etag, f"W/{etag}", f'"x", {etag}', "*"):
        r = client.get("/" + url, headers={**AUTH, "If-None-Match": header})
        assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
    assert client.get("/" + url, headers={**AUTH, "If-None-Match": '"sha256-0"'}).status_code == 200


@pytest.mark.parametrize("name", ["nope", "..", "alpha.onnx", "%2e%2e%2fsecret"])
def test_model_names_are_style_names_never_paths(client, models, name):
    r = client.get(f"/v1/styles/{name}/model", headers=AUTH)
    assert r.status_code == 404 and set(r.json()) == {"error", "detail"}
    assert str(models) not in r.text


def test_the_download_is_the_model_being_served_across_reloads(client, models):
    old = (models / "alpha.onnx").read_bytes()
    (models / "alpha.onnx").write_bytes(b"not an onnx file")  # refused: the old model keeps serving
    report = client.post("/v1/reload", headers=AUTH).json()
    assert [k["style"] for k in report["kept_old"]] == ["alpha"]
    r = client.get("/v1/styles/alpha/model", headers=AUTH)
    assert r.content == old and r.headers["etag"] == f'"sha256-{sha256(old)}"'

    new = (models / "beta.onnx").read_bytes()
    (models / "alpha.onnx").write_bytes(new)
    assert client.post("/v1/reload", headers=AUTH).json()["loaded"] == ["alpha"]
    listed = client.get("/v1/styles", headers=AUTH).json()["styles"][0]["browser"]
    assert listed["sha256"] == sha256(new)
    stale = client.get(f"/v1/styles/alpha/model?v={sha256(old)[:16]}", headers={**AUTH, "If-None-Match": f'"sha256-{sha256(old)}"'})
    assert stale.status_code == 200 and stale.content == new and stale.headers["cache-control"] == "private, no-cache"


def test_no_browser_models_keeps_the_models_on_the_server(models):
    with make_client(models, browser_models=False) as c:
        wait_ready(c)
        body = c.get("/v1/styles", headers=AUTH).json()
        assert body["browser_runtime"] == {
            "available": False,
            "reason": "this server stylizes every frame itself: it does not hand out its models (started with --no-browser-models)",
        }
        assert "model_url" not in body["styles"][0]["browser"] and body["styles"][0]["browser"]["realtime"] is True
        r = c.get("/v1/styles/alpha/model", headers=AUTH)
        assert r.status_code == 403 and r.json()["error"] == "forbidden"


def test_page_csp_allows_webassembly_and_nothing_more_and_is_isolated(client):
    r = client.get("/")
    csp = dict(part.strip().split(" ", 1) for part in r.headers["content-security-policy"].split(";"))
    assert csp["script-src"] == "'self' 'wasm-unsafe-eval'" and csp["worker-src"] == "'self'" and csp["default-src"] == "'self'"
    assert "unsafe-eval'" not in csp["script-src"].replace("'wasm-unsafe-eval'", "") and "unsafe-inline" not in r.headers["content-security-policy"]
    assert r.headers["cross-origin-opener-policy"] == "same-origin" and r.headers["cross-origin-embedder-policy"] == "require-corp"
    assert 'src="static/ondevice.js"' in r.text and client.get("/static/ondevice.js").status_code == 200


@needs_runtime
def test_runtime_files_are_served_with_their_types_and_cached(client):
    base = f"/ort/{RUNTIME.version}/"
    for name in FILES:
        r = client.get(base + name)  # no token: module imports and workers cannot send one
        assert r.status_code == 200, name
        assert int(r.headers["content-length"]) == RUNTIME.files[name]["bytes"]
        assert r.headers["etag"] == f'"sha256-{RUNTIME.files[name]["sha256"]}"'
        assert r.headers["content-type"] == ("application/wasm" if name.endswith(".wasm") else "text/javascript; charset=utf-8")
        assert r.headers["cache-control"] == f"public, max-age={YEAR_S}, immutable"
        assert r.headers["cross-origin-embedder-policy"] == "require-corp" and r.headers["cross-origin-resource-policy"] == "same-origin"
        if name.endswith(".mjs"):
            assert sha256(r.content) == RUNTIME.files[name]["sha256"]
    assert client.get(base + FILES[0], headers={"If-None-Match": f'"sha256-{RUNTIME.files[FILES[0]]["sha256"]}"'}).status_code == 304
    for wrong in (f"/ort/0.0.1/{FILES[0]}", base + MANIFEST, base + "README.md", base + "..%2F..%2Fweb_runtime.py", base + "ort.all.min.mjs"):
        r = client.get(wrong)
        assert r.status_code == 404 and r.json()["error"] == "not_found", wrong


def test_without_the_runtime_the_server_serves_everything_else(models, tmp_path):
    with make_client(models, web_runtime_dir=str(tmp_path / "missing")) as c:
        wait_ready(c)
        body = c.get("/v1/styles", headers=AUTH).json()
        reason = body["browser_runtime"]["reason"]
        assert body["browser_runtime"]["available"] is False and reason.startswith("this installation has no in-browser runtime")
        assert str(tmp_path) not in reason and "make web-runtime" in reason
        r = c.get(f"/ort/1.0.0/{FILES[0]}")
        assert r.status_code == 404 and r.json()["detail"] == reason
        assert c.post("/v1/stylize?style=alpha", headers=AUTH, content=(ROOT / "stylecast" / "samples" / "chelsea.jpg").read_bytes()).status_code == 200


def test_an_incomplete_runtime_is_reported_by_file_name(tmp_path):
    folder = tmp_path / "rt"
    folder.mkdir()
    files = {name: {"bytes": 3, "sha256": sha256(b"abc")} for name in FILES}
    (folder / MANIFEST).write_text(json.dumps({"package": PACKAGE, "version": "9.9.9", "files": files}))
    for name in FILES[:-1]:
        (folder / name).write_bytes(b"abc")
    (folder / FILES[-1]).write_bytes(b"abcd")  # not the manifest's size: a copy cut short or replaced
    runtime = load_runtime(folder)
    assert not runtime.available and runtime.reason == (
        f"the in-browser runtime is incomplete ({FILES[-1]} is missing or damaged); `make web-runtime` builds it, with npm"
    )
    (folder / FILES[-1]).write_bytes(b"abc")
    assert load_runtime(folder).available and load_runtime(folder).version == "9.9.9"
    (folder / MANIFEST).write_text("{")
    assert load_runtime(folder).reason.startswith("the in-browser runtime's manifest is unreadable")


def test_onnxruntime_web_is_pinned_exactly():
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"][PACKAGE]
    locked = json.loads((ROOT / "package-lock.json").read_text())["packages"][f"node_modules/{PACKAGE}"]
    assert pinned == locked["version"] and pinned[0].isdigit()  # no ^ or ~: the version the tests ran
    assert locked["integrity"].startswith("sha512-")
    if RUNTIME.available:
        assert RUNTIME.version == pinned
