"""Server hardening (issue 15) and structure (issue 14), against a real `stylecast serve` on 127.0.0.1.

What an attacker or an unlucky client did to the server: idle and slow-header sockets, nested JSON
on the stream, token spellings that slipped past the log redaction, models that load but answer
wrong, repeated query parameters, a flood of refused handshakes, /docs from a CDN, and
decompression work within the pixel limits. Each test here failed before its fix.
"""

from __future__ import annotations

import ast
import json
import re
import selectors
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import smooth_image
from server_fixtures import ROOT, ServerProcess, decode, encode, png_declaring, tiny_models, to_uint8  # noqa: F401 (fixture)

websockets_sync = pytest.importorskip("websockets.sync.client")

TOKEN = "hard-T0KEN-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_CONNECTIONS = 3


@pytest.fixture(scope="module")
def models(tiny_models, tmp_path_factory) -> Path:
    """A copy of the test styles: the reload test changes its folder."""
    folder = tmp_path_factory.mktemp("hard-models")
    for p in tiny_models.glob("*.onnx"):
        shutil.copy(p, folder / p.name)
    return folder


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    proc = ServerProcess(
        models, tmp_path_factory.mktemp("hard-server"), "--concurrency", "1", "--max-connections", str(MAX_CONNECTIONS), env={"STYLECAST_TOKEN": TOKEN}
    ).start()
    yield proc
    proc.stop()


def address(server) -> tuple[str, int]:
    host, port = server.url[len("http://") : -1].split(":")
    return host, int(port)


def json_error(r: httpx.Response, status: int, error: str | None = None) -> dict:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error", "detail"}, body
    if error is not None:
        assert body["error"] == error, body
    assert "Traceback" not in r.text and str(ROOT) not in r.text
    return body


def small_request(server) -> httpx.Response:
    return httpx.post(server.url + "v1/stylize", params={"style": "alpha"}, content=encode(smooth_image(24, 32, 5)), headers=AUTH, timeout=10)


def ws_connect(server, query: str = "", **kw):
    return websockets_sync.connect(server.ws_url + query, max_size=2**24, **kw)


def ws_status(server, query: str = "", **kw) -> int:
    try:
        with ws_connect(server, query, **kw) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
            return 101
    except Exception as exc:  # websockets.exceptions.InvalidStatus
        return exc.response.status_code


def parse_ws(msg):
    if isinstance(msg, str):
        return json.loads(msg), None
    n = int.from_bytes(msg[:4], "big")
    return json.loads(msg[4 : 4 + n]), msg[4 + n :]


# --------------------------------------------------------------------------------------------
# 1. Idle and slow-header connections; the connection cap


def test_idle_and_slow_header_connections_do_not_take_the_server_down(server):
    """>= 200 sockets that send nothing (or half a request line) for 10 s: the server closes them
    after its header timeout (they are re-opened at once, so 200+ stay open the whole time), and
    /healthz and a normal request keep answering within 1 s."""
    addr = address(server)
    sel = selectors.DefaultSelector()
    n_idle, n_partial = 200, 30

    def open_one(partial: bool) -> None:
        s = socket.create_connection(addr, timeout=5)
        if partial:
            s.sendall(b"GET /healthz HT")  # half a request line, never finished
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, partial)

    for i in range(n_idle + n_partial):
        open_one(i >= n_idle)
    closed_by_server, answers_408, probes, worst = 0, [], 0, 0.0
    end = time.monotonic() + 10
    try:
        while time.monotonic() < end:
            for key, _ in sel.select(timeout=0):
                s, partial = key.fileobj, key.data
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if data.startswith(b"HTTP/1.1 408"):
                    answers_408.append(data)
                sel.unregister(s)
                s.close()
                closed_by_server += 1
                open_one(partial)  # the attacker comes straight back
            assert len(sel.get_map()) == n_idle + n_partial
            for probe in (lambda: httpx.get(server.url + "healthz", timeout=5), lambda: small_request(server)):
                start = time.monotonic()
                r = probe()
                took = time.monotonic() - start
                assert r.status_code == 200, (r.status_code, r.headers.get("content-type"), r.text[:200])
                worst = max(worst, took)
                probes += 1
            time.sleep(0.25)
    finally:
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()
    assert probes >= 16 and worst < 1.0, (probes, worst)
    # every socket of the first wave was closed by the server (default header timeout: 5 s)
    assert closed_by_server >= n_idle + n_partial, closed_by_server
    # half a request line gets a JSON 408 before the close; an idle socket is just closed
    assert answers_408, "no 408 for a half-sent request head"
    head, _, body = answers_408[0].partition(b"\r\n\r\n")
    assert b"application/json" in head.lower() and json.loads(body)["error"] == "request_timeout"
    assert len(answers_408) >= n_partial


def test_a_body_nobody_reads_cannot_hold_the_connection(server):
    """An answer sent before the body was read (here a 401) leaves the client owing its body;
    trickling it a byte a second keeps the connection only until the header timeout (5 s)."""
    s = socket.create_connection(address(server), timeout=5)
    try:
        s.sendall(b"POST /v1/stylize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 401")
        start, closed_after = time.monotonic(), None
        s.settimeout(1.0)
        while closed_after is None and time.monotonic() - start < 15:
            try:
                s.sendall(b"x")
                if s.recv(4096) == b"":
                    closed_after = time.monotonic() - start
            except socket.timeout:
                pass
            except OSError:
                closed_after = time.monotonic() - start
        assert closed_after is not None and closed_after < 8, closed_after
    finally:
        s.close()


def test_connection_cap_answers_json_503_and_health_stays_up(server):
    """--max-connections requests at once (here: bodies that never finish): the next request gets
    the server's JSON 503 + Retry-After; /healthz and /readyz still answer."""
    held = []
    try:
        for _ in range(MAX_CONNECTIONS):
            s = socket.create_connection(address(server))
            s.sendall(
                b"POST /v1/stylize?style=alpha HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                + TOKEN.encode()
                + b"\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n\x89PNG"
            )
            held.append(s)
        end = time.monotonic() + 10
        while True:
            r = httpx.get(server.url + "v1/styles", headers=AUTH, timeout=5)
            if r.status_code == 503 or time.monotonic() > end:
                break
            time.sleep(0.05)
        json_error(r, 503, "overloaded")
        assert int(r.headers["retry-after"]) >= 1
        assert httpx.get(server.url + "healthz", timeout=5).status_code == 200
        assert httpx.get(server.url + "readyz", timeout=5).status_code == 200
    finally:
        for s in held:
            s.close()
    end = time.monotonic() + 10
    while httpx.get(server.url + "v1/styles", headers=AUTH, timeout=5).status_code != 200 and time.monotonic() < end:
        time.sleep(0.05)
    assert small_request(server).status_code == 200


def test_idle_connections_over_their_cap_close_the_oldest(tiny_models, tmp_path):
    """More idle sockets than --max-idle-connections: the oldest are closed at once (a flood cannot
    use up the process's file descriptors), new connections are served."""
    proc = ServerProcess(tiny_models, tmp_path, "--max-idle-connections", "50", "--header-timeout", "60").start()
    socks = []
    try:
        for _ in range(120):
            socks.append(socket.create_connection(address(proc), timeout=5))
        time.sleep(1.0)
        assert httpx.get(proc.url + "healthz", timeout=5).status_code == 200
        closed = 0
        for s in socks:
            s.setblocking(False)
            try:
                closed += s.recv(1) == b""
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
        assert closed == 71, closed  # the 70 oldest, and one more when the probe connected
        for s in socks[-40:]:  # the newest are still open
            with pytest.raises(BlockingIOError):
                s.recv(1)
    finally:
        for s in socks:
            s.close()
        proc.stop()


# --------------------------------------------------------------------------------------------
# 5. Nested / oversized JSON on the stream


def test_stream_survives_nested_and_oversized_json(server):
    frame = encode(smooth_image(48, 64, seed=3), "JPEG")
    with ws_connect(server, f"?style=alpha&token={TOKEN}") as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        for text in ("[" * 1000 + "]" * 1000, '{"a":' * 40 + "1" + "}" * 40, json.dumps({"style": "beta", "pad": "x" * 20_000})):
            ws.send(text)
            err = json.loads(ws.recv(timeout=10))
            assert err["type"] == "error" and err["error"] == "invalid_message" and err["status"] == 422, err
        ws.send(json.dumps({"style": "beta"}))
        assert json.loads(ws.recv(timeout=10))["style"] == "beta"
        ws.send(frame)
        head, img = parse_ws(ws.recv(timeout=30))
        assert head["type"] == "frame" and head["style"] == "beta" and decode(img).shape == (48, 64, 3)


# --------------------------------------------------------------------------------------------
# 6. Tokens in query strings


def test_tokens_never_reach_the_log_in_any_spelling(server):
    encoded = "".join(f"%{b:02X}" for b in TOKEN.encode())
    spellings = [f"?token={TOKEN}", f"?tok%65n={TOKEN}", f"?%74oken={TOKEN}", f"?style=alpha&TOK%45N={TOKEN}&x=1", f"?token={encoded}", f"?to%6Ben={encoded}"]
    for query in spellings:
        ws_status(server, query)
    # URL decoding is standard: tok%65n *is* token (and must be redacted like it)
    assert ws_status(server, f"?tok%65n={TOKEN}") == 101
    # HTTP routes take the token from headers only (a URL ends up in proxies' logs and browser history)
    json_error(httpx.get(server.url + "v1/styles", params={"token": TOKEN}, timeout=5), 401, "unauthorized")
    time.sleep(0.3)
    log = server.log()
    assert "/v1/stream" in log
    assert TOKEN not in log and encoded not in log and encoded.lower() not in log


# --------------------------------------------------------------------------------------------
# 7. A model that loads but answers wrong


def bad_model(kind: str, path: Path, like: Path) -> Path:
    """A model with valid stylecast metadata and contract I/O whose output is wrong."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = []
    if kind == "half_size":
        nodes = [helper.make_node("AveragePool", ["content"], ["stylized"], kernel_shape=[2, 2], strides=[2, 2])]
    elif kind == "nan":
        inits = [numpy_helper.from_array(np.array(2.0, np.float32), "two")]
        nodes = [helper.make_node("Sub", ["content", "two"], ["d"]), helper.make_node("Sqrt", ["d"], ["stylized"])]
    elif kind == "out_of_range":
        inits = [numpy_helper.from_array(np.array(100.0, np.float32), "k")]
        nodes = [helper.make_node("Mul", ["content", "k"], ["stylized"])]
    else:
        raise ValueError(kind)
    graph = helper.make_graph(
        nodes,
        kind,
        [helper.make_tensor_value_info("content", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("stylized", TensorProto.FLOAT, ["n", 3, "oh", "ow"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.metadata_props.extend(onnx.load(str(like)).metadata_props)
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("kind, why", [("half_size", "keeps the input's size"), ("nan", "NaN or infinite"), ("out_of_range", r"outside \[0, 1\]")])
def test_check_model_refuses_wrong_outputs(tiny_models, tmp_path, kind, why):
    from stylecast.errors import UserError
    from stylecast.inference.stylizer import Stylizer

    Stylizer(tiny_models / "alpha.onnx", backend="ort")  # a good model passes the check at load
    with pytest.raises(UserError, match=why):
        Stylizer(bad_model(kind, tmp_path / f"{kind}.onnx", tiny_models / "alpha.onnx"), backend="ort")


def test_reload_refuses_models_that_answer_wrong(server, models, tiny_models):
    data = encode(smooth_image(40, 56, seed=30))

    def out(style):
        r = httpx.post(server.url + "v1/stylize", params={"style": style, "format": "png"}, content=data, headers=AUTH, timeout=30)
        assert r.status_code == 200, r.text
        return decode(r.content)

    beta = out("beta")
    try:
        bad_model("half_size", models / "beta.onnx", tiny_models / "alpha.onnx")  # a new, bad version of beta
        bad_model("nan", models / "nan_style.onnx", tiny_models / "alpha.onnx")
        bad_model("out_of_range", models / "loud_style.onnx", tiny_models / "alpha.onnx")
        r = httpx.post(server.url + "v1/reload", headers=AUTH, timeout=60).json()
        assert r["result"] == "partial", r
        assert [k["style"] for k in r["kept_old"]] == ["beta"]
        assert sorted(k["style"] for k in r["failed"]) == ["loud_style", "nan_style"]
        assert r["styles"] == ["alpha", "beta"]
        reasons = {k["style"]: k["error"] for k in r["kept_old"] + r["failed"]}
        assert "input's size" in reasons["beta"] and "NaN or infinite" in reasons["nan_style"] and "range" in reasons["loud_style"], reasons
        assert np.array_equal(out("beta"), beta)  # the old beta keeps serving
    finally:
        for name in ("nan_style", "loud_style"):
            (models / f"{name}.onnx").unlink(missing_ok=True)
        shutil.copy(tiny_models / "beta.onnx", models / "beta.onnx")
    r = httpx.post(server.url + "v1/reload", headers=AUTH, timeout=60).json()
    assert r["result"] == "ok" and r["styles"] == ["alpha", "beta"], r
    assert np.array_equal(out("beta"), beta)


# --------------------------------------------------------------------------------------------
# 8. Repeated parameters, refused handshakes in the log, /docs


def test_repeated_query_parameters_are_refused(server):
    data = encode(smooth_image(16, 16))
    for query in ("style=alpha&style=beta", "style=alpha&strength=1&strength=0", "style=alpha&format=png&format=jpeg"):
        body = json_error(httpx.post(server.url + "v1/stylize?" + query, content=data, headers=AUTH, timeout=10), 422, "invalid_parameter")
        assert "more than once" in body["detail"]
    assert ws_status(server, f"?style=alpha&style=beta&token={TOKEN}") == 422
    assert small_request(server).status_code == 200


def test_refused_handshakes_log_one_info_line_each_and_no_error(server):
    mark = len(server.log())
    for _ in range(5):
        assert ws_status(server) == 401
    assert ws_status(server, f"?style=nope&token={TOKEN}") == 404
    time.sleep(0.3)
    lines = [line for line in server.log()[mark:].splitlines() if not line.startswith("{")]
    assert not [line for line in lines if " ERROR " in line], lines
    refusals = [line for line in lines if "/v1/stream" in line or "rejected" in line]
    assert len(refusals) == 6 and all(" INFO " in line for line in refusals), refusals
    assert "401 unauthorized" in refusals[0] and "404 unknown_style" in refusals[-1]


def test_no_page_loads_code_from_a_cdn(server):
    for path in ("docs", "redoc", "docs/oauth2-redirect"):
        json_error(httpx.get(server.url + path, timeout=5), 404, "not_found")
    assert httpx.get(server.url + "openapi.json", timeout=5).status_code == 200
    page = httpx.get(server.url, timeout=5)
    assert "default-src 'self'" in page.headers["content-security-policy"] and "cdn" not in page.text.lower()


# --------------------------------------------------------------------------------------------
# 9. Decompression work within the limits


def test_stream_has_its_own_pixel_limit(server):
    with ws_connect(server, f"?style=alpha&token={TOKEN}") as ws:
        hello = json.loads(ws.recv(timeout=10))
        limit = hello["max_pixels"]
        assert 1920 * 1080 <= limit < 3_000_000
        start = time.monotonic()
        ws.send(png_declaring(2000, 1500))  # 3 MPix: under /v1/stylize's 40 MPix, over a camera frame
        head, _ = parse_ws(ws.recv(timeout=10))
        assert head["type"] == "error" and head["error"] == "too_many_pixels" and "2000x1500" in head["detail"], head
        assert time.monotonic() - start < 2
        ws.send(encode(smooth_image(480, 640, seed=2), "JPEG"))
        head, img = parse_ws(ws.recv(timeout=30))
        assert head["type"] == "frame" and decode(img).shape == (480, 640, 3)
    limits = httpx.get(server.url + "v1/styles", headers=AUTH, timeout=5).json()["limits"]
    assert limits["ws_max_pixels"] == limit and limits["max_pixels"] == 40_000_000


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS from /proc (Linux)")
def test_parallel_decompression_bombs_have_bounded_memory(tiny_models, tmp_path):
    """Four PNGs of 3000x3000 black pixels (~30 KB each, at the --max-pixels limit) at once, on four
    workers: decoding them all at once would take ~1.2 GB; the decode budget holds it near two."""
    proc = ServerProcess(tiny_models, tmp_path, "--concurrency", "4", "--max-pixels", "9000000", "--max-side", "256").start()
    try:
        bomb = encode(Image.new("RGB", (3000, 3000)))
        assert len(bomb) < 100_000
        assert small_request_open(proc).status_code == 200
        before = _peak_rss_mb(proc.proc.pid)
        results: list[int] = []

        def one():
            r = httpx.post(proc.url + "v1/stylize", params={"style": "alpha"}, content=bomb, timeout=120)
            results.append(r.status_code)

        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        assert results == [200] * 4
        grown = _peak_rss_mb(proc.proc.pid) - before
        # budget = max_pixels + 12 MPix: at most two of these decode at once, ~60 MB each
        assert grown < 400, f"peak RSS grew by {grown:.0f} MB"
    finally:
        proc.stop()


def small_request_open(proc) -> httpx.Response:
    return httpx.post(proc.url + "v1/stylize", params={"style": "alpha"}, content=encode(smooth_image(24, 32, 5)), timeout=30)


# --------------------------------------------------------------------------------------------
# Pieces without a server


def test_json_messages_are_bounded_before_parsing():
    from stylecast.inference.server_limits import ApiError, parse_json_message

    assert parse_json_message('{"style": "a", "strength": 0.5}') == {"style": "a", "strength": 0.5}
    assert parse_json_message('{"s": "[[[[[[[[[[[[[[[[[[[[[[\\"{{{{{{"}') == {"s": '[[[[[[[[[[[[[[[[[[[[[["{{{{{{'}  # brackets in strings
    for text in ("[" * 1000 + "]" * 1000, "[" * 100_000, '{"a":' * 9 + "1" + "}" * 9, "x" * 5000, "{not json", ""):
        with pytest.raises(ApiError) as info:
            parse_json_message(text)
        assert info.value.status == 422 and info.value.error == "invalid_message"


def test_redaction_works_on_decoded_parameter_names():
    from stylecast.inference.server_logging import redact_secrets

    line = '127.0.0.1:5 - "WebSocket /v1/stream?style=a&tok%65n=S3CRET&%74oken=S3CRET&TOKEN=S3CRET&x=1" 101'
    out = redact_secrets(line)
    assert "S3CRET" not in out and "style=a" in out and "x=1" in out and out.count("***") == 3
    assert redact_secrets("no query here: a=b") == "no query here: a=b"


def test_pixel_budget_is_first_come_first_served_and_bounded():
    from stylecast.inference.server_limits import PixelBudget
    from stylecast.inference.server_queue import Abandoned

    budget = PixelBudget(100)
    order, peak, held = [], [0], [0]
    lock = threading.Lock()

    def worker(name, pixels, hold_s):
        with budget.hold(pixels, check=lambda: None):
            with lock:
                held[0] += min(pixels, 100)
                peak[0] = max(peak[0], held[0])
                order.append(name)
            time.sleep(hold_s)
            with lock:
                held[0] -= min(pixels, 100)

    first = threading.Thread(target=worker, args=("big", 80, 0.3))
    first.start()
    time.sleep(0.05)
    rest = [threading.Thread(target=worker, args=(n, p, 0.05)) for n, p in (("huge", 500), ("small", 10))]
    for t in rest:
        t.start()
        time.sleep(0.05)
    for t in [first, *rest]:
        t.join(5)
    # "small" would fit beside "big" but waits its turn behind "huge" (no barging: no starvation)
    assert order == ["big", "huge", "small"] and peak[0] <= 100

    def gone():
        raise Abandoned()

    with budget.hold(100, check=lambda: None):  # all of it: the next one waits, and gives up when told
        with pytest.raises(Abandoned):
            with budget.hold(1, check=gone):
                pass
    assert budget.used == 0


def test_service_runs_without_http(tiny_models):
    from stylecast.images import open_image, pil_to_array
    from stylecast.inference.server_limits import ApiError
    from stylecast.inference.server_service import ImageLimits, StylizeOptions, StylizeService
    from stylecast.inference.stylizer import Stylizer

    stylizer = Stylizer(tiny_models / "alpha.onnx", backend="ort")
    service = StylizeService()
    limits = ImageLimits(max_pixels=10_000, max_aspect=4.0, max_side=64)
    data = encode(smooth_image(60, 80, seed=7))
    out = service(stylizer, data, StylizeOptions(size=40, format="PNG"), limits)
    assert (out.width, out.height) == (40, 30) and set(out.stages) == {"decode", "stylize", "encode"}
    want = to_uint8(stylizer(pil_to_array(open_image(data)), size=40))
    assert np.abs(decode(out.payload).astype(int) - want.astype(int)).max() <= 1
    big = service(stylizer, encode(smooth_image(90, 100, seed=8)), StylizeOptions(), limits)
    assert (big.width, big.height) == (64, 58)  # scaled down to max_side
    with pytest.raises(ApiError) as info:
        service(stylizer, png_declaring(200, 100), StylizeOptions(), limits)
    assert info.value.status == 422 and info.value.error == "too_many_pixels"


# --------------------------------------------------------------------------------------------
# Structure (issue 14)


INFERENCE = ROOT / "inference"


def _inference_imports(path: Path) -> set[str]:
    """stylecast.inference modules a file imports (TYPE_CHECKING imports included: a cycle is a cycle)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stylecast.inference."):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("stylecast.inference.")}
    return found


def test_inference_has_no_import_cycles():
    graph = {p.stem: _inference_imports(p) for p in INFERENCE.glob("*.py")}
    state: dict[str, int] = {}

    def visit(name, trail):
        if state.get(name) == 1:
            raise AssertionError("import cycle: " + " -> ".join(trail + [name]))
        if state.get(name) == 2:
            return
        state[name] = 1
        for dep in sorted(graph.get(name, ())):
            visit(dep, trail + [name])
        state[name] = 2

    for name in sorted(graph):
        visit(name, [])


def test_server_functions_are_short():
    long = []
    for path in sorted(INFERENCE.glob("serve*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []
