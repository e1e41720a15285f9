"""The page runs a style network itself ("run on this device": onnxruntime-web from our server)
in real headless Chromium, which here has no GPU: WebGPU finds no adapter, the page says so and
runs on WASM.

- A shipped slim style stylized in the page equals the server's output for the same image (fp32
  ONNX Runtime on both sides) within one 8-bit level, with strength and keep-colours too, on an
  image whose sides need reflection padding.
- The webcam switch goes to the device and back on a running camera without reloading: the
  WebSocket closes, no frame reaches the server, a style switch loads the other model, switching
  back reopens the stream.
- A model is downloaded once: a second page in the same browser gets it from the HTTP cache.
- Without the runtime files, or with a runtime that cannot run, the page stays on the server and
  shows why.
- (slow) WebGPU on Chromium's software adapter (SwiftShader), which does run headless here.
"""

from __future__ import annotations

import base64
import os
import shutil

import httpx
import numpy as np
import pytest

from conftest import smooth_image
from server_fixtures import CHROMIUM, CHROMIUM_ARGS, ROOT, ServerProcess, decode, encode, tiny_models  # noqa: F401 (fixture)
from stylecast.inference.stylizer import pad_amounts
from stylecast.inference.web_runtime import FILES, load_runtime

pytestmark = pytest.mark.browser
if not CHROMIUM.exists():
    pytest.skip("Debian chromium is not installed at /usr/bin/chromium (make browser-deps installs it)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
RUNTIME = load_runtime()
if not RUNTIME.available:
    pytest.skip(f"no onnxruntime-web to test: {RUNTIME.reason}", allow_module_level=True)

SLIM, FIRST = "starry_night_slim", "great_wave_slim"  # FIRST: the page's default style (first by name)
STEADY = "starry_night_tiny_fullres"  # the webcam net with a full-resolution head (a Concat, convs at full size)
TOKEN = "page-t0ken"
# SwiftShader (software Vulkan) behind WebGPU; --disable-gpu would turn WebGPU off altogether.
WEBGPU_ARGS = [a for a in CHROMIUM_ARGS if a != "--disable-gpu"] + ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--enable-features=Vulkan"]


@pytest.fixture(scope="module")
def slim_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slim-models")
    for name in (SLIM, FIRST, STEADY):
        shutil.copy(ROOT / "checkpoints" / f"{name}.onnx", folder)
    return folder


@pytest.fixture(scope="module")
def device_server(slim_models, tmp_path_factory):
    # fp32 ONNX Runtime: the reference the page must match (OpenVINO's bf16 differs by several levels)
    proc = ServerProcess(slim_models, tmp_path_factory.mktemp("device-server"), "--backend", "ort", env={"STYLECAST_TOKEN": TOKEN}).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def playwright():
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    yield b
    b.close()


class Page:
    """A page of the server in a fresh browser context (its own HTTP cache), token pre-set,
    page errors and console errors collected."""

    def __init__(self, browser, server, token: str | None = TOKEN, context=None):
        self.own_context = context is None
        self.context = context or browser.new_context(viewport={"width": 1200, "height": 900})
        self.context.grant_permissions(["camera"], origin=server.url.rstrip("/"))
        if token:
            self.context.add_init_script(f"sessionStorage.setItem('stylecast-token', {token!r})")
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        self.page.goto(server.url)
        self.page.wait_for_function("() => window.stylecast.browserRuntime !== null && !document.querySelector('#style').disabled")

    def close(self):
        (self.context if self.own_context else self.page).close()
        assert self.errors == [], self.errors


def stylize_in_page(page, png: bytes, **options) -> np.ndarray:
    url = page.evaluate("([b, o]) => stylecast.device.stylizeBase64(b, o)", [base64.b64encode(png).decode(), options])
    return decode(base64.b64decode(url.split(",", 1)[1])).astype(np.int16)


def stylize_on_server(server, png: bytes, **options) -> np.ndarray:
    params = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()}
    r = httpx.post(server.url + "v1/stylize", params={**params, "format": "png"}, content=png, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert r.status_code == 200, r.text
    return decode(r.content).astype(np.int16)


@pytest.mark.parametrize("style, strength, preserve_color", [(SLIM, 1.0, False), (SLIM, 0.6, True), (STEADY, 1.0, False)])
def test_page_stylizes_like_the_server(device_server, browser, style, strength, preserve_color):
    png = encode(smooth_image(150, 201, seed=5))  # 150x201: padded to 152x204 and cropped back
    page = Page(browser, device_server)
    try:
        opts = {"style": style, "strength": strength, "preserve_color": preserve_color}
        mine, theirs = stylize_in_page(page.page, png, **opts), stylize_on_server(device_server, png, **opts)
        assert mine.shape == theirs.shape == (150, 201, 3)
        diff = np.abs(mine - theirs)
        print(f"in-browser vs server, {opts}: max {diff.max()}, differing values {np.mean(diff > 0):.3%}")
        assert diff.max() <= 1 and np.mean(diff > 0) < 0.01
        assert np.abs(mine - decode(png)).mean() > 10  # stylized, not the photo
        engine = page.page.evaluate("[StylecastDevice.describe(), StylecastDevice.state.notes, self.crossOriginIsolated]")
        assert engine[0].startswith("WASM (SIMD") and engine[2] is True
        assert engine[1] == ["WebGPU unavailable: no adapter (no usable GPU, or GPU access disabled)"]
    finally:
        page.close()


def test_reflect_padding_matches_numpy(device_server, browser):
    page = Page(browser, device_server)
    try:
        from stylecast.inference.contract import MIN_SIDE, SIZE_MULTIPLE

        for n in range(1, 10):
            assert page.page.evaluate("([n, m, s]) => StylecastDevice.padTo(n, m, s)", [n, SIZE_MULTIPLE, MIN_SIDE]) == n + pad_amounts(n, n)[0]
            symmetric = n == 1
            js = page.page.evaluate("([n, s]) => Array.from({length: 3 * n + 8}, (_, i) => StylecastDevice.reflectIndex(i, n, s))", [n, symmetric])
            ref = np.pad(np.arange(n), (0, 2 * n + 8), mode="symmetric" if symmetric else "reflect")
            assert js == ref.tolist(), n
    finally:
        page.close()


def frames(page, counter: str, at_least: int, timeout_s: float = 90) -> None:
    page.wait_for_function(f"() => {counter} >= {at_least}", timeout=timeout_s * 1000)


def test_webcam_switches_to_the_device_and_back_without_reloading(device_server, browser):
    page = Page(browser, device_server)
    pg = page.page
    try:
        pg.evaluate("window.samePage = 42")
        pg.click("#tab-webcam")
        pg.click("#cam-start")
        frames(pg, "window.stylecast.framesDrawn", 3)
        assert pg.inner_text("#backend") == "the server" and pg.evaluate("window.stylecast.lastHeader.style") == FIRST

        pg.check("#on-device")
        frames(pg, "window.stylecast.device.framesDrawn", 3, timeout_s=120)
        assert pg.evaluate("window.stylecast.ws") is None
        assert pg.inner_text("#backend").startswith("WASM (SIMD")
        assert "WebGPU unavailable" in pg.inner_text("#device-status")
        assert float(pg.inner_text("#fps")) > 0
        sent = device_server.metric("stylecast_ws_frames_total", headers={"Authorization": f"Bearer {TOKEN}"})
        drawn = pg.evaluate("window.stylecast.device.framesDrawn")
        frames(pg, "window.stylecast.device.framesDrawn", drawn + 2)
        assert device_server.metric("stylecast_ws_frames_total", headers={"Authorization": f"Bearer {TOKEN}"}) == sent  # none went to the server
        # the temporal filter runs on the device too (the fake camera's pattern moves: a translation is found)
        assert pg.evaluate("window.stylecast.device.filter.settings.history") == 0.7
        assert pg.evaluate("window.stylecast.device.filter.lastShift") is not None
        assert device_server.metric("stylecast_ws_connections", headers={"Authorization": f"Bearer {TOKEN}"}) == 0

        pg.select_option("#style", SLIM)  # the other model is fetched and used on the device
        pg.wait_for_function("() => StylecastDevice.state.modelLoads === 2", timeout=60_000)
        drawn = pg.evaluate("window.stylecast.device.framesDrawn")
        frames(pg, "window.stylecast.device.framesDrawn", drawn + 2)

        pg.uncheck("#on-device")  # back to the server, on the same page
        drawn = pg.evaluate("window.stylecast.framesDrawn")
        pg.wait_for_function(f"() => window.stylecast.lastHeader.style === '{SLIM}' && window.stylecast.framesDrawn >= {drawn + 3}", timeout=60_000)
        assert pg.inner_text("#backend") == "the server"
        assert pg.evaluate("[window.samePage, window.stylecast.connections]") == [42, 2]
        pg.click("#cam-stop")
    finally:
        page.close()


@pytest.mark.parametrize("size", [(96, 128), (240, 320)])
def test_the_page_filter_holds_still_as_the_server_does(device_server, browser, size):
    # temporal.js against inference/temporal.py on the same frames: a still camera with sensor noise,
    # then a pan of (1.5, −0.5) px a frame; "stylized" by a fixed function with a pattern fixed to the
    # frame (what a stride grid does), so the history matters. 240x320 takes the downscaled path
    # (phase correlation and the first Lucas–Kanade steps at half size), 96x128 the full-size one.
    from stylecast.flicker import Motion, make_clip
    from stylecast.inference.temporal import TemporalFilter

    h, w = size
    scene = smooth_image(h + 80, w + 80, seed=11)
    still = make_clip(scene, Motion("noise", noise=3 / 255), frames=3, size=size, seed=1).frames
    pan = make_clip(scene, Motion("pan", pan=(1.5, -0.5)), frames=4, size=size).frames
    frames = [np.rint(f * 255).astype(np.uint8) for f in still + pan[1:]]
    yy, xx = np.mgrid[0:h, 0:w]
    pattern = (40 * ((xx // 4 + yy // 4) % 2))[..., None]
    stylized = [np.clip(255 - f.astype(int) + pattern, 0, 255).astype(np.uint8) for f in frames]

    f = TemporalFilter()
    want, shifts = [], []
    for x, y in zip(frames, stylized):
        want.append(np.clip(np.rint(f(x.astype(np.float32) / 255, y.astype(np.float32) / 255) * 255), 0, 255).astype(np.int16))
        shifts.append(f.last_shift)

    b64 = lambda a: base64.b64encode(a.tobytes()).decode()  # noqa: E731
    rgba = [np.concatenate([x, np.full((h, w, 1), 255, np.uint8)], axis=2) for x in frames]
    page = Page(browser, device_server)
    try:
        got, js_shifts = page.page.evaluate(
            """([frames, styl, w, h]) => {
                const dec = (b) => Uint8Array.from(atob(b), (c) => c.charCodeAt(0));
                const f = StylecastTemporal.create();
                const outs = [], shifts = [];
                for (let t = 0; t < frames.length; t++) {
                  const o = f.step(dec(frames[t]), Float32Array.from(dec(styl[t]), (v) => v / 255), w, h);
                  const u8 = new Uint8ClampedArray(o.length);
                  for (let i = 0; i < o.length; i++) u8[i] = o[i] * 255;
                  let bin = "";
                  for (let i = 0; i < u8.length; i++) bin += String.fromCharCode(u8[i]);
                  outs.push(btoa(bin));
                  shifts.push(f.lastShift);
                }
                return [outs, shifts];
            }""",
            [[b64(x) for x in rgba], [b64(y) for y in stylized], w, h],
        )
    finally:
        page.close()
    assert js_shifts[0] is None and shifts[0] is None
    for ours, theirs in zip(shifts[1:], js_shifts[1:]):
        assert theirs == pytest.approx(ours, abs=1e-4)
    assert shifts[-1] == pytest.approx((1.5, -0.5), abs=0.05)
    for ours, data in zip(want, got):
        theirs = np.frombuffer(base64.b64decode(data), np.uint8).reshape(h, w, 3).astype(np.int16)
        # one level at most: with 8-bit inputs and history 0.7 many values fall on x.5 exactly, where
        # float32 (numpy) and float64 (JS) rounding pick different sides (measured: 4 % of values)
        diff = np.abs(theirs - ours)
        assert diff.max() <= 1 and diff.mean() < 0.1, (diff.max(), diff.mean())


def test_a_model_is_downloaded_once(device_server, browser, tmp_path):
    png = encode(smooth_image(40, 56, seed=2))
    context = browser.new_context()
    try:
        path = f"/v1/styles/{FIRST}/model"
        before = sum(1 for r in device_server.access_records() if r.get("path") == path and r.get("status") == 200)
        for _ in range(2):  # two pages: fresh scripts, one browser cache
            page = Page(browser, device_server, context=context)
            stylize_in_page(page.page, png, style=FIRST, strength=1.0, preserve_color=False)
            page.close()
        records = [r for r in device_server.access_records() if r.get("path") == path]
        assert sum(1 for r in records if r.get("status") == 200) == before + 1
    finally:
        context.close()


def test_without_the_runtime_the_page_stays_on_the_server_and_says_why(tiny_models, browser, tmp_path):
    server = ServerProcess(tiny_models, tmp_path / "server", env={"STYLECAST_WEB_RUNTIME": str(tmp_path / "no-runtime")}).start()
    try:
        page = Page(browser, server, token=None)
        pg = page.page
        assert pg.is_disabled("#on-device")
        status = pg.inner_text("#device-status")
        assert status.startswith("Runs on the server: this installation has no in-browser runtime") and "make web-runtime" in status
        pg.click("#tab-webcam")
        pg.click("#cam-start")
        frames(pg, "window.stylecast.framesDrawn", 3)
        assert pg.inner_text("#backend") == "the server"
        page.close()
        r = httpx.get(server.url + f"ort/{RUNTIME.version}/{FILES[0]}")
        assert r.status_code == 404 and "no in-browser runtime" in r.json()["detail"] and str(tmp_path) not in r.text
    finally:
        server.stop()


def test_a_runtime_that_cannot_run_falls_back_to_the_server(tiny_models, browser, tmp_path):
    broken = tmp_path / "broken-runtime"
    broken.mkdir()
    for name in [*FILES, "runtime.json"]:
        os.symlink(RUNTIME.folder / name, broken / name)
    wasm = broken / "ort-wasm-simd-threaded.wasm"
    size = wasm.stat().st_size
    wasm.unlink()
    wasm.write_bytes(b"\0" * size)  # the manifest's size, not WebAssembly
    server = ServerProcess(tiny_models, tmp_path / "server", env={"STYLECAST_WEB_RUNTIME": str(broken)}).start()
    try:
        page = Page(browser, server, token=None)
        pg = page.page
        pg.click("#tab-webcam")
        pg.click("#cam-start")
        frames(pg, "window.stylecast.framesDrawn", 2)
        pg.check("#on-device")
        pg.wait_for_function("() => window.stylecast.device.reason !== null", timeout=60_000)
        assert not pg.is_checked("#on-device")
        assert pg.inner_text("#device-status").startswith("Runs on the server: in-browser inference failed:")
        drawn = pg.evaluate("window.stylecast.framesDrawn")
        frames(pg, "window.stylecast.framesDrawn", drawn + 3)  # the server took over again
        assert pg.inner_text("#backend") == "the server"
        page.errors = []  # the runtime logs the broken binary on the console itself
        page.close()
    finally:
        server.stop()


@pytest.mark.slow
def test_webgpu_on_the_software_adapter_matches_the_server(device_server, playwright):
    """Chromium's SwiftShader adapter runs WebGPU headless here, ~4 s a frame at 48x64 (1.5 min
    at 320x240): a check of the WebGPU path's output, not of its speed."""
    png = encode(smooth_image(48, 64, seed=9))
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=WEBGPU_ARGS, headless=True)
    try:
        page = Page(b, device_server)
        mine = stylize_in_page(page.page, png, style=SLIM, strength=1.0, preserve_color=False)
        assert page.page.evaluate("[StylecastDevice.describe(), StylecastDevice.state.notes]") == ["WebGPU", []]
        page.close()
    finally:
        b.close()
    diff = np.abs(mine - stylize_on_server(device_server, png, style=SLIM, strength=1.0, preserve_color=False))
    print(f"WebGPU (SwiftShader) vs server: max {diff.max()}, differing values {np.mean(diff > 0):.3%}")
    assert diff.max() <= 2
