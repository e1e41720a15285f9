"""Feature inversion (Mahendran & Vedaldi 2015, "Understanding Deep Image Representations by
Inverting Them"): find an image whose VGG19 features at one layer match a photo's, starting from
noise, with natural-image priors. What survives shows what the layer keeps: relu1_1 gives the photo
back almost exactly; deeper layers keep the layout and the textures but lose exact colour and detail.

Objective (their eq. 1 with the normalizations of their section 3):

    ‖Φ(x) − Φ0‖² / ‖Φ0‖²  +  λ_α · mean|2(x − ½)|^α  +  λ_TV · TV_β(x)

the feature term is `content_loss` (a mean squared error) divided by the target's mean square, so it
reads the same at every layer (0: exact match; 1: as far off as all-zero features); `alpha_norm` (α = 6) keeps pixels within [0, 1] without
box constraints; `total_variation` with β = 2 suppresses the high-frequency patterns deep layers
cannot see (β = 1 leaves spikes, per the paper). The iterations run in the shared pixel loop
(`stylecast.optimization.loop.optimize_pixels`), L-BFGS by default.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from stylecast.losses.functional import alpha_norm, content_loss, total_variation
from stylecast.losses.images import to_array, to_tensor
from stylecast.losses.vgg import VGG, load_vgg
from stylecast.optimization.common import (
    ArgumentParser,
    ImageInput,
    RunOptions,
    add_run_arguments,
    check_image_output,
    check_layer,
    check_output,
    device,
    positive,
    psnr,
    read_image,
    run_options,
)
from stylecast.optimization.gatys import min_side
from stylecast.optimization.loop import Callback, optimize_pixels
from stylecast.errors import UserError
from stylecast.images import save_image

log = logging.getLogger(__name__)


@dataclass
class InversionOptions(RunOptions):
    """Every knob of `stylecast invert`. Weights are for the normalized objective above."""

    layer: str = "relu3_1"  # reconstruct from this layer's features
    size: int | None = 256  # longer side of target and reconstruction; None keeps the input's size
    iterations: int = 200
    optimizer: str = "lbfgs"  # lbfgs | adam
    lr: float | None = None  # Adam step (default 0.02); L-BFGS uses 1
    tv_weight: float = 0.5  # λ_TV
    tv_exponent: float = 2.0  # β
    alpha_weight: float = 1e-3  # λ_α
    alpha: float = 6.0  # α


@dataclass
class InversionResult:
    image: np.ndarray  # HxWx3 float32 RGB [0, 1]
    target: np.ndarray  # the photo at the size it was inverted at
    psnr: float  # of image against target, dB
    losses: dict[str, float]  # terms of the best image: total, features, alpha, tv
    history: list[dict] = field(default_factory=list)
    iterations: int = 0
    interrupted: bool = False
    seconds: float = 0.0


class InversionObjective:
    """Callable for `optimize_pixels`: the normalized feature distance plus the two priors."""

    def __init__(self, vgg: VGG, layer: str, target_image: torch.Tensor, o: InversionOptions):
        self.vgg, self.layer, self.o = vgg, layer, o
        with torch.no_grad():
            self.target = vgg(target_image, [layer])[layer].float()
        self.norm = self.target.pow(2).mean().clamp_min(1e-12)  # ‖Φ0‖² per element

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = content_loss(self.vgg(x, [self.layer])[self.layer], self.target) / self.norm
        alpha = alpha_norm(2.0 * (x - 0.5), self.o.alpha)
        tv = total_variation(x.float(), self.o.tv_exponent)
        total = features + self.o.alpha_weight * alpha + self.o.tv_weight * tv
        return {"total": total, "features": features, "alpha": alpha, "tv": tv}


def validate(o: InversionOptions) -> None:
    positive(o.iterations, "--iterations", allow_zero=True, integer=True)
    if o.size is not None:
        positive(o.size, "--size", integer=True)
    if o.optimizer not in ("lbfgs", "adam"):
        raise UserError(f"--optimizer must be lbfgs or adam, got {o.optimizer!r}")
    if o.lr is not None:
        positive(o.lr, "--lr")
    positive(o.tv_weight, "--tv-weight", allow_zero=True)
    positive(o.alpha_weight, "--alpha-weight", allow_zero=True)
    if not (np.isfinite(o.tv_exponent) and o.tv_exponent >= 1):
        raise UserError(f"--tv-exponent must be a number >= 1, got {o.tv_exponent}")
    if not (np.isfinite(o.alpha) and o.alpha >= 1):
        raise UserError(f"--alpha must be a number >= 1, got {o.alpha}")
    device(o.device)


def noise_image(h: int, w: int, seed: int) -> torch.Tensor:
    """(1, 3, H, W) Gaussian noise around mid-grey (σ = 0.15), as Mahendran & Vedaldi start."""
    g = torch.Generator().manual_seed(int(seed))
    return (0.5 + 0.15 * torch.randn((1, 3, h, w), generator=g)).clamp(0, 1)


def invert(
    image: ImageInput,
    options: InversionOptions | None = None,
    *,
    output: str | None = None,
    vgg: VGG | None = None,
    callbacks: Sequence[Callback] = (),
    **overrides,
) -> InversionResult:
    """Reconstruct `image` (a path, bytes or an HxWx3 float array in [0, 1]) from its features at
    `options.layer`, starting from noise. `output` is written atomically (also after Ctrl-C, with
    the best image so far). Bad input raises UserError before any work and writes nothing."""
    o = dataclasses.replace(options or InversionOptions(), **overrides)
    validate(o)
    if output is not None:
        check_output(output)
    if vgg is not None and vgg.pooling != o.pooling:
        raise UserError(f"the given VGG uses {vgg.pooling} pooling but pooling={o.pooling!r} was asked for")
    photo = read_image(image, o.size, "image")
    vgg = vgg if vgg is not None else load_vgg(o.vgg_weights, pooling=o.pooling)
    check_layer(vgg, o.layer)
    h, w = photo.shape[:2]
    need = min_side([o.layer])
    if min(h, w) < need:
        raise UserError(f"image is {w}x{h}; {o.layer} needs at least {need} px on the shorter side")

    dev = device(o.device)
    vgg = vgg.to(dev)
    objective = InversionObjective(vgg, o.layer, to_tensor(photo).to(dev), o)
    result = optimize_pixels(
        objective,
        noise_image(h, w, o.seed).to(dev),
        iterations=int(o.iterations),
        optimizer=o.optimizer,
        lr=o.lr,
        bf16=o.bf16,
        seed=int(o.seed),
        callbacks=callbacks,
        progress=o.progress,
        desc=f"invert {o.layer} {w}x{h}",
    )
    image = to_array(result.image)
    out = InversionResult(
        image=image,
        target=photo,
        psnr=psnr(image, photo),
        losses=result.losses,
        history=result.history,
        iterations=result.iterations,
        interrupted=result.interrupted,
        seconds=result.seconds,
    )
    if output is not None:
        save_image(image, output)
    return out


def build_parser() -> argparse.ArgumentParser:
    d = InversionOptions()
    p = ArgumentParser(
        prog="stylecast invert",
        description="Reconstruct an image from its VGG19 features at one layer, from noise, with TV and "
        "alpha-norm priors (Mahendran & Vedaldi 2015): what does the layer keep?",
        epilog="examples:\n  stylecast invert photo.jpg -o relu1_1.png --layer relu1_1\n"
        "  stylecast invert photo.jpg -o relu5_1.png --layer relu5_1 --iterations 300 --bf16\n\n"
        "Ctrl-C stops early and still writes the best image so far (exit code 130).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("image", metavar="IMAGE", help="the photo whose features are inverted")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .webp)")
    p.add_argument("--layer", default=d.layer, help=f"VGG19 layer, relu1_1 (near-exact) .. relu5_4 (default {d.layer})")
    p.add_argument("--size", type=int, default=d.size, help=f"longer side in px (default {d.size}; 0 keeps the input's size)")
    p.add_argument("--iterations", type=int, default=d.iterations, help=f"optimizer steps (default {d.iterations})")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default=d.optimizer, help=f"(default {d.optimizer})")
    p.add_argument("--lr", type=float, default=None, help="Adam step size (default 0.02)")
    p.add_argument("--tv-weight", type=float, default=d.tv_weight, help=f"total-variation prior weight (default {d.tv_weight})")
    p.add_argument("--tv-exponent", type=float, default=d.tv_exponent, help=f"TV exponent beta (default {d.tv_exponent:g})")
    p.add_argument("--alpha-weight", type=float, default=d.alpha_weight, help=f"alpha-norm prior weight (default {d.alpha_weight:g})")
    p.add_argument("--alpha", type=float, default=d.alpha, help=f"alpha-norm exponent (default {d.alpha:g})")
    add_run_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_image_output(args, args.image)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    options = InversionOptions(
        layer=args.layer,
        size=args.size or None,
        iterations=args.iterations,
        optimizer=args.optimizer,
        lr=args.lr,
        tv_weight=args.tv_weight,
        tv_exponent=args.tv_exponent,
        alpha_weight=args.alpha_weight,
        alpha=args.alpha,
        **run_options(args),
    )
    try:
        result = invert(args.image, options, output=args.output)
    except (torch.OutOfMemoryError, MemoryError):
        raise UserError(f"out of memory inverting at --size {args.size}; try a smaller --size or --optimizer adam") from None
    if result.interrupted:
        print(f"stylecast invert: interrupted after {result.iterations} steps; wrote the best image so far to {args.output}", file=sys.stderr)
        return 130
    h, w = result.image.shape[:2]
    print(
        f"wrote {args.output} ({w}x{h}) from {args.layer} features, PSNR {result.psnr:.1f} dB against the input, "
        f"{result.iterations} steps, {result.seconds:.1f} s"
    )
    return 0
