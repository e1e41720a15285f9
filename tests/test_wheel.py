"""The wheel as a user gets it: built from the checkout's files, installed with only the [serve]
extra into a fresh virtual environment (no torch), run from a folder that is not the checkout.

The install needs the dependencies from pip's configured index or cache (onnxruntime, FastAPI,
...; ~15 s here with a local mirror). About a minute and a half in all on 2 cores, so it stays in
the default run: CI must build and try the wheel on every change.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest

from stylecast.images import load_image, save_image
from stylecast.inference.stylizer import Stylizer
from stylecast.inference.web_runtime import FILES as RUNTIME_FILES, MANIFEST as RUNTIME_MANIFEST, RUNTIME_DIR, load_runtime

from conftest import shipped_styles, smooth_image

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_FILES = sorted(p.stem for p in (ROOT / "checkpoints").glob("*.onnx"))
SHIPPED = shipped_styles()  # as the registry names them: painters/starry_night for a multi-style model's styles
TORCH_COMMANDS = ("optimize", "train", "export")
RUNTIME = load_runtime(RUNTIME_DIR)  # the checkout's onnxruntime-web, built by `make web-runtime`


def checkout_files() -> list[Path]:
    """What a fresh clone holds plus new files not yet committed: never build/, *.egg-info, .venv
    or data/, whose stale contents would otherwise slip into the wheel."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    files = [Path(p) for p in listed.split("\0") if p and (ROOT / p).is_file()]
    # the one build output the wheel carries (ignored by git): what CI's `make` built from the lockfile
    if RUNTIME.available:
        files += [(RUNTIME_DIR / name).relative_to(ROOT) for name in (*RUNTIME_FILES, RUNTIME_MANIFEST)]
    return files


def run(args: list[str], cwd: Path, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "STYLECAST_MODELS", "VIRTUAL_ENV")}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    if shutil.which("git") is None:
        pytest.fail("the wheel test copies the checkout with git ls-files; git is not installed")
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    for rel in checkout_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    start = time.perf_counter()
    # the test environment's setuptools (pyproject's build requirement) builds it without a
    # download where it has one (Python 3.12+ venvs come without)
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(base / "dist"), str(src)], base)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((base / "dist").glob("stylecast-*.whl"))
    build_s = time.perf_counter() - start
    venv.EnvBuilder(with_pip=True, clear=True).create(base / "venv")
    bin_dir = base / "venv" / "bin"
    done = run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"), f"{wheel}[serve]"], base, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    work = base / "elsewhere"  # not the checkout: no ./checkpoints, no source on sys.path
    work.mkdir()
    save_image(smooth_image(48, 64, seed=3), work / "photo.png")
    print(f"wheel {wheel.stat().st_size / 1e6:.1f} MB built in {build_s:.1f} s, installed in {time.perf_counter() - start - build_s:.0f} s")
    return {"wheel": wheel, "bin": bin_dir, "work": work}


def stylecast(installed: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return run([str(installed["bin"] / "stylecast"), *args], installed["work"], timeout=timeout)


def test_one_top_level_package_with_the_shipped_styles(installed):
    shown = run([str(installed["bin"] / "python"), "-m", "pip", "show", "-f", "stylecast"], installed["work"])
    assert shown.returncode == 0, shown.stderr
    files = shown.stdout.split("\nFiles:\n", 1)[1].split()
    tops = {f.split("/")[0] for f in files if not f.startswith("../") and ".dist-info/" not in f}
    assert tops == {"stylecast"}
    for name in SHIPPED_FILES:
        assert f"stylecast/checkpoints/{name}.onnx" in files and f"stylecast/checkpoints/{name}.md" in files
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    assert not any(n.startswith(("benchmarks/", "scripts/", "tests/")) for n in names)
    installed_pkgs = run([str(installed["bin"] / "python"), "-m", "pip", "list", "--format", "json"], installed["work"])
    assert not {"torch", "pytorch-lightning", "lightning"} & {p["name"].lower() for p in json.loads(installed_pkgs.stdout)}


@pytest.mark.skipif(not RUNTIME.available, reason=f"no onnxruntime-web in the checkout to package: {RUNTIME.reason}")
def test_the_wheel_carries_the_web_runtime(installed):
    shown = run([str(installed["bin"] / "python"), "-m", "pip", "show", "-f", "stylecast"], installed["work"])
    files = set(shown.stdout.split("\nFiles:\n", 1)[1].split())
    assert {f"stylecast/inference/ort_web/{n}" for n in (*RUNTIME_FILES, RUNTIME_MANIFEST)} <= files
    probe = "import json; from stylecast.inference.web_runtime import load_runtime as l; r = l(); print(json.dumps([r.reason, r.version, dict(r.files)]))"
    done = run([str(installed["bin"] / "python"), "-c", probe], installed["work"])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [None, RUNTIME.version, {k: dict(v) for k, v in RUNTIME.files.items()}]


def test_styles_lists_the_shipped_styles_from_any_folder(installed):
    res = stylecast(installed, "styles")
    assert res.returncode == 0, res.stderr
    assert [line.split()[0] for line in res.stdout.splitlines()] == SHIPPED


@pytest.mark.parametrize("style", SHIPPED)
def test_stylize_with_every_shipped_style(installed, style):
    folder = "out_" + style.replace("/", "_")  # painters/starry_night is written as photo_starry_night.png
    res = stylecast(installed, "stylize", "photo.png", "-s", style, "-o", f"{folder}/")
    assert res.returncode == 0, res.stderr
    out = load_image(installed["work"] / folder / f"photo_{style.rpartition('/')[2]}.png")
    photo = load_image(installed["work"] / "photo.png")
    assert out.shape == (48, 64, 3)
    assert out.std() > 0.05 and np.abs(out - photo).mean() > 0.05  # a picture, and not the photo
    # the packaged model is the checkout's: the same pixels as the checkout's stylizer (8-bit rounding)
    model, _, name = style.rpartition("/")
    ref = Stylizer(ROOT / "checkpoints" / f"{model or name}.onnx", backend="ort", device="cpu")
    ref = ref.with_style({name: 1.0})(photo) if model else ref(photo)
    assert np.abs(out - ref).max() <= 1.5 / 255


def test_torch_commands_say_in_one_line_how_to_get_torch(installed):
    for command in TORCH_COMMANDS:
        res = stylecast(installed, command, "--help")
        assert res.returncode == 2, (command, res.stdout, res.stderr)
        assert res.stdout == "" and "Traceback" not in res.stderr
        assert res.stderr == f"stylecast {command}: error: needs torch, which is not installed; install it with: pip install 'stylecast[train]'\n"


def test_a_video_without_the_video_extra_says_which_extra_in_one_line(installed):
    (installed["work"] / "clip.mp4").write_bytes(b"\0" * 64)  # refused before it is read: [serve] has no PyAV
    res = stylecast(installed, "stylize", "clip.mp4", "-s", "starry_night_slim", "-o", "video/")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr == (
        "stylecast stylize: error: clip.mp4: video files need PyAV, which is not installed; install it with: pip install 'stylecast[video]'\n"
    )
    assert not (installed["work"] / "video").exists()


def test_demo_job_stylizes_with_every_style(installed):
    res = stylecast(installed, "demo", "--no-serve", "-o", "demo/demo.png")
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (installed["work"] / "demo").iterdir()) == sorted(f"demo_{s.replace('/', '_')}.png" for s in SHIPPED)


def test_serve_serves_the_shipped_styles(installed):
    proc = subprocess.Popen(
        [str(installed["bin"] / "stylecast"), "serve", "--port", "0", "--no-access-log"],
        cwd=installed["work"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "STYLECAST_MODELS")},
    )
    try:
        line = proc.stdout.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert url, (line, proc.stderr.read() if proc.poll() is not None else "")
        base = url[1]
        deadline = time.monotonic() + 240  # loads and warms up every style at three sizes
        while True:
            try:
                with urllib.request.urlopen(base + "readyz", timeout=10) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "server never became ready"
            time.sleep(1)
        with urllib.request.urlopen(base + "v1/styles", timeout=30) as r:
            listing = json.load(r)
        assert [s["name"] for s in listing["styles"]] == SHIPPED
        assert listing["browser_runtime"]["available"] is RUNTIME.available  # no network at run time: from the wheel
        if RUNTIME.available:
            with urllib.request.urlopen(base + listing["browser_runtime"]["base"] + "ort.wasm.min.mjs", timeout=30) as r:
                assert r.read() == (RUNTIME_DIR / "ort.wasm.min.mjs").read_bytes()
        slim = next(s for s in listing["styles"] if s["name"] == "starry_night_slim")
        with urllib.request.urlopen(base + slim["browser"]["model_url"], timeout=30) as r:
            assert r.read() == (ROOT / "checkpoints" / "starry_night_slim.onnx").read_bytes()
        body = (installed["work"] / "photo.png").read_bytes()
        req = urllib.request.Request(base + "v1/stylize?style=starry_night&format=png", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.status == 200
            out = load_image(r.read())
        assert out.shape == (48, 64, 3)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0
