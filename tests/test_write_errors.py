"""Issue 15.4: a write that fails is one line naming the file and the OS's reason, exit 2, and
leaves nothing partial, in every command that writes.

Tests may run as root, where a read-only folder does not stop a write. Two failures that do:
a path through a regular file (ENOTDIR) and a file-size limit (`ulimit -f`, RLIMIT_FSIZE, with
SIGXFSZ ignored so the write fails with EFBIG "File too large" instead of killing the process).
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import fake_checkpoint, file_size_limit, smooth_image, stripes_image, textured_net
from stylecast.cli import main
from stylecast.images import save_image

TOO_LARGE = os.strerror(errno.EFBIG)  # "File too large"
LIMIT = 1024  # bytes: below every output these tests make, above the one-line messages


def noise_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Incompressible: its PNG is about 3 bytes a pixel."""
    return np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)


def one_error_line(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(n in lines[0] for n in needles), (lines[0], needles)


@pytest.fixture
def pictures(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    save_image(noise_image(32, 32, 1), folder / "photo.png")
    save_image(stripes_image(32, 32), folder / "painting.png")
    return folder


def _run_limited(args: list[str], limit: int, cwd) -> subprocess.CompletedProcess:
    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # inherited across exec
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-m", "stylecast.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, preexec_fn=limit_file_size, timeout=300)  # fmt: skip


def test_stylize_file_size_limit_is_one_line_and_removes_what_it_wrote(style_models, tmp_path):
    """The issue's case (`ulimit -f 300`), in a real process: the first output fits, the second
    does not; the first is removed again and the folder the run created too."""
    save_image(smooth_image(16, 16), tmp_path / "a.png")
    save_image(noise_image(192, 192), tmp_path / "b.png")
    out = tmp_path / "out"
    res = _run_limited(["stylize", "a.png", "b.png", "-s", str(style_models / "slim.onnx"), "-o", "out", "--backend", "ort"], 20_000, tmp_path)
    assert res.returncode == 2, res.stderr
    one_error_line(res.stderr, "b_slim.png", TOO_LARGE)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]


def test_stylize_output_folder_under_a_file(style_models, tmp_path, capsys):
    save_image(smooth_image(16, 16), tmp_path / "a.png")
    save_image(smooth_image(16, 16, 1), tmp_path / "b.png")
    (tmp_path / "plain").write_text("a regular file")
    rc = main(["stylize", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-s", str(style_models / "slim.onnx"),
               "-o", str(tmp_path / "plain" / "out"), "--backend", "ort"])  # fmt: skip
    assert rc == 2
    one_error_line(capsys.readouterr().err, str(tmp_path / "plain" / "out"), os.strerror(errno.ENOTDIR))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "plain"]


@pytest.mark.parametrize(
    "command",
    [
        ["optimize", "{photo}", "{painting}", "-o", "{out}/x.png", "--size", "32", "--iterations", "2", "-q", "--device", "cpu"],
        ["dream", "{photo}", "-o", "{out}/x.png", "--iterations", "0", "-q", "--device", "cpu"],
        ["invert", "{photo}", "-o", "{out}/x.png", "--layer", "relu1_1", "--size", "32", "--iterations", "1", "-q", "--device", "cpu"],
        ["visualize", "--layer", "relu1_1", "--channel", "0", "--size", "32", "--iterations", "1", "-o", "{out}/x.png", "-q", "--device", "cpu"],
    ],
    ids=["optimize", "dream", "invert", "visualize"],
)
def test_pixel_commands(command, pictures, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    args = [a.format(photo=pictures / "photo.png", painting=pictures / "painting.png", out=out) for a in command]
    with file_size_limit(LIMIT):
        rc = main(args)
    assert rc == 2
    one_error_line(capsys.readouterr().err, str(out / "x.png"), TOO_LARGE)
    assert list(out.iterdir()) == []


def test_optimize_removes_its_intermediates_and_report(pictures, tmp_path, capsys):
    """--save-every images fit under the limit, the report does not: nothing of the run stays."""
    out = tmp_path / "out"
    out.mkdir()
    save_image(smooth_image(24, 24), pictures / "small.png")
    # measured without the limit: progress images and x.png ~850 bytes each, r.json 2.2 kB
    args = ["optimize", str(pictures / "small.png"), str(pictures / "painting.png"), "-o", str(out / "x.png"), "--size", "16",
            "--iterations", "5", "--save-every", "1", "--report", str(out / "r.json"), "-q", "--device", "cpu"]  # fmt: skip
    with file_size_limit(1500):
        rc = main(args)
    assert rc == 2
    one_error_line(capsys.readouterr().err, str(out / "r.json"), TOO_LARGE)
    assert list(out.iterdir()) == []


def test_export(tmp_path, capsys):
    ckpt = fake_checkpoint(tmp_path / "tiny.ckpt", textured_net(0.25, 1))
    with file_size_limit(LIMIT):
        rc = main(["export", str(ckpt), "-o", str(tmp_path / "tiny.onnx"), "--no-check", "--exporter", "legacy"])
    assert rc == 2
    one_error_line(capsys.readouterr().err, str(tmp_path / "tiny.onnx"), TOO_LARGE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.ckpt"]


def test_compare(style_models, pictures, tmp_path, capsys):
    """Measured without the limit: the images ~3 kB each, report.json 2.8 kB, grid.png 20 kB.
    Everything but the grid is written, then removed again with the folder the run created."""
    out = tmp_path / "report"
    args = ["compare", str(pictures / "photo.png"), "--style", str(style_models / "slim.onnx"), "--style-image",
            str(pictures / "starry_night.jpg"), "-o", str(out), "--size", "32", "--iterations", "1,2", "--repeats", "1",
            "--no-progress", "--device", "cpu"]  # fmt: skip
    save_image(stripes_image(32, 32), pictures / "starry_night.jpg")  # the name the model records
    with file_size_limit(5000):
        rc = main(args)
    assert rc == 2
    one_error_line(capsys.readouterr().err, str(out / "grid.png"), TOO_LARGE)
    assert not out.exists()


def test_train(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        save_image(smooth_image(40, 48, seed=i), photos / f"p{i}.png")
    save_image(stripes_image(64, 64), tmp_path / "s.png")
    args = ["train", "--style", str(tmp_path / "s.png"), "--data", str(photos), "--out", str(tmp_path / "run"),
            "--data.image_size", "32", "--data.batch_size", "2", "--data.val_images", "1", "--data.num_workers", "0",
            "--model.style_size", "64", "--model.width", "0.25", "--model.residual_blocks", "1", "--steps", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]  # fmt: skip
    with file_size_limit(LIMIT):
        rc = main(args)
    assert rc == 2
    one_error_line(capsys.readouterr().err, str(tmp_path / "run"), TOO_LARGE)
