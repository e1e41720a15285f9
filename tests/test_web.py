"""The web page in real headless Chromium (Debian's /usr/bin/chromium driven by Playwright).

Upload: the page shows the stylized result, the same pixels the API returns, with a download
link. Webcam (Chromium's fake camera, a moving test pattern): stylized frames are drawn on the
canvas, change over time, differ from the raw camera frame, FPS is shown, and style/strength
switch on the open WebSocket without reconnecting.
"""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from conftest import smooth_image
from server_fixtures import CHROMIUM, CHROMIUM_ARGS, ServerProcess, decode, encode, tiny_models  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser
if not CHROMIUM.exists():
    pytest.skip("Debian chromium is not installed at /usr/bin/chromium (make browser-deps installs it)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def web_server(tiny_models, tmp_path_factory):
    proc = ServerProcess(tiny_models, tmp_path_factory.mktemp("web-server")).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, web_server):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.grant_permissions(["camera"], origin=web_server.url.rstrip("/"))
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.goto(web_server.url)
    pg.wait_for_function("() => document.querySelector('#style').options.length === 2 && !document.querySelector('#style').disabled")
    yield pg
    context.close()
    assert errors == [], errors


def fetch_bytes(page, url_expr: str) -> bytes:
    b64 = page.evaluate(
        """async (u) => {
        const buf = new Uint8Array(await (await fetch(u)).arrayBuffer());
        let s = ""; for (let i = 0; i < buf.length; i += 8192) s += String.fromCharCode(...buf.subarray(i, i + 8192));
        return btoa(s);
    }""",
        page.evaluate(url_expr),
    )
    return base64.b64decode(b64)


def test_upload_shows_the_result_with_a_download_link(page, web_server):
    png = encode(smooth_image(150, 200, seed=50))
    page.set_input_files("#file", files=[{"name": "photo.png", "mimeType": "image/png", "buffer": png}])
    page.wait_for_function("() => window.stylecast.photoDone >= 1", timeout=30_000)
    size = page.evaluate("[document.querySelector('#result').naturalWidth, document.querySelector('#result').naturalHeight]")
    assert size == [200, 150]
    assert page.evaluate("document.querySelector('#original').naturalWidth") == 200
    download = page.locator("#download")
    assert download.is_visible() and download.get_attribute("download") == "photo-alpha.png"
    shown = decode(fetch_bytes(page, "document.querySelector('#download').href"))
    direct = httpx.post(web_server.url + "v1/stylize", params={"style": "alpha", "format": "png"}, content=png, timeout=30)
    assert np.array_equal(shown, decode(direct.content))  # the page shows what the API returns
    assert "ms on the server" in page.locator("#photo-status").inner_text()
    # changing the style re-stylizes the same photo
    page.select_option("#style", "beta")
    page.wait_for_function("() => window.stylecast.photoDone >= 2", timeout=30_000)
    assert page.locator("#download").get_attribute("download") == "photo-beta.png"
    assert not np.array_equal(decode(fetch_bytes(page, "document.querySelector('#download').href")), shown)


# Pixels leave the page as a PNG data URL: Playwright serialises a 300k-element array very slowly.
CANVAS_PNG = "() => document.querySelector('#output').toDataURL('image/png')"
CAMERA_PNG = """() => {
    const v = document.querySelector('#video'), c = document.createElement('canvas');
    c.width = 320; c.height = 240;
    c.getContext('2d').drawImage(v, 0, 0, 320, 240);
    return c.toDataURL('image/png');
}"""


def pixels(page, script: str) -> np.ndarray:
    url = page.evaluate(script)
    arr = decode(base64.b64decode(url.split(",", 1)[1])).astype(np.int16)
    assert arr.shape == (240, 320, 3)
    return arr


def test_webcam_sends_each_camera_frame_once(page, web_server):
    # The tiny test models answer faster than the fake camera's 30 FPS: before, the page sent the
    # frame on screen again on every animation frame (up to 60 a second), the same picture twice.
    page.click("#tab-webcam")
    page.click("#cam-start")
    page.wait_for_function("() => window.stylecast.framesDrawn >= 3", timeout=60_000)
    # the test's own count of camera frames, independent of the page's
    page.evaluate(
        """() => { const v = document.querySelector('#video'); window.testFrames = 0;
        const tick = () => { window.testFrames += 1; v.requestVideoFrameCallback(tick); }; v.requestVideoFrameCallback(tick); }"""
    )
    sent0 = page.evaluate("window.stylecast.framesSent")
    page.wait_for_timeout(3000)
    camera, sent = page.evaluate("[window.testFrames, window.stylecast.framesSent]")
    sent -= sent0
    assert camera >= 30, camera  # the fake camera runs (~30 FPS)
    assert sent <= camera + 2, (sent, camera)  # +2: frames already in flight when counting began
    assert sent >= camera // 3, (sent, camera)  # and the page keeps sending new ones
    page.click("#cam-stop")


def test_webcam_streams_stylized_frames_and_switches_without_reconnecting(page, web_server):
    connections = web_server.metric("stylecast_ws_connections_total")  # other tests' streams on this server
    page.click("#tab-webcam")
    page.click("#cam-start")
    page.wait_for_function("() => window.stylecast.framesDrawn >= 5", timeout=60_000)
    page.wait_for_function("() => parseFloat(document.querySelector('#fps').textContent) > 0", timeout=30_000)
    first = pixels(page, CANVAS_PNG)
    drawn = page.evaluate("window.stylecast.framesDrawn")
    page.wait_for_function(f"() => window.stylecast.framesDrawn >= {drawn + 8}", timeout=60_000)
    later = pixels(page, CANVAS_PNG)
    camera = pixels(page, CAMERA_PNG)
    assert first.std() > 5  # a picture, not a blank canvas
    assert np.abs(later - first).mean() > 0.05  # frames keep coming: the fake camera's pattern moves
    styled_vs_camera = np.abs(later - camera).mean()
    assert styled_vs_camera > 20, styled_vs_camera  # stylized, not the raw camera frame
    assert int(page.locator("#latency").inner_text()) > 0
    assert page.evaluate("window.stylecast.lastHeader.style") == "alpha"

    # style and strength change on the open socket
    page.select_option("#style", "beta")
    page.wait_for_function("() => window.stylecast.lastHeader.style === 'beta'", timeout=30_000)
    page.eval_on_selector("#strength", "el => { el.value = 0; el.dispatchEvent(new Event('input')); }")
    page.wait_for_function("() => window.stylecast.lastHeader.strength === 0", timeout=30_000)
    drawn = page.evaluate("window.stylecast.framesDrawn")
    page.wait_for_function(f"() => window.stylecast.framesDrawn >= {drawn + 2}", timeout=30_000)
    plain = np.abs(pixels(page, CANVAS_PNG) - pixels(page, CAMERA_PNG)).mean()
    assert plain < styled_vs_camera / 2, (plain, styled_vs_camera)  # strength 0: close to the camera frame
    assert page.evaluate("window.stylecast.connections") == 1  # no reconnects
    assert web_server.metric("stylecast_ws_connections_total") == connections + 1

    page.click("#cam-stop")
    page.wait_for_function("() => window.stylecast.ws === null")
    end_connections = None
    for _ in range(50):
        end_connections = web_server.metric("stylecast_ws_connections")
        if end_connections == 0:
            break
        page.wait_for_timeout(100)
    assert end_connections == 0
