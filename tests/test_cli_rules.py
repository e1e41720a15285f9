"""Issue 14: one overwrite rule and the same flags in every command that writes.

- An existing output is refused (one line, exit 2, nothing written) unless --force (alias
  --overwrite); an input is never overwritten. Files an earlier run left beside the outputs
  (progress images, a report folder's images) count as outputs and are removed when forced.
- -q/--quiet in every command (compare keeps --no-progress as an alias).
- --device auto|cpu|cuda|cuda:N, parsed by one function: the same refusal text everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import smooth_image, stripes_image
from stylecast.cli import main
from stylecast.images import save_image


@pytest.fixture
def pictures(tmp_path):
    save_image(smooth_image(24, 24), tmp_path / "photo.png")
    save_image(stripes_image(24, 24), tmp_path / "painting.png")
    return tmp_path


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_optimize_refuses_to_overwrite_and_force_clears_earlier_progress_images(pictures, capsys):
    out = pictures / "out.png"
    base = ["optimize", str(pictures / "photo.png"), str(pictures / "painting.png"), "-o", str(out), "--size", "16",
            "--iterations", "2", "-q", "--device", "cpu"]  # fmt: skip
    assert main([*base, "--save-every", "1"]) == 0
    assert _names(pictures) == ["out.iter00001.png", "out.iter00002.png", "out.png", "painting.png", "photo.png"]
    before = out.read_bytes()
    capsys.readouterr()
    assert main(base) == 2  # used to overwrite silently
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out.png: already exists (use --force to overwrite)" in err
    assert out.read_bytes() == before
    # forced, with no progress images this time: the earlier run's are not left beside the new output
    assert main([*base, "--force"]) == 0
    assert _names(pictures) == ["out.png", "painting.png", "photo.png"]
    # an input is never overwritten, forced or not
    assert main([*base[:4], str(pictures / "photo.png"), *base[5:], "--force"]) == 2
    assert "photo.png: is an input file; refusing to overwrite it" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["dream", "invert"])
def test_pixel_commands_refuse_to_overwrite(command, pictures, capsys):
    out = pictures / "out.png"
    out.write_bytes(b"earlier result")
    args = [command, str(pictures / "photo.png"), "-o", str(out), "--iterations", "0" if command == "dream" else "1",
            "-q", "--device", "cpu", *(["--layer", "relu1_1", "--size", "16"] if command == "invert" else [])]  # fmt: skip
    assert main(args) == 2
    assert "out.png: already exists (use --force to overwrite)" in capsys.readouterr().err
    assert out.read_bytes() == b"earlier result"
    assert main([*args, "--overwrite"]) == 0  # --force's alias
    assert out.read_bytes() != b"earlier result"
    assert main([command, str(pictures / "photo.png"), "-o", str(pictures / "photo.png"), *args[4:], "--force"]) == 2
    assert "is an input file" in capsys.readouterr().err


def _compare_args(models, pictures, out, *extra):
    return ["compare", str(pictures / "photo.png"), "--style", str(models / "slim.onnx"), "--style-image",
            str(pictures / "starry_night.jpg"), "-o", str(out), "--size", "16", "--iterations", "1", "--repeats", "1",
            "--device", "cpu", *extra]  # fmt: skip


def test_compare_report_folder_rule(style_models, pictures, capsys):
    save_image(stripes_image(24, 24), pictures / "starry_night.jpg")  # the name the model records
    out = pictures / "report"
    assert main(_compare_args(style_models, pictures, out, "-q")) == 0
    first = _names(out)
    assert first == ["grid.png", "loss_vs_time.png", "photo.fast.png", "photo.slow0001.png", "report.json", "report.md"]
    (out / "other.fast.png").write_bytes(b"an earlier run's image of another photo")
    (out / "notes.txt").write_text("the user's own file")
    capsys.readouterr()
    assert main(_compare_args(style_models, pictures, out, "--no-progress")) == 2  # used to overwrite the report
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "report: folder is not empty (use --force" in err
    assert main(_compare_args(style_models, pictures, out, "--quiet", "--force")) == 0
    assert _names(out) == sorted([*first, "notes.txt"])  # the earlier run's other.fast.png is gone


def test_compare_style_mismatch_has_its_own_flag(style_models, pictures, capsys):
    save_image(stripes_image(24, 24), pictures / "starry_night.jpg")
    save_image(stripes_image(24, 24), pictures / "other.jpg")
    args = _compare_args(style_models, pictures, pictures / "r", "-q")
    args[args.index("--style-image") + 1] = str(pictures / "other.jpg")
    assert main([*args, "--force"]) == 2  # --force no longer means "accept another painting"
    err = capsys.readouterr().err
    assert "trained on 'starry_night.jpg', not 'other.jpg' (pass --allow-style-mismatch" in err
    assert main([*args, "--allow-style-mismatch"]) == 0


def test_stylize_quiet_prints_nothing(style_models, pictures, capsys):
    out = pictures / "out"
    save_image(smooth_image(20, 20, 1), pictures / "photo2.png")
    args = ["stylize", str(pictures / "photo.png"), str(pictures / "photo2.png"), "-s", str(style_models / "slim.onnx"),
            "-o", str(out), "--backend", "ort"]  # fmt: skip
    assert main([*args, "-q"]) == 0
    assert capsys.readouterr() == ("", "")
    assert _names(out) == ["photo2_slim.png", "photo_slim.png"]
    assert main([*args, "--quiet", "--force"]) == 0
    assert capsys.readouterr() == ("", "")


def test_export_quiet(tmp_path, capsys):
    from conftest import fake_checkpoint, textured_net

    ckpt = fake_checkpoint(tmp_path / "t.ckpt", textured_net(0.25, 1))
    assert main(["export", str(ckpt), "-o", str(tmp_path / "t.onnx"), "--exporter", "legacy", "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["export", str(ckpt), "-o", str(ckpt.with_suffix(".ckpt")), "--force"]) == 2
    assert "is an input file" in capsys.readouterr().err


COMMANDS_WITH_DEVICE = {
    "stylize": ["stylize", "{photo}", "-s", "{model}", "-o", "{tmp}/o.png"],
    "optimize": ["optimize", "{photo}", "{painting}", "-o", "{tmp}/o.png", "--size", "16", "--iterations", "1", "-q"],
    "dream": ["dream", "{photo}", "-o", "{tmp}/o.png", "--iterations", "0", "-q"],
    "invert": ["invert", "{photo}", "-o", "{tmp}/o.png", "--iterations", "1", "--size", "16", "-q"],
    "visualize": ["visualize", "--layer", "relu1_1", "--channel", "0", "--size", "16", "--iterations", "1", "-o", "{tmp}/o.png", "-q"],
    "compare": ["compare", "{photo}", "--style", "{model}", "--style-image", "{painting}", "-o", "{tmp}/r", "--size", "16", "-q"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS_WITH_DEVICE))
def test_device_is_parsed_the_same_everywhere(command, style_models, pictures, capsys):
    args = [a.format(photo=pictures / "photo.png", painting=pictures / "painting.png", model=style_models / "slim.onnx", tmp=pictures)
            for a in COMMANDS_WITH_DEVICE[command]]  # fmt: skip
    assert main([*args, "--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --device: must be auto, cpu, cuda or cuda:N, got 'gpu'" in err
    if torch.cuda.is_available():
        return
    # cuda:N is accepted by every parser; this machine then says it has no such device
    assert main([*args, "--device", "cuda:1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cuda:1" in err and ("CUDA" in err or "cuda" in err)
    assert _names(pictures) == ["painting.png", "photo.png"]


def test_serve_device_parser():
    from stylecast.inference.serve_cli import build_parser

    assert build_parser().parse_args(["--device", "cuda:1"]).device == "cuda:1"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--device", "gpu"])


def test_parse_device():
    from stylecast.errors import UserError
    from stylecast.flags import parse_device

    assert [parse_device(d) for d in ("auto", "cpu", "cuda", "cuda:0", "CUDA:3")] == [("auto", None), ("cpu", None), ("cuda", None), ("cuda", 0), ("cuda", 3)]
    for bad in ("gpu", "cpu:1", "cuda:", "cuda:x", "mps", ""):
        with pytest.raises(UserError, match="--device must be"):
            parse_device(bad)


def test_longer_side_arithmetic_is_shared():
    from stylecast.images import longer_side_shape, resize_longer
    from stylecast.optimization.common import read_image

    from PIL import Image

    for h, w, size in [(480, 640, 256), (640, 480, 256), (1, 1000, 10), (333, 517, 100)]:
        expect = longer_side_shape(h, w, size)
        assert read_image(np.zeros((h, w, 3), np.float32), size, "x").shape[:2] == expect
        assert resize_longer(Image.new("RGB", (w, h)), size).size[::-1] == expect
    assert longer_side_shape(1, 1000, 10) == (1, 10)  # never below 1 px
