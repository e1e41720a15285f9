"""`--ws-pipeline 2` (with `--concurrency 2`): a stream's next frame starts while the previous one
is still being stylized. Every frame is still answered exactly once, frames go back newest-last,
and a frame sent while another is running is stylized instead of waiting (and being replaced)."""

from __future__ import annotations

import json
import struct
import time

import pytest

from conftest import smooth_image
from server_fixtures import ServerProcess, encode, tiny_models  # noqa: F401 (fixture)
from stylecast.errors import UserError
from stylecast.inference.server_config import ServerConfig

websockets_sync = pytest.importorskip("websockets.sync.client")


def parse(msg):
    if isinstance(msg, str):
        return json.loads(msg)
    return json.loads(msg[4 : 4 + struct.unpack(">I", msg[:4])[0]])


def stream_answers(server: ServerProcess, frames: list[bytes], gap_s: float) -> list[tuple[int, str]]:
    """Send the frames `gap_s` apart; the answers in arrival order as (seq, frame | drop reason)."""
    out: list[tuple[int, str]] = []
    with websockets_sync.connect(server.ws_url + "?style=alpha", max_size=2**24) as ws:
        assert parse(ws.recv(timeout=10))["type"] == "hello"
        for frame in frames:
            ws.send(frame)
            time.sleep(gap_s)
        end = time.monotonic() + 60
        while len(out) < len(frames) and time.monotonic() < end:
            head = parse(ws.recv(timeout=30))
            if head["type"] in ("frame", "dropped"):
                out.append((head["seq"], "frame" if head["type"] == "frame" else head["reason"]))
    return out


@pytest.fixture(scope="module")
def servers(tiny_models, tmp_path_factory):
    procs = {
        depth: ServerProcess(
            tiny_models, tmp_path_factory.mktemp(f"pipe{depth}"), "--backend", "ort", "--concurrency", "2", "--threads", "1", "--ws-pipeline", str(depth)
        ).start()
        for depth in (1, 2)
    }
    yield procs
    for proc in procs.values():
        proc.stop()


def test_pipelined_stream_answers_every_frame_in_order(servers):
    frames = [encode(smooth_image(960, 1280, seed=40 + i), "JPEG", quality=85) for i in range(2)]
    # two frames, the second sent while the first runs: one stream, two at once
    answers = stream_answers(servers[2], frames, gap_s=0.01)
    assert sorted(s for s, _ in answers) == [1, 2]  # each answered exactly once
    drawn = [s for s, kind in answers if kind == "frame"]
    assert drawn == sorted(drawn) and 2 in drawn  # newest-last, the newest always drawn
    # ten frames back to back: every one answered once, the frames drawn in increasing order
    many = stream_answers(servers[2], frames * 5, gap_s=0.0)
    assert sorted(s for s, _ in many) == list(range(1, 11))
    drawn = [s for s, kind in many if kind == "frame"]
    assert drawn == sorted(drawn) and drawn[-1] == 10


def test_pipeline_runs_a_frame_that_would_otherwise_wait_and_be_replaced(servers):
    frames = [encode(smooth_image(960, 1280, seed=50 + i), "JPEG", quality=85) for i in range(3)]
    serial = dict(stream_answers(servers[1], frames, gap_s=0.02))
    piped = dict(stream_answers(servers[2], frames, gap_s=0.02))
    # one at a time: frame 2 waits behind 1 and frame 3 replaces it; two at once: 1 and 2 both run
    assert serial[2] == "stale" and piped[2] == "frame", (serial, piped)


def test_pipeline_depth_is_checked():
    with pytest.raises(UserError, match="ws_pipeline"):
        ServerConfig(ws_pipeline=0).validate()
