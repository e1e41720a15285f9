"""The .y4m writer for Chromium's fake camera: header, frame layout, full-range BT.601 values."""

from __future__ import annotations

import numpy as np
import pytest

from stylecast.y4m import to_i420, write_y4m


def test_planes_hold_the_jpeg_matrix_values():
    frame = np.zeros((2, 4, 3), np.uint8)
    frame[:, :2] = [255, 255, 255]  # white | red
    frame[:, 2:] = [255, 0, 0]
    data = to_i420(frame)
    assert len(data) == 2 * 4 + 2 * (1 * 2)
    y, cb, cr = np.frombuffer(data[:8], np.uint8).reshape(2, 4), data[8:10], data[10:12]
    assert y.tolist() == [[255, 255, 76, 76]] * 2  # 0.299 * 255 = 76.2
    assert list(cb) == [128, 85] and list(cr) == [128, 255]  # red: Cb 128 - 0.1687 * 255, Cr 128 + 127.5 (clipped)


def test_clip_file_layout(tmp_path):
    frames = [np.full((4, 6, 3), v, np.float32) for v in (0.0, 0.5, 1.0)]
    assert write_y4m(tmp_path / "c.y4m", frames, fps=15) == 3
    raw = (tmp_path / "c.y4m").read_bytes()
    header, rest = raw.split(b"\n", 1)
    assert header == b"YUV4MPEG2 W6 H4 F15:1 Ip A1:1 C420jpeg"
    size = 6 * 4 * 3 // 2
    chunks = rest.split(b"FRAME\n")[1:]
    assert [len(c) for c in chunks] == [size] * 3 and [c[0] for c in chunks] == [0, 128, 255]
    with pytest.raises(ValueError, match="even"):
        to_i420(np.zeros((3, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="frame 1 is"):
        write_y4m(tmp_path / "d.y4m", [np.zeros((4, 6, 3)), np.zeros((4, 8, 3))])
