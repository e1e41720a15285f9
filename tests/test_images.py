"""Image decoding: every colour mode to RGB, EXIF orientation, clear errors, atomic writes."""

import io

import numpy as np
import pytest
from PIL import Image

from stylecast.color import match_histogram, preserve_luminance, rgb_to_yiq
from stylecast.errors import UserError
from stylecast.images import atomic_write_bytes, encode_image, load_image, open_image, resize_longer, save_image


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


def test_exif_orientation_applied():
    # 40 wide x 20 tall, left half red; EXIF orientation 6 = rotate 90° clockwise for display
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    out = open_image(_png(img, format="JPEG", exif=exif.tobytes(), quality=95))
    assert out.size == (20, 40)  # upright: now tall
    arr = np.asarray(out)
    assert arr[5, 10, 0] > 200 and arr[35, 10, 2] > 200  # red moved to the top


@pytest.mark.parametrize(
    "mode,expected",
    [
        ("L", (128, 128, 128)),
        ("CMYK", (255, 0, 0)),
        ("RGBA", (255, 128, 128)),  # half-transparent red on white
        ("P", (10, 200, 30)),
        ("I;16", (128, 128, 128)),
    ],
)
def test_modes_to_rgb(mode, expected):
    if mode == "L":
        img = Image.new("L", (4, 4), 128)
    elif mode == "CMYK":
        img = Image.new("CMYK", (4, 4), (0, 255, 255, 0))
    elif mode == "RGBA":
        img = Image.new("RGBA", (4, 4), (255, 0, 0, 127))
    elif mode == "P":
        img = Image.new("RGB", (4, 4), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    else:
        img = Image.fromarray(np.full((4, 4), 128 * 257, np.uint16))  # 16-bit grey
    data = _png(img, format="JPEG" if mode == "CMYK" else "PNG")
    out = np.asarray(open_image(data))
    assert out.dtype == np.uint8 and out.shape == (4, 4, 3)
    assert np.abs(out[1, 1].astype(int) - expected).max() <= (3 if mode == "CMYK" else 1)


def test_palette_with_transparency_composited_on_white():
    img = Image.new("P", (4, 4), 0)
    img.putpalette([0, 0, 0] * 256)
    img.info["transparency"] = 0
    out = np.asarray(open_image(_png(img, transparency=0)))
    assert (out == 255).all()


def test_animated_gif_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 255, 0)]]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    out = np.asarray(open_image(buf.getvalue()))
    assert out[0, 0, 0] > 200 and out[0, 0, 1] < 50


def test_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match="missing.jpg: no such file"):
        open_image(tmp_path / "missing.jpg")
    with pytest.raises(UserError, match="is a directory"):
        open_image(tmp_path)
    junk = tmp_path / "notes.jpg"
    junk.write_text("hello")
    with pytest.raises(UserError, match="notes.jpg: not a readable image"):
        open_image(junk)
    good = _png(Image.new("RGB", (64, 64), (1, 2, 3)), format="JPEG")
    trunc = tmp_path / "trunc.jpg"
    trunc.write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match="trunc.jpg: corrupt or truncated"):
        open_image(trunc)


def test_pixel_cap_checked_before_decoding():
    # A 5000x5000 single-colour PNG is a few KB but would decode to 75 MB.
    data = _png(Image.new("L", (5000, 5000), 0))
    assert len(data) < 100_000
    with pytest.raises(UserError, match="bomb.png: 5000x5000 is 25000000 pixels, over the limit of 1000000"):
        open_image(data, name="bomb.png", max_pixels=1_000_000)
    # past Pillow's own header check (~179 MPix) the error is still one clear line
    huge = _png(Image.new("1", (20000, 20000), 0))
    with pytest.raises(UserError, match="huge.png: image too large"):
        open_image(huge, name="huge.png", max_pixels=None)


def test_load_image_sizes():
    data = _png(Image.new("RGB", (300, 150), (255, 0, 0)))
    arr = load_image(data, 100)
    assert arr.shape == (50, 100, 3) and arr.dtype == np.float32
    assert arr.max() == pytest.approx(1.0) and arr[..., 1].max() == 0
    assert load_image(data, (20, 30)).shape == (20, 30, 3)
    assert resize_longer(Image.new("RGB", (10, 40)), 20).size == (5, 20)
    with pytest.raises(UserError):
        load_image(data, 0)


def test_save_is_atomic_and_round_trips(tmp_path):
    arr = np.random.default_rng(0).random((12, 16, 3)).astype(np.float32)
    path = tmp_path / "out.png"
    save_image(arr, path)
    back = load_image(path)
    assert np.abs(back - arr).max() <= 0.5 / 255 + 1e-6
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temp file left
    with pytest.raises(UserError, match="unsupported output format '.tif'"):
        save_image(arr, tmp_path / "out.tif")

    class Boom(Exception):
        pass

    class Exploding(bytes):
        pass

    # a failing write leaves the old file intact and no temp file behind
    def failing():
        raise Boom

    with pytest.raises(UserError, match="does not exist"):
        atomic_write_bytes(tmp_path / "nope" / "x.png", b"1")
    before = path.read_bytes()
    import stylecast.images as images

    orig = images.os.replace
    images.os.replace = lambda *a: failing()
    try:
        with pytest.raises(Boom):
            save_image(arr * 0, path)
    finally:
        images.os.replace = orig
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_encode_formats():
    arr = np.zeros((8, 8, 3), np.float32)
    assert encode_image(arr, "PNG")[:8] == b"\x89PNG\r\n\x1a\n"
    assert encode_image(arr, "JPEG")[:3] == b"\xff\xd8\xff"
    assert encode_image(arr, "WEBP")[8:12] == b"WEBP"


def test_preserve_luminance_keeps_content_chroma():
    rng = np.random.default_rng(1)
    content = rng.uniform(0.4, 0.6, (16, 16, 3))
    stylized = rng.uniform(0.4, 0.6, (16, 16, 3))
    out = preserve_luminance(stylized, content)
    yiq_out, yiq_c, yiq_s = rgb_to_yiq(out), rgb_to_yiq(content), rgb_to_yiq(stylized)
    # mid-range values: nothing clipped, so chroma is the content's and luminance the stylized one's
    assert np.abs(yiq_out[..., 1:] - yiq_c[..., 1:]).max() < 1e-5
    assert np.abs(yiq_out[..., 0] - yiq_s[..., 0]).max() < 1e-5


def test_match_histogram():
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 0.5, (20, 20, 3)).astype(np.float32)
    ref = rng.uniform(0.5, 1.0, (30, 10, 3)).astype(np.float32)
    out = match_histogram(src, ref)
    for c in range(3):
        # same order statistics as the reference (within interpolation), same ranking as the source
        assert np.quantile(out[..., c], [0.1, 0.5, 0.9]) == pytest.approx(np.quantile(ref[..., c], [0.1, 0.5, 0.9]), abs=0.01)
    assert (np.argsort(out[..., 0].ravel()) == np.argsort(src[..., 0].ravel())).mean() > 0.99
