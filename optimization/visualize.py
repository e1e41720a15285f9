"""Activation maximization (Erhan et al. 2009; Yosinski et al. 2015; Olah et al. 2017, "Feature
Visualization", and their lucid library): the image that most excites one channel of a VGG19 layer.

Ascending a channel's mean activation straight on the pixels gives high-frequency noise that the
network loves and people cannot read. Two things from lucid make the result an image:

- parameterization: the image is sigmoid(C · irfft2(s · spectrum)), optimized in `spectrum`; s
  scales each frequency f by 1/max(f, 1/size) (a natural image's 1/f amplitude), so every frequency
  moves at a rate matched to natural images, and C is the square root of ImageNet's colour
  correlation, so the optimizer works in decorrelated colour (lucid's fft_image and
  _linear_decorelate_color, with their constants);
- transformation robustness: every step sees the image padded, jittered, scaled and rotated at
  random (lucid's standard_transforms), so only patterns that survive small transformations grow.

`parameterization="pixel"` optimizes sigmoid(C · pixels) instead, for comparison. The steps run in
the shared pixel loop (`stylecast.optimization.loop.optimize_pixels`, Adam): the loop's tensor is then the
spectrum (or the pixel logits), and `image_from_parameters` turns it into the image.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from stylecast.losses.images import to_array
from stylecast.losses.vgg import VGG, load_vgg
from stylecast.optimization.common import (
    ArgumentParser,
    RunOptions,
    add_run_arguments,
    check_image_output,
    check_layer,
    check_output,
    device,
    positive,
    run_options,
)
from stylecast.optimization.gatys import min_side
from stylecast.optimization.loop import Callback, optimize_pixels
from stylecast.errors import UserError
from stylecast.images import save_image

log = logging.getLogger(__name__)

PARAMETERIZATIONS = ("fourier", "pixel")
# lucid.optvis.param.color: square root of ImageNet's RGB colour correlation (from its SVD).
COLOR_CORRELATION_SVD_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOR_MATRIX = COLOR_CORRELATION_SVD_SQRT / COLOR_CORRELATION_SVD_SQRT.norm(dim=0).max()


@dataclass
class VisualizeOptions(RunOptions):
    """Every knob of `stylecast visualize`; optimizer settings and transforms are lucid's."""

    layer: str = "relu4_1"
    channel: int = 0
    size: int = 128  # the image is size x size
    iterations: int = 256
    lr: float = 0.05  # Adam
    parameterization: str = "fourier"  # fourier | pixel
    decorrelate: bool = True  # optimize in decorrelated colour
    decay_power: float = 1.0  # spectrum scale 1/f^decay_power
    transforms: bool = True  # pad/jitter/scale/rotate at random every step


@dataclass
class VisualizeResult:
    image: np.ndarray  # size x size x 3 float32 RGB [0, 1]
    activation: float  # the channel's mean activation on `image` (no transforms)
    activation_start: float  # ... on the starting image (the parameterization's random init)
    history: list[dict] = field(default_factory=list)
    iterations: int = 0
    interrupted: bool = False
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------
# parameterization


def spectrum_scale(h: int, w: int, decay_power: float = 1.0) -> torch.Tensor:
    """(H, W//2+1) per-frequency scale 1/max(f, 1/max(H, W))^decay · sqrt(H·W) (lucid fft_image):
    1/f like natural images' amplitude; the sqrt(H·W) keeps irfft2 roughly unitary so pixel-like
    learning rates work."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    freqs = torch.sqrt(fx * fx + fy * fy)
    return 1.0 / freqs.clamp_min(1.0 / max(h, w)) ** decay_power * math.sqrt(h * w)


def init_parameters(h: int, w: int, parameterization: str, seed: int, sd: float = 0.01) -> torch.Tensor:
    """Small Gaussian start (lucid: sd 0.01): spectrum (2, 3, H, W//2+1) as real/imaginary
    parts, or pixel logits (1, 3, H, W)."""
    g = torch.Generator().manual_seed(int(seed))
    shape = (2, 3, h, w // 2 + 1) if parameterization == "fourier" else (1, 3, h, w)
    return sd * torch.randn(shape, generator=g)


def image_from_parameters(p: torch.Tensor, h: int, w: int, o: VisualizeOptions) -> torch.Tensor:
    """parameters -> (1, 3, H, W) image in (0, 1)."""
    if o.parameterization == "fourier":
        spectrum = torch.complex(p[0].float(), p[1].float()) * spectrum_scale(h, w, o.decay_power).to(p.device)
        t = torch.fft.irfft2(spectrum, s=(h, w))[None] / 4.0  # lucid's /4: keeps the sigmoid's input small at the start
    else:
        t = p.float()
    if o.decorrelate:
        t = torch.einsum("ij,bjhw->bihw", COLOR_MATRIX.to(t.device), t)
    return torch.sigmoid(t)


# ---------------------------------------------------------------------------------------------
# transformation robustness (lucid.optvis.transform.standard_transforms)


def jitter(x: torch.Tensor, d: int) -> torch.Tensor:
    """Random crop losing d pixels per axis (a translation by 0..d-1)."""
    if d <= 0:
        return x
    h, w = x.shape[-2:]
    oy, ox = torch.randint(0, d, (2,)).tolist()
    return x[..., oy : oy + h - d, ox : ox + w - d]


def random_scale(x: torch.Tensor, scales: Sequence[float]) -> torch.Tensor:
    s = scales[int(torch.randint(0, len(scales), ()))]
    if s == 1.0:
        return x
    h, w = x.shape[-2:]
    return F.interpolate(x, size=(max(1, round(h * s)), max(1, round(w * s))), mode="bilinear", align_corners=False)


def random_rotate(x: torch.Tensor, degrees: Sequence[float]) -> torch.Tensor:
    a = math.radians(degrees[int(torch.randint(0, len(degrees), ()))])
    if a == 0.0:
        return x
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta[None], list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


SCALES = [1 + (i - 5) / 50.0 for i in range(11)]  # 0.9 .. 1.1
ANGLES = list(range(-10, 11)) + 5 * [0]


def standard_transforms(x: torch.Tensor) -> torch.Tensor:
    """pad 12 (grey), jitter 8, scale 0.9..1.1, rotate -10..10°, jitter 4."""
    x = F.pad(x, (12, 12, 12, 12), value=0.5)
    x = jitter(x, 8)
    x = random_scale(x, SCALES)
    x = random_rotate(x, ANGLES)
    return jitter(x, 4)


# ---------------------------------------------------------------------------------------------
# the job


def channel_activation(vgg: VGG, image: torch.Tensor, layer: str, channel: int) -> torch.Tensor:
    """Mean activation of one channel (lucid's objectives.channel)."""
    return vgg(image, [layer])[layer][:, channel].float().mean()


def validate(o: VisualizeOptions) -> None:
    positive(o.iterations, "--iterations", allow_zero=True, integer=True)
    positive(o.size, "--size", integer=True)
    positive(o.lr, "--lr")
    if o.channel is None or int(o.channel) != o.channel or o.channel < 0:
        raise UserError(f"--channel must be a channel number >= 0, got {o.channel}")
    if o.parameterization not in PARAMETERIZATIONS:
        raise UserError(f"--parameterization must be fourier or pixel, got {o.parameterization!r}")
    if not (np.isfinite(o.decay_power) and o.decay_power >= 0):
        raise UserError(f"--decay-power must be a number >= 0, got {o.decay_power}")
    device(o.device)


def visualize(
    options: VisualizeOptions | None = None,
    *,
    output: str | None = None,
    vgg: VGG | None = None,
    callbacks: Sequence[Callback] = (),
    **overrides,
) -> VisualizeResult:
    """The image that maximizes `layer`'s channel `channel`, from random parameters. `output` is
    written atomically (also after Ctrl-C: the best so far). Bad input raises UserError first.
    Callbacks see the loop's tensor, i.e. the parameters (`image_from_parameters` maps them)."""
    o = dataclasses.replace(options or VisualizeOptions(), **overrides)
    validate(o)
    if output is not None:
        check_output(output)
    if vgg is not None and vgg.pooling != o.pooling:
        raise UserError(f"the given VGG uses {vgg.pooling} pooling but pooling={o.pooling!r} was asked for")
    vgg = vgg if vgg is not None else load_vgg(o.vgg_weights, pooling=o.pooling)
    check_layer(vgg, o.layer, o.channel)
    size = int(o.size)
    need = min_side([o.layer])
    if size < need:
        raise UserError(f"--size {size} is too small: {o.layer} needs at least {need} px")
    layer, channel = o.layer, int(o.channel)

    dev = device(o.device)
    vgg = vgg.to(dev)

    def objective(p: torch.Tensor) -> dict[str, torch.Tensor]:
        x = image_from_parameters(p, size, size, o)
        if o.transforms:
            x = standard_transforms(x)
        a = channel_activation(vgg, x, layer, channel)
        return {"total": -a, "activation": a.detach()}

    start = init_parameters(size, size, o.parameterization, o.seed).to(dev)
    with torch.no_grad():
        activation_start = float(channel_activation(vgg, image_from_parameters(start, size, size, o), layer, channel))
    result = optimize_pixels(
        objective,
        start,
        iterations=int(o.iterations),
        optimizer="adam",
        lr=float(o.lr),
        bf16=o.bf16,
        seed=int(o.seed),
        callbacks=callbacks,
        progress=o.progress,
        desc=f"visualize {layer}:{channel}",
    )
    with torch.no_grad():
        image = image_from_parameters(result.image, size, size, o)
        activation = float(channel_activation(vgg, image, layer, channel))
    out = VisualizeResult(
        image=to_array(image),
        activation=activation,
        activation_start=activation_start,
        history=result.history,
        iterations=result.iterations,
        interrupted=result.interrupted,
        seconds=result.seconds,
    )
    if output is not None:
        save_image(out.image, output)
    return out


def build_parser() -> argparse.ArgumentParser:
    d = VisualizeOptions()
    p = ArgumentParser(
        prog="stylecast visualize",
        description="Activation maximization: the image that most excites one channel of a VGG19 layer, from "
        "noise, with a decorrelated Fourier parameterization and random transforms (lucid).",
        epilog="examples:\n  stylecast visualize --layer relu4_1 --channel 42 -o ch42.png\n"
        "  stylecast visualize --layer relu5_1 --channel 7 --size 224 --iterations 512 --bf16 -o ch7.png\n"
        "  stylecast visualize --layer relu4_1 --channel 42 --parameterization pixel -o noise.png   # for comparison\n\n"
        "Ctrl-C stops early and still writes the best image so far (exit code 130).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .webp)")
    p.add_argument("--layer", default=d.layer, help=f"VGG19 layer (default {d.layer})")
    p.add_argument("--channel", type=int, required=True, metavar="K", help="channel of the layer to maximize")
    p.add_argument("--size", type=int, default=d.size, help=f"side of the square image in px (default {d.size})")
    p.add_argument("--iterations", type=int, default=d.iterations, help=f"Adam steps (default {d.iterations})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"Adam step size (default {d.lr})")
    p.add_argument(
        "--parameterization",
        choices=PARAMETERIZATIONS,
        default=d.parameterization,
        help="fourier (1/f-scaled spectrum, default) or pixel (for comparison; with --no-transforms the naive, high-frequency result)",
    )
    p.add_argument("--no-decorrelate", action="store_true", help="optimize plain RGB instead of decorrelated colour")
    p.add_argument("--decay-power", type=float, default=d.decay_power, help=f"spectrum scale 1/f^P (default {d.decay_power:g})")
    p.add_argument("--no-transforms", action="store_true", help="no random pad/jitter/scale/rotate")
    add_run_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_image_output(args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    options = VisualizeOptions(
        layer=args.layer,
        channel=args.channel,
        size=args.size,
        iterations=args.iterations,
        lr=args.lr,
        parameterization=args.parameterization,
        decorrelate=not args.no_decorrelate,
        decay_power=args.decay_power,
        transforms=not args.no_transforms,
        **run_options(args),
    )
    try:
        result = visualize(options, output=args.output)
    except (torch.OutOfMemoryError, MemoryError):
        raise UserError(f"out of memory at --size {args.size}; try a smaller --size") from None
    if result.interrupted:
        print(f"stylecast visualize: interrupted after {result.iterations} steps; wrote the best image so far to {args.output}", file=sys.stderr)
        return 130
    print(
        f"wrote {args.output}: {args.layer} channel {args.channel} mean activation {result.activation:.1f} "
        f"(random start: {result.activation_start:.1f}), {result.iterations} steps, {result.seconds:.1f} s"
    )
    return 0
