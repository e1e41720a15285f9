"""The stylization server, end to end: a real `stylecast serve` subprocess on 127.0.0.1.

Covers DESIGN.md's reliability bar: each bad input gets its status and a JSON error (and the server
still answers a normal request afterwards), round trips equal the stylizer's own output, overload
gives 503 + Retry-After and never 500, deadlines give 504 and free the slot, disconnects free
their slot, tokens and Origins are checked, reload keeps the old model when a new file is
corrupt, SIGTERM drains, and the server process never imports torch.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import shutil
import signal
import socket
import struct
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import smooth_image
from server_fixtures import ROOT, ServerProcess, decode, encode, parse_metric, png_declaring, tiny_models, to_uint8  # noqa: F401 (fixture)

websockets_sync = pytest.importorskip("websockets.sync.client")

MAX_BODY = 1 << 20  # --max-body-mb 1
MAX_PIXELS = 4_000_000  # --max-pixels
MAX_SIDE = 1024
WS_MAX = 256 * 1024  # --ws-max-frame-kb 256
SERVER_ARGS = [
    "--max-body-mb",
    "1",
    "--max-pixels",
    str(MAX_PIXELS),
    "--max-side",
    str(MAX_SIDE),
    "--concurrency",
    "1",
    "--queue-size",
    "2",
    "--deadline",
    "20",
    "--ws-max-frame-kb",
    "256",
]
TOKEN = "t0k3n-for-tests"


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):
    proc = ServerProcess(tiny_models, tmp_path_factory.mktemp("server"), *SERVER_ARGS).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def local_stylizers(tiny_models, client):
    """The same models in this process, on the backend/threads the server reports."""
    from stylecast.inference.stylizer import Stylizer

    info = client.get("/v1/styles").json()
    first = info["styles"][0]
    return {
        s["name"]: Stylizer(tiny_models / f"{s['name']}.onnx", backend=first["backend"], device=first["device"], threads=info["threads"])
        for s in info["styles"]
    }


def stylize(client, data: bytes, **params):
    headers = params.pop("headers", {})
    params = {"style": "alpha", **params}
    return client.post("/v1/stylize", params=params, content=data, headers=headers)


def assert_json_error(r: httpx.Response, status: int, error: str | None = None) -> dict:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["detail"], str) and body["detail"]
    if error is not None:
        assert body["error"] == error, body
    # no traceback, no file-system path (the models folder, the repo, /tmp ...)
    assert "Traceback" not in r.text and 'File "' not in r.text
    assert not re.search(r"(/[\w.-]+){2,}", body["detail"]), body["detail"]
    assert str(ROOT) not in r.text
    return body


def assert_still_serving(client) -> None:
    r = stylize(client, encode(smooth_image(24, 32, 5)))
    assert r.status_code == 200, r.text
    assert decode(r.content).shape == (24, 32, 3)


def expected(stylizer, data: bytes, **kw) -> np.ndarray:
    """What the server should answer: shared decoding, the stylizer, 8-bit rounding."""
    from stylecast.images import open_image, pil_to_array

    return to_uint8(stylizer(pil_to_array(open_image(data)), **kw))


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    diff = np.abs(got.astype(int) - want.astype(int))
    # Same model, backend and threads: identical up to one 8-bit rounding step.
    assert diff.max() <= 1 and diff.mean() < 0.05, (diff.max(), diff.mean())


# --------------------------------------------------------------------------------------------
# Round trips


def test_styles_lists_registry_names_and_metadata(client):
    r = client.get("/v1/styles")
    assert r.status_code == 200
    body = r.json()
    assert [s["name"] for s in body["styles"]] == ["alpha", "beta"]
    meta = body["styles"][0]["metadata"]
    assert meta["style_name"] == "alpha" and meta["recipe"] == "test-random-init" and meta["io"].startswith("RGB")
    assert body["limits"]["max_body_bytes"] == MAX_BODY and body["limits"]["max_pixels"] == MAX_PIXELS
    assert body["workers"] == 1


def test_png_round_trip_equals_the_stylizer(client, local_stylizers):
    image = smooth_image(96, 128, seed=3)
    data = encode(image)
    r = stylize(client, data, format="png")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-stylecast-size"] == "128x96" and r.headers["x-stylecast-style"] == "alpha"
    timing = dict(re.findall(r"(\w+);dur=([\d.]+)", r.headers["server-timing"]))
    assert set(timing) == {"queue", "decode", "stylize", "encode"} and float(timing["stylize"]) > 0
    got = decode(r.content)
    want = expected(local_stylizers["alpha"], data)
    assert_close(got, want)
    assert got.std() > 5  # the test net's output depends on the input (not a flat image)
    # a different style gives a different picture
    other = decode(stylize(client, data, style="beta", format="png").content)
    assert np.abs(other.astype(int) - got.astype(int)).mean() > 5


def test_options_size_strength_preserve_color_and_jpeg(client, local_stylizers):
    image = smooth_image(120, 160, seed=4)
    data = encode(image)
    r = stylize(client, data, size=80, strength=0.5, preserve_color="true", format="png")
    assert r.status_code == 200 and r.headers["x-stylecast-size"] == "80x60"
    assert_close(decode(r.content), expected(local_stylizers["alpha"], data, size=80, strength=0.5, preserve_color=True))
    # strength 0 returns the input
    r0 = stylize(client, data, strength=0, format="png")
    assert np.abs(decode(r0.content).astype(int) - to_uint8(image).astype(int)).max() <= 1
    # JPEG by Accept; by format; multipart upload
    rj = stylize(client, data, headers={"Accept": "image/jpeg"})
    assert rj.headers["content-type"] == "image/jpeg" and rj.content[:2] == b"\xff\xd8"
    rw = stylize(client, data, format="webp")
    assert rw.headers["content-type"] == "image/webp" and rw.content[8:12] == b"WEBP"
    rm = client.post("/v1/stylize", params={"style": "beta", "format": "png"}, files={"image": ("photo.png", data, "image/png")})
    assert rm.status_code == 200, rm.text
    assert_close(decode(rm.content), expected(local_stylizers["beta"], data))


def test_large_image_is_scaled_to_max_side(client):
    data = encode(smooth_image(600, 1200, seed=6), "JPEG", quality=80)
    r = stylize(client, data, format="jpeg")
    assert r.status_code == 200 and r.headers["x-stylecast-size"] == f"{MAX_SIDE}x{MAX_SIDE // 2}"


# --------------------------------------------------------------------------------------------
# Bad inputs: each with its status and JSON error, then a normal request still succeeds


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def tiff() -> bytes:
    return encode(Image.new("RGB", (16, 16), (10, 20, 30)), "TIFF")


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n%%EndComments\nnewpath 0 0 moveto 16 16 lineto stroke\nshowpage\n%%EOF\n"

BAD_INPUTS = {
    # name: (body, params, status, error)
    "empty body": (lambda: b"", {}, 415, "unsupported_media_type"),
    "text, not an image": (lambda: b"hello, this is not an image" * 10, {}, 415, "unsupported_media_type"),
    "TIFF": (tiff, {}, 415, "unsupported_media_type"),
    "EPS": (lambda: EPS, {}, 415, "unsupported_media_type"),
    "animated GIF": (lambda: animated("GIF"), {}, 415, "unsupported_media_type"),
    "bomb 20000x20000 PNG": (lambda: png_declaring(20000, 20000), {}, 422, "too_many_pixels"),
    "over our pixel cap": (lambda: png_declaring(2500, 2000), {}, 422, "too_many_pixels"),
    "zero width PNG": (lambda: png_declaring(0, 16), {}, 422, None),
    "1x20000 strip": (lambda: encode(Image.new("RGB", (1, 20000))), {}, 422, "bad_aspect_ratio"),
    "truncated JPEG": (lambda: encode(smooth_image(64, 64, 1), "JPEG")[:600], {}, 422, "invalid_image"),
    "unknown style": (lambda: encode(smooth_image(16, 16)), {"style": "nope"}, 404, "unknown_style"),
    "../ in the style name": (lambda: encode(smooth_image(16, 16)), {"style": "../alpha"}, 404, "unknown_style"),
    "path as style name": (lambda: encode(smooth_image(16, 16)), {"style": "/etc/passwd"}, 404, "unknown_style"),
    "strength > 1": (lambda: encode(smooth_image(16, 16)), {"strength": "2"}, 422, "invalid_parameter"),
    "size over max_side": (lambda: encode(smooth_image(16, 16)), {"size": "5000"}, 422, "invalid_parameter"),
    "bad format": (lambda: encode(smooth_image(16, 16)), {"format": "bmp"}, 422, "invalid_parameter"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_its_status_and_a_json_error(client, case):
    body, params, status, error = BAD_INPUTS[case]
    r = stylize(client, body(), **params)
    detail = assert_json_error(r, status, error)["detail"]
    if case == "../ in the style name":
        assert "alpha, beta" in detail and "../" not in detail
    assert_still_serving(client)


def test_not_acceptable_and_unknown_route_are_json(client):
    assert_json_error(stylize(client, encode(smooth_image(16, 16)), headers={"Accept": "application/json"}), 406, "not_acceptable")
    assert_json_error(client.get("/v2/whatever"), 404, "not_found")
    assert_json_error(client.delete("/v1/styles"), 405, "method_not_allowed")
    assert_json_error(client.post("/v1/reload"), 403, "forbidden")  # no token configured: reload is off
    assert_still_serving(client)


def test_body_limit_with_and_without_content_length(client):
    blob = np.random.default_rng(0).integers(0, 256, MAX_BODY + 300_000, dtype=np.uint8).tobytes()
    assert_json_error(stylize(client, blob), 413, "payload_too_large")

    def chunks():  # chunked transfer: no Content-Length, the limit is found while streaming
        for i in range(0, len(blob), 64 * 1024):
            yield blob[i : i + 64 * 1024]

    r = stylize(client, chunks())
    assert "content-length" not in r.request.headers and r.request.headers["transfer-encoding"] == "chunked"
    assert_json_error(r, 413, "payload_too_large")
    assert_still_serving(client)


@pytest.mark.parametrize("mode", ["RGBA", "P", "CMYK", "L", "I;16", "exif", "APNG", "animated WebP", "1x1"])
def test_image_modes_are_converted_like_the_cli(client, local_stylizers, mode):
    """Odd but valid images: 200, and the same pixels the shared decoder + stylizer give."""
    base = Image.fromarray(to_uint8(smooth_image(30, 44, seed=8)))
    if mode == "RGBA":
        rgba = base.convert("RGBA")
        rgba.putalpha(Image.linear_gradient("L").resize(base.size))
        data = encode(rgba)
    elif mode == "P":
        data = encode(base.quantize(16))
    elif mode == "CMYK":
        data = encode(base.convert("CMYK"), "JPEG", quality=95)
    elif mode == "L":
        data = encode(base.convert("L"))
    elif mode == "I;16":
        arr16 = np.asarray(base.convert("L"), dtype=np.uint16) * 257
        img16 = Image.fromarray(arr16)
        assert img16.mode == "I;16"
        data = encode(img16)
    elif mode == "exif":
        exif = Image.Exif()
        exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
        data = encode(base, "JPEG", quality=95, exif=exif.tobytes())
    elif mode == "APNG":
        data = animated("PNG")
    elif mode == "animated WebP":
        data = animated("WEBP")
    else:
        data = encode(Image.new("RGB", (1, 1), (200, 100, 50)))
    r = stylize(client, data, format="png")
    assert r.status_code == 200, r.text
    got = decode(r.content)
    assert_close(got, expected(local_stylizers["alpha"], data))
    if mode == "exif":
        assert got.shape[:2] == (44, 30)  # displayed upright: portrait
    if mode in ("APNG", "animated WebP"):
        assert got.shape[:2] == (30, 40)


# --------------------------------------------------------------------------------------------
# Load: overload, deadline, disconnect


def test_overload_gives_503_with_retry_after_and_never_500(server):
    data = encode(smooth_image(768, 1024, seed=9), "JPEG", quality=85)

    async def burst():
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=32)) as c:
            return await asyncio.gather(*[c.post("/v1/stylize", params={"style": "alpha", "format": "png"}, content=data) for _ in range(14)])

    before = server.metric("stylecast_rejected_total", reason="overloaded")
    responses = asyncio.run(burst())
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 503}, codes
    assert codes.count(503) >= 1 and codes.count(200) >= 3, codes  # capacity = 1 running + 2 queued
    for r in responses:
        if r.status_code == 503:
            assert_json_error(r, 503, "overloaded")
            assert int(r.headers["retry-after"]) >= 1
    assert server.metric("stylecast_rejected_total", reason="overloaded") - before == codes.count(503)
    assert server.metric("stylecast_queue_depth") == 0


def test_deadline_gives_504_and_frees_the_slot(server, client):
    data = encode(smooth_image(512, 512, seed=10), "JPEG")
    start = time.monotonic()
    r = stylize(client, data, timeout="0.001")
    assert_json_error(r, 504, "deadline_exceeded")
    assert time.monotonic() - start < 5
    end = time.monotonic() + 10
    while server.metric("stylecast_inflight") and time.monotonic() < end:
        time.sleep(0.05)
    assert server.metric("stylecast_inflight") == 0 and server.metric("stylecast_queue_depth") == 0
    assert server.metric("stylecast_rejected_total", reason="deadline") >= 1
    assert_still_serving(client)


def _v2_infer_request(host: str, model: str, x: np.ndarray) -> bytes:
    """A raw Open Inference Protocol request with the input as a binary tensor."""
    header = json.dumps({"inputs": [{"name": "content", "shape": list(x.shape), "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}]}).encode()
    body = header + x.astype(np.float32).tobytes()
    head = f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: {host}\r\nInference-Header-Content-Length: {len(header)}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


@pytest.mark.parametrize("route", ["v1", "v2"])
def test_client_disconnect_frees_its_slot(server, client, route):
    # the same for /v1/stylize and the Open Inference Protocol's infer: one job runner (server_jobs)
    big = encode(smooth_image(MAX_SIDE, MAX_SIDE, seed=11), "JPEG", quality=90)
    holder: dict = {}
    t = threading.Thread(target=lambda: holder.setdefault("r", stylize(httpx.Client(base_url=server.url, timeout=60), big, format="png")))
    before = server.metric("stylecast_rejected_total", reason="disconnect")
    t.start()
    end = time.monotonic() + 10
    while server.metric("stylecast_inflight") < 1 and time.monotonic() < end:
        time.sleep(0.005)
    # a second request, queued behind the first; its client hangs up without reading the answer
    host, port = server.url[len("http://") : -1].split(":")
    if route == "v1":
        body = encode(smooth_image(256, 256, seed=12), "JPEG")
        request = f"POST /v1/stylize?style=alpha HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    else:
        request = _v2_infer_request(host, "alpha", np.random.default_rng(12).random((1, 3, 64, 64), dtype=np.float32))
    with socket.create_connection((host, int(port))) as s:
        s.sendall(request)
        time.sleep(0.02)
    t.join(60)
    assert holder["r"].status_code == 200
    end = time.monotonic() + 10
    while server.metric("stylecast_rejected_total", reason="disconnect") == before and time.monotonic() < end:
        time.sleep(0.05)
    assert server.metric("stylecast_rejected_total", reason="disconnect") == before + 1
    assert server.metric("stylecast_queue_depth") == 0
    assert_still_serving(client)


# --------------------------------------------------------------------------------------------
# WebSocket stream


def recv_until(ws, want_seq: int, timeout: float = 30) -> list:
    """Messages until the one answering `want_seq` (frame, dropped or error)."""
    out = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        msg = ws.recv(timeout=max(0.1, end - time.monotonic()))
        parsed = parse_ws(msg)
        out.append(parsed)
        if parsed[0].get("seq") == want_seq and parsed[0]["type"] in ("frame", "dropped", "error"):
            return out
    raise AssertionError(f"no answer for frame {want_seq}: {out}")


def parse_ws(msg):
    if isinstance(msg, str):
        return json.loads(msg), None
    n = struct.unpack(">I", msg[:4])[0]
    return json.loads(msg[4 : 4 + n]), msg[4 + n :]


def test_stream_frames_style_switch_and_strength(server, local_stylizers):
    frame = encode(smooth_image(240, 320, seed=13), "JPEG", quality=90)
    with websockets_sync.connect(server.ws_url + "?style=alpha&format=png", max_size=2**24) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "hello" and hello["style"] == "alpha" and hello["styles"] == ["alpha", "beta"]
        ws.send(frame)
        head, img = recv_until(ws, 1)[-1]
        assert head["type"] == "frame" and head["style"] == "alpha" and (head["width"], head["height"]) == (320, 240)
        assert head["stats"]["processed"] == 1 and head["infer_ms"] > 0
        alpha = decode(img)
        assert_close(alpha, expected(local_stylizers["alpha"], frame))
        # switch style and strength on the same connection
        ws.send(json.dumps({"style": "beta"}))
        ack = json.loads(ws.recv(timeout=10))
        assert ack["type"] == "config" and ack["style"] == "beta"
        ws.send(frame)
        head, img = recv_until(ws, 2)[-1]
        assert head["style"] == "beta"
        assert_close(decode(img), expected(local_stylizers["beta"], frame))
        ws.send(json.dumps({"strength": 0}))
        assert json.loads(ws.recv(timeout=10))["strength"] == 0
        ws.send(frame)
        _, img = recv_until(ws, 3)[-1]
        assert np.abs(decode(img).astype(int) - decode(frame).astype(int)).max() <= 1
        # bad settings are refused and the connection stays
        ws.send(json.dumps({"style": "../alpha"}))
        err = json.loads(ws.recv(timeout=10))
        assert err["type"] == "error" and err["status"] == 404
        ws.send("{not json")
        assert json.loads(ws.recv(timeout=10))["error"] == "invalid_message"
        ws.send(json.dumps({"steady": 0.99}))
        err = json.loads(ws.recv(timeout=10))
        assert (err["status"], err["detail"]) == (422, "steady must be a number between 0 and 0.95")
        ws.send(json.dumps({"type": "stats"}))
        stats = json.loads(ws.recv(timeout=10))
        assert stats["type"] == "stats" and stats["processed"] == 3 and stats["received"] == 3


def test_stream_latest_frame_wins(server):
    frames = [encode(smooth_image(480, 640, seed=20 + i), "JPEG", quality=80) for i in range(3)]
    n = 15
    with websockets_sync.connect(server.ws_url + "?style=alpha", max_size=2**24) as ws:
        json.loads(ws.recv(timeout=10))
        for i in range(n):
            ws.send(frames[i % 3])
        answers: dict[int, str] = {}
        end = time.monotonic() + 60
        while len(answers) < n and time.monotonic() < end:
            head, _ = parse_ws(ws.recv(timeout=30))
            if head["type"] in ("frame", "dropped"):
                assert head["seq"] not in answers, "a frame was answered twice"
                answers[head["seq"]] = head["type"] if head["type"] == "frame" else head["reason"]
    assert sorted(answers) == list(range(1, n + 1))  # every frame answered exactly once
    assert answers[n] == "frame"  # the newest frame is always stylized
    assert list(answers.values()).count("stale") >= 1  # older ones were dropped, not queued
    assert server.metric("stylecast_ws_frames_total", result="dropped") >= 1


def test_stream_holds_still_with_the_temporal_filter_as_the_python_api_does(server, local_stylizers):
    # A still camera with sensor noise, then a pan of 3 px a frame. Each frame waits for its answer
    # (none dropped), so the stream's answers must equal TemporalFilter over the same decoded frames
    # (one rounding step), and with steady 0 the per-frame stylization.
    from stylecast.images import open_image, pil_to_array
    from stylecast.inference.temporal import TemporalFilter, TemporalSettings

    rng = np.random.default_rng(3)
    scene = smooth_image(150, 220, seed=7)
    views = [scene[10:130, 20:180]] * 4 + [scene[10:130, 20 + 3 * k : 180 + 3 * k] for k in range(1, 4)]
    frames = [encode(np.clip(v + rng.normal(0, 3 / 255, v.shape), 0, 1)) for v in views]
    local = local_stylizers["alpha"]
    got = {}
    for steady in (0.7, 0.0):
        query = "?style=alpha&format=png" + ("" if steady == 0.7 else "&steady=0")
        with websockets_sync.connect(server.ws_url + query, max_size=2**24) as ws:
            assert json.loads(ws.recv(timeout=10))["steady"] == steady  # the default is announced
            answers = []
            for i, frame in enumerate(frames, 1):
                ws.send(frame)
                head, img = recv_until(ws, i)[-1]
                assert head["type"] == "frame" and ("steady" in head["stages_ms"]) == (steady > 0)
                answers.append(decode(img))
            got[steady] = answers
        f = TemporalFilter(TemporalSettings(history=steady))
        for data, answer in zip(frames, got[steady]):
            x = pil_to_array(open_image(data))
            assert_close(answer, to_uint8(f(x, local(x))))
    still = {k: np.stack(v[:4]).astype(float).std(axis=0).mean() for k, v in got.items()}
    assert still[0.7] < 0.75 * still[0.0]  # the noise the net passes on, averaged over frames


def test_stream_junk_and_oversize_frames(server, client):
    with websockets_sync.connect(server.ws_url + "?style=alpha", max_size=2**24) as ws:
        json.loads(ws.recv(timeout=10))
        ws.send(b"\x00junk" * 100)
        head, _ = parse_ws(ws.recv(timeout=10))
        assert head["type"] == "error" and head["status"] == 415 and head["seq"] == 1
        ws.send(encode(smooth_image(48, 64), "JPEG"))
        head, img = recv_until(ws, 2)[-1]
        assert head["type"] == "frame" and decode(img).shape == (48, 64, 3)
        ws.send(b"\xff" * (WS_MAX + 1))
        with pytest.raises(Exception):
            for _ in range(5):
                ws.recv(timeout=10)
        assert ws.close_code == 1009
    with pytest.raises(Exception) as info:  # unknown style: refused at the handshake
        websockets_sync.connect(server.ws_url + "?style=nope")
    assert getattr(getattr(info.value, "response", None), "status_code", None) == 404
    assert_still_serving(client)


# --------------------------------------------------------------------------------------------
# Health, metrics, logs, boundaries


def test_health_ready_metrics_openapi_and_page(server, client):
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["styles"] == 2
    m = client.get("/metrics")
    assert m.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = m.text
    ok = parse_metric(text, "stylecast_http_requests_total", route="/v1/stylize", status="200")
    assert ok >= 5
    assert parse_metric(text, "stylecast_http_requests_total", route="/v1/stylize", status="415") >= 4
    # histogram: cumulative buckets end at _count
    buckets = [float(v) for v in re.findall(r'stylecast_http_request_duration_seconds_bucket\{route="/v1/stylize",le="[^"]+"\} (\S+)', text)]
    assert buckets == sorted(buckets) and buckets[-1] == parse_metric(text, "stylecast_http_request_duration_seconds_count", route="/v1/stylize")
    assert parse_metric(text, "stylecast_models_loaded") == 2 and parse_metric(text, "stylecast_ready") == 1
    schema = client.get("/openapi.json").json()
    assert {"/v1/styles", "/v1/stylize", "/v1/reload", "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])
    page = client.get("/")
    assert page.status_code == 200 and "static/app.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200


def test_access_log_is_json_lines_without_the_query(server, client):
    stylize(client, encode(smooth_image(16, 16)), strength="0.5")
    time.sleep(0.2)
    records = [r for r in server.access_records() if r["path"] == "/v1/stylize" and r["status"] == 200]
    assert records, server.log()[-2000:]
    rec = records[-1]
    assert rec["method"] == "POST" and rec["style"] == "alpha" and rec["ms"] > 0 and rec["infer_ms"] > 0 and rec["bytes_out"] > 0
    assert all("?" not in r["path"] for r in server.access_records())


def test_readyz_is_503_until_loaded_and_while_draining(tiny_models):
    """In-process app without its lifespan: nothing is loaded yet."""
    from stylecast.inference.server import ServerConfig, create_app

    app = create_app(ServerConfig(models_dir=str(tiny_models), token=None))

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            assert (await c.get("/healthz")).status_code == 200
            r = await c.get("/readyz")
            assert r.status_code == 503 and r.json()["error"] == "not_ready"
            r = await c.post("/v1/stylize", content=encode(smooth_image(16, 16)))
            assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
            state = app.state.stylecast
            await asyncio.to_thread(state.models.reload)
            assert (await c.get("/readyz")).status_code == 200
            state.draining = True
            r = await c.get("/readyz")
            assert r.status_code == 503 and r.json()["error"] == "draining"

    asyncio.run(go())


def test_watch_reloads_when_the_folder_changes(tiny_models, tmp_path):
    """--watch: the app's own lifespan (in-process) notices a new file and serves it."""
    from stylecast.inference.server import ServerConfig, create_app

    shutil.copy(tiny_models / "alpha.onnx", tmp_path / "alpha.onnx")
    app = create_app(ServerConfig(models_dir=str(tmp_path), token=None, watch_interval=0.1, warmup_sizes=((16, 16),)))
    state = app.state.stylecast

    async def go():
        async with app.router.lifespan_context(app):
            for _ in range(200):
                if state.ready_reason() is None:
                    break
                await asyncio.sleep(0.05)
            assert state.models.names() == ["alpha"]
            shutil.copy(tiny_models / "beta.onnx", tmp_path / "beta.onnx")
            for _ in range(200):
                if state.models.names() == ["alpha", "beta"]:
                    break
                await asyncio.sleep(0.05)
            assert state.models.names() == ["alpha", "beta"]
            assert state.metrics.reloads.value(result="ok") == 1
        assert state.draining

    asyncio.run(go())


def test_host_header_and_connection_cap(client, tiny_models):
    # bound to loopback: a foreign Host (DNS rebinding) is refused, loopback names are not
    assert_json_error(client.get("/v1/styles", headers={"Host": "evil.example"}), 400, "invalid_host")
    assert_json_error(client.get("/", headers={"Host": "evil.example:8000"}), 400, "invalid_host")
    assert client.get("/healthz", headers={"Host": "localhost:1234"}).status_code == 200

    from stylecast.inference.server import ServerConfig, create_app

    app = create_app(ServerConfig(models_dir=str(tiny_models), token=None, max_connections=1, warmup_sizes=((16, 16),)))

    async def go():
        await asyncio.to_thread(app.state.stylecast.models.reload)
        release = asyncio.Event()

        async def slow_body():
            await release.wait()
            yield b"x"

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            hold = asyncio.ensure_future(c.post("/v1/stylize", content=slow_body()))
            await asyncio.sleep(0.2)
            r = await c.get("/v1/styles")
            assert_json_error(r, 503, "overloaded")
            assert r.headers["retry-after"] == "1"
            assert (await c.get("/healthz")).status_code == 200  # health checks are not capped
            release.set()
            assert_json_error(await hold, 415)  # the held request itself went through (b"x" is no image)
            assert (await c.get("/v1/styles")).status_code == 200

    asyncio.run(go())


# --------------------------------------------------------------------------------------------
# Token, Origin, reload (a second server with a token and its own models folder)


@pytest.fixture(scope="module")
def token_server(tiny_models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("token-models")
    for p in tiny_models.glob("*.onnx"):
        shutil.copy(p, folder / p.name)
    proc = ServerProcess(folder, tmp_path_factory.mktemp("token-server"), "--allow-origin", "http://allowed.example", env={"STYLECAST_TOKEN": TOKEN}).start()
    yield proc
    proc.stop()


def test_token_is_required_and_compared(token_server):
    url = token_server.url
    good = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, timeout=30) as c:
        r = c.get("/v1/styles")
        assert_json_error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert_json_error(c.get("/v1/styles", headers={"Authorization": "Bearer wrong"}), 401)
        assert_json_error(c.get("/v1/styles", headers={"Authorization": f"Bearer {TOKEN}x"}), 401)
        assert_json_error(c.post("/v1/stylize", content=encode(smooth_image(16, 16))), 401)
        assert_json_error(c.get("/metrics"), 401)
        assert c.get("/v1/styles", headers=good).status_code == 200
        assert c.get("/v1/styles", headers={"X-API-Token": TOKEN}).status_code == 200
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
        assert c.get("/").status_code == 200  # the page itself is public; it asks for the token
        r = c.post("/v1/stylize", params={"style": "alpha"}, content=encode(smooth_image(16, 16)), headers=good)
        assert r.status_code == 200


def test_websocket_handshake_checks_token_and_origin(token_server):
    ws_url = token_server.ws_url
    host = token_server.url[len("http://") : -1]

    def status_of(url, **kw):
        try:
            with websockets_sync.connect(url, **kw) as ws:
                assert json.loads(ws.recv(timeout=10))["type"] == "hello"
                return 101
        except Exception as exc:  # websockets.exceptions.InvalidStatus
            return exc.response.status_code

    assert status_of(ws_url) == 401
    assert status_of(ws_url + "?token=wrong") == 401
    assert status_of(ws_url + f"?token={TOKEN}") == 101  # no Origin: not a browser
    assert status_of(ws_url, additional_headers={"Authorization": f"Bearer {TOKEN}"}) == 101
    assert status_of(ws_url + f"?token={TOKEN}", origin="http://evil.example") == 403
    assert status_of(ws_url + f"?token={TOKEN}", origin="http://allowed.example") == 101
    assert status_of(ws_url + f"?token={TOKEN}", origin=f"http://{host}") == 101  # the page's own origin
    for _ in range(100):  # a stream's record is written when the server side has closed it
        records = [r for r in token_server.access_records() if r["path"] == "/v1/stream"]
        if len(records) >= 7:
            break
        time.sleep(0.05)
    assert len(records) >= 7 and {r["status"] for r in records} == {101, 401, 403}
    assert TOKEN not in token_server.log()  # uvicorn's handshake lines carry the query: redacted


def test_reload_swaps_atomically_and_keeps_the_old_model_on_a_corrupt_file(token_server):
    folder = token_server.models_dir
    good = {"Authorization": f"Bearer {TOKEN}"}
    data = encode(smooth_image(40, 56, seed=30))
    with httpx.Client(base_url=token_server.url, timeout=60, headers=good) as c:

        def out(style):
            r = c.post("/v1/stylize", params={"style": style, "format": "png"}, content=data)
            assert r.status_code == 200, r.text
            return decode(r.content)

        alpha, beta = out("alpha"), out("beta")
        assert_json_error(c.post("/v1/reload", headers={"Authorization": "Bearer nope"}), 401)
        r = c.post("/v1/reload").json()
        assert r["result"] == "ok" and r["unchanged"] == ["alpha", "beta"] and r["loaded"] == []

        # a corrupt new version of beta: the old beta keeps serving
        (folder / "beta.onnx").write_bytes(b"\x08\x07 definitely not onnx" * 50)
        # a corrupt new style: not served; a valid new style: served
        (folder / "delta.onnx").write_bytes(b"garbage")
        shutil.copy(folder / "alpha.onnx", folder / "gamma.onnx")
        r = c.post("/v1/reload").json()
        assert r["result"] == "partial"
        assert [k["style"] for k in r["kept_old"]] == ["beta"] and [k["style"] for k in r["failed"]] == ["delta"]
        assert r["loaded"] == ["gamma"] and r["styles"] == ["alpha", "beta", "gamma"]
        for item in r["kept_old"] + r["failed"]:
            assert not re.search(r"(/[\w.-]+){2,}", item["error"]) and str(folder) not in item["error"]
        assert np.array_equal(out("beta"), beta)
        assert np.array_equal(out("gamma"), alpha)
        assert_json_error(c.post("/v1/stylize", params={"style": "delta"}, content=data), 404)

        # a valid new beta (alpha's weights) replaces the old one; a removed file stops serving
        shutil.copy(folder / "alpha.onnx", folder / "beta.onnx")
        (folder / "delta.onnx").unlink()
        (folder / "gamma.onnx").unlink()
        r = c.post("/v1/reload").json()
        assert r["result"] == "ok" and r["loaded"] == ["beta"] and r["removed"] == ["gamma"]
        assert np.array_equal(out("beta"), alpha)
        assert [s["name"] for s in c.get("/v1/styles").json()["styles"]] == ["alpha", "beta"]
        assert parse_metric(c.get("/metrics").text, "stylecast_reloads_total", result="partial") == 1


# --------------------------------------------------------------------------------------------
# SIGTERM drains; the process never held torch


def test_sigterm_drains_in_flight_work_then_exits_0(tiny_models, tmp_path):
    proc = ServerProcess(tiny_models, tmp_path, "--concurrency", "1", "--max-side", "2048").start()
    try:
        big = encode(smooth_image(1152, 1536, seed=40), "JPEG", quality=90)
        holder: dict = {}

        def slow():
            with httpx.Client(base_url=proc.url, timeout=120) as c:
                holder["r"] = c.post("/v1/stylize", params={"style": "alpha", "format": "png"}, content=big)
                holder["done"] = time.monotonic()

        t = threading.Thread(target=slow)
        t.start()
        end = time.monotonic() + 30
        while proc.metric("stylecast_inflight") < 1 and time.monotonic() < end:
            time.sleep(0.005)
        signalled = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        t.join(120)
        assert holder["r"].status_code == 200  # in-flight work finished
        assert holder["done"] > signalled  # ... and it was in flight when the signal came
        assert decode(holder["r"].content).shape == (1152, 1536, 3)
        assert proc.proc.wait(60) == 0
    finally:
        code = proc.stop()
    log = proc.log()
    assert "SIGTERM: draining" in log and "all in-flight work finished" in log, log[-3000:]
    assert code == 0
    assert proc.held_forbidden_modules() == []


def test_serve_cli_defaults_and_user_errors(tmp_path, capsys):
    from stylecast.inference.serve_cli import build_parser, config_from_args, main
    from stylecast.inference.server import ServerConfig
    from stylecast.cli import main as cli_main
    from stylecast.errors import UserError

    config = config_from_args(build_parser().parse_args([]))
    defaults = ServerConfig(token=None)
    for name in (
        "models_dir",
        "host",
        "port",
        "max_body_bytes",
        "max_pixels",
        "max_side",
        "queue_size",
        "deadline",
        "ws_max_frame_bytes",
        "default_format",
        "concurrency",
        "max_connections",
        "allowed_hosts",
    ):
        assert getattr(config, name) == getattr(defaults, name), name
    assert config.host == "127.0.0.1" and config.resolve_concurrency()[0] >= 1
    with pytest.raises(UserError, match="no such models folder"):
        main(["--models-dir", str(tmp_path / "missing")])
    with pytest.raises(UserError, match="queue_size"):
        main(["--models-dir", str(tmp_path), "--queue-size", "-1"])
    assert cli_main(["serve", "--models-dir", str(tmp_path / "missing")]) == 2
    assert "stylecast serve: error:" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(UserError, match="cannot listen"):
            main(["--models-dir", str(tmp_path), "--port", str(busy.getsockname()[1])])
