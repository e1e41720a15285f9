"""DeepDream (Mordvintsev, Olah & Tyka 2015, "Inceptionism"; google/deepdream) on the frozen VGG19.

Gradient ascent on the pixels to amplify what one layer sees: the L2 norm of its activation, of one
channel (`channel`), or its agreement with a guide image's features (`guide`: each position is
pushed towards the guide feature it already matches best, google/deepdream's objective_guide).
The steps run in the shared pixel loop (`stylecast.optimization.loop.optimize_pixels`, plain SGD) with the
tricks from google/deepdream's notebook that make the result look right:

- octaves: the image is processed from size/scale^(octaves-1) up to full size; the detail the
  ascent added at one octave (result - that octave's base image) is upsampled and added to the
  next octave's base, so patterns grow at several scales and the photo stays sharp;
- jitter: every step rolls the image by a random offset in [-jitter, jitter] before the forward
  pass (the gradient is rolled back by autograd), which averages away the stride-2 grid artifacts;
- the gradient is divided by its mean absolute value, so `step` is the mean pixel change per step
  in 8-bit levels (1.5 as in the notebook) whatever the layer's scale;
- pixels are clamped to [0, 1] after each step;
- tiling (`tile`): for large images the gradient is computed tile by tile (memory bounded by the
  tile) on an image rolled by a fresh random offset every step, so tile borders move and leave
  no seams (as in the TensorFlow DeepDream tutorial's tiled gradients).

Lower layers give strokes and ornaments, higher ones eyes, fur and object parts.
Images: numpy HxWx3 float32 RGB in [0, 1] at the API; tensors (1, 3, H, W) inside.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

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
    read_image,
    run_options,
)
from stylecast.optimization.gatys import min_side
from stylecast.optimization.loop import Callback, optimize_pixels
from stylecast.errors import UserError
from stylecast.images import save_image

log = logging.getLogger(__name__)

Score = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class DreamOptions(RunOptions):
    """Every knob of `stylecast dream`; the defaults are google/deepdream's notebook values."""

    layer: str = "relu4_2"  # the VGG layer to amplify
    channel: int | None = None  # amplify one channel of `layer` instead of all
    guide: ImageInput | None = None  # amplify what `layer` sees in this image instead
    guide_size: int = 224  # longer side of the guide image, pixels
    size: int | None = None  # longer side of the output; None keeps the input's size
    octaves: int = 4  # number of scales
    octave_scale: float = 1.4  # size ratio between neighbouring octaves
    iterations: int = 10  # ascent steps per octave
    step: float = 1.5  # mean pixel change per step, in 8-bit levels (the gradient is normalized)
    jitter: int = 32  # random roll of up to ±jitter pixels per step
    tile: int | None = None  # compute gradients in tiles of this many pixels (large images); None = whole image


@dataclass
class DreamResult:
    image: np.ndarray  # HxWx3 float32 RGB [0, 1], the input's size (or `size`)
    octave_sizes: list[tuple[int, int]]  # (H, W) of each octave, smallest first
    score_before: float  # objective on the input (mean squared activation for L2/channel)
    score_after: float  # the same on the result, both without jitter
    history: list[dict] = field(default_factory=list)  # per evaluation: octave, iteration, terms, time
    iterations: int = 0  # ascent steps done in all octaves
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def norm_ratio(self) -> float:
        """How much the L2 norm of the amplified activation grew: sqrt(score_after / score_before)."""
        return math.sqrt(self.score_after / self.score_before) if self.score_before > 0 else math.inf


# ---------------------------------------------------------------------------------------------
# geometry


def octave_sizes(height: int, width: int, octaves: int, scale: float) -> list[tuple[int, int]]:
    """(H, W) of each octave, smallest first: round(side / scale^k) for k = octaves-1 .. 0."""
    return [(max(1, round(height / scale**k)), max(1, round(width / scale**k))) for k in range(octaves - 1, -1, -1)]


def tile_slices(length: int, tile: int) -> list[slice]:
    """Split [0, length) into ceil(length / tile) near-equal parts, none longer than `tile`
    (equal parts, so no thin remainder tile starves the deep layers of context)."""
    n = max(1, math.ceil(length / tile))
    edges = [round(i * length / n) for i in range(n + 1)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def resize(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (1, 3, H, W); antialiased when shrinking (octave bases from the photo)."""
    if tuple(x.shape[-2:]) == tuple(hw):
        return x
    shrink = hw[0] < x.shape[-2] or hw[1] < x.shape[-1]
    return F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=shrink)


# ---------------------------------------------------------------------------------------------
# objectives


def l2_score(vgg: VGG, layer: str, channel: int | None = None) -> Score:
    """Mean squared activation of `layer` (or of one channel): the squared L2 norm per element.

    google/deepdream's objective_L2 sets the layer's gradient to its activation, i.e. ascends
    ½‖a‖²; the mean only rescales it, and the gradient is normalized anyway.
    """

    def score(x: torch.Tensor) -> torch.Tensor:
        a = vgg(x, [layer])[layer]
        if channel is not None:
            a = a[:, channel]
        return a.float().pow(2).mean()

    return score


def guide_score(vgg: VGG, layer: str, guide_features: torch.Tensor) -> Score:
    """google/deepdream's objective_guide: each position's activation a_p is pushed along the guide
    feature y_q it already matches best (q = argmax_q a_p·y_q); score = mean_p a_p·y_q(p).

    guide_features: (C, M) activations of the guide image at `layer`.
    """
    y = guide_features.float()

    def score(x: torch.Tensor) -> torch.Tensor:
        a = vgg(x, [layer])[layer].float()
        c = a.shape[1]
        a = a.reshape(c, -1)  # (C, N)
        match = (a.detach().T @ y).argmax(dim=1)  # best guide position for each image position
        return (a * y[:, match]).sum(0).mean()

    return score


def guide_features(vgg: VGG, guide: np.ndarray, layer: str) -> torch.Tensor:
    """(C, M) features of the guide image at `layer`."""
    with torch.no_grad():
        a = vgg(to_tensor(guide).to(vgg.shift.device), [layer])[layer]
    return a[0].reshape(a.shape[1], -1).float()


def score_image(x: torch.Tensor, score: Score, tile: int | None) -> float:
    """The objective on an unjittered image, tile by tile if `tile` (area-weighted mean)."""
    h, w = x.shape[-2:]
    with torch.no_grad():
        if tile is None or (h <= tile and w <= tile):
            return float(score(x))
        total = 0.0
        for ys in tile_slices(h, tile):
            for xs in tile_slices(w, tile):
                t = x[..., ys, xs]
                total += float(score(t)) * t.shape[-2] * t.shape[-1] / (h * w)
        return total


def ascent_objective(score: Score, jitter: int, tile: int | None) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """The loop's objective: total = −score of the image rolled by a random jitter.

    Tiled: the gradient is computed tile by tile on the rolled image (each tile its own forward and
    backward, so memory is bounded by the tile), assembled, rolled back, and attached to x through
    a surrogate term whose value is 0 and whose gradient is that assembled gradient.
    """

    def objective(x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = x.shape[-2:]
        oy, ox = torch.randint(-jitter, jitter + 1, (2,)).tolist() if jitter > 0 else (0, 0)
        if tile is None or (h <= tile and w <= tile):
            s = score(torch.roll(x, shifts=(oy, ox), dims=(2, 3)))
            return {"total": -s, "activation": s.detach()}
        # a fresh random tile grid every step: borders never stay in one place
        oy += int(torch.randint(0, tile, ()))
        ox += int(torch.randint(0, tile, ()))
        want_grad = torch.is_grad_enabled()
        xr = torch.roll(x.detach(), shifts=(oy, ox), dims=(2, 3))
        grad = torch.zeros_like(xr)
        value = torch.zeros((), device=x.device)
        for ys in tile_slices(h, tile):
            for xs in tile_slices(w, tile):
                t = xr[..., ys, xs].detach().requires_grad_(want_grad)
                weight = t.shape[-2] * t.shape[-1] / (h * w)
                with torch.set_grad_enabled(want_grad):
                    s = score(t)
                if want_grad:
                    (g,) = torch.autograd.grad(s, t)
                    grad[..., ys, xs] = g * weight
                value = value + s.detach().float() * weight
        if not want_grad:
            return {"total": -value, "activation": value}
        grad = torch.roll(grad, shifts=(-oy, -ox), dims=(2, 3))
        surrogate = (x * grad).sum()
        return {"total": -(value + surrogate - surrogate.detach()), "activation": value}

    return objective


def normalize_gradient(g: torch.Tensor) -> torch.Tensor:
    """g / mean|g| (google/deepdream make_step): the step size is then in pixel units."""
    return g / g.abs().mean().clamp_min(1e-12)


# ---------------------------------------------------------------------------------------------
# the job


def validate(o: DreamOptions) -> None:
    positive(o.iterations, "--iterations", allow_zero=True, integer=True)
    positive(o.octaves, "--octaves", integer=True)
    if not (np.isfinite(o.octave_scale) and o.octave_scale >= 1.0):
        raise UserError(f"--octave-scale must be a number >= 1, got {o.octave_scale}")
    positive(o.step, "--step")
    positive(o.jitter, "--jitter", allow_zero=True, integer=True)
    if o.size is not None:
        positive(o.size, "--size", integer=True)
    positive(o.guide_size, "--guide-size", integer=True)
    if o.tile is not None and o.tile < 32:
        raise UserError(f"--tile must be at least 32 pixels, got {o.tile}")
    if o.channel is not None and o.guide is not None:
        raise UserError("--channel and --guide are exclusive: amplify one channel or what the guide image shows")
    device(o.device)


def dream(
    image: ImageInput,
    options: DreamOptions | None = None,
    *,
    output: str | None = None,
    vgg: VGG | None = None,
    callbacks: Sequence[Callback] = (),
    **overrides,
) -> DreamResult:
    """DeepDream `image` (a path, bytes, or an HxWx3 float array in [0, 1]); the whole job, importable.

    options: DreamOptions; keyword `overrides` replace its fields (dream(img, layer="relu3_1")).
    output: written atomically when given (also after Ctrl-C: the dream so far, at full size).
    vgg: a loaded VGG to reuse (its pooling must match options.pooling).
    Every input is checked before any work; bad input raises UserError and writes nothing.
    """
    o = dataclasses.replace(options or DreamOptions(), **overrides)
    validate(o)
    if output is not None:
        check_output(output)
    if vgg is not None and vgg.pooling != o.pooling:
        raise UserError(f"the given VGG uses {vgg.pooling} pooling but pooling={o.pooling!r} was asked for")
    photo = read_image(image, o.size, "image")
    guide = read_image(o.guide, o.guide_size, "--guide") if o.guide is not None else None
    vgg = vgg if vgg is not None else load_vgg(o.vgg_weights, pooling=o.pooling)
    check_layer(vgg, o.layer, o.channel)
    h, w = photo.shape[:2]
    sizes = octave_sizes(h, w, int(o.octaves), float(o.octave_scale))
    need = min_side([o.layer])
    if min(sizes[0]) < need:
        raise UserError(
            f"the smallest octave is {sizes[0][1]}x{sizes[0][0]}, but {o.layer} needs at least {need} px on the shorter "
            f"side: use fewer --octaves, a smaller --octave-scale or a larger image"
        )
    if guide is not None and min(guide.shape[:2]) < need:
        raise UserError(f"--guide image is {guide.shape[1]}x{guide.shape[0]}; {o.layer} needs at least {need} px on the shorter side")
    if o.tile is not None and o.tile < 2 * need:
        raise UserError(f"--tile {o.tile} is too small for {o.layer}: use at least {2 * need} px")

    dev = device(o.device)
    vgg = vgg.to(dev)
    if guide is not None:
        score = guide_score(vgg, o.layer, guide_features(vgg, guide, o.layer))
    else:
        score = l2_score(vgg, o.layer, o.channel)
    objective = ascent_objective(score, int(o.jitter), o.tile)

    full = to_tensor(photo).to(dev)
    score_before = score_image(full, score, o.tile)
    detail = torch.zeros((1, 3, *sizes[0]), device=dev)
    history: list[dict] = []
    done, elapsed, interrupted = 0, 0.0, False
    x = full
    for k, hw in enumerate(sizes):
        base = resize(full, hw)
        detail = resize(detail, hw)
        start = (base + detail).clamp(0, 1)
        if interrupted:  # carry what was dreamt so far up to full size, without more steps
            x = start
            continue
        result = optimize_pixels(
            objective,
            start,
            iterations=int(o.iterations),
            optimizer="sgd",
            lr=float(o.step) / 255.0,
            bounds=(0.0, 1.0),
            grad_transform=normalize_gradient,
            bf16=o.bf16,
            seed=int(o.seed) * 1000 + k,
            callbacks=callbacks,
            progress=o.progress,
            desc=f"dream {hw[1]}x{hw[0]} (octave {k + 1}/{len(sizes)})",
        )
        history += [
            {"octave": k, "height": hw[0], "width": hw[1], **row, "iteration": row["iteration"] + done, "time": row["time"] + elapsed} for row in result.history
        ]
        done += result.iterations
        elapsed += result.seconds
        x = result.image
        detail = x - base
        interrupted = result.interrupted
    out = DreamResult(
        image=to_array(x),
        octave_sizes=sizes,
        score_before=score_before,
        score_after=score_image(x, score, o.tile),
        history=history,
        iterations=done,
        interrupted=interrupted,
        seconds=elapsed,
    )
    if output is not None:
        save_image(out.image, output)
    return out


# ---------------------------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    d = DreamOptions()
    p = ArgumentParser(
        prog="stylecast dream",
        description="DeepDream: amplify what a VGG19 layer sees in an image, by gradient ascent on the pixels "
        "with octaves, jitter and normalized gradient steps (google/deepdream).",
        epilog="examples:\n  stylecast dream photo.jpg -o dream.png --layer relu4_2\n"
        "  stylecast dream photo.jpg -o strokes.png --layer relu3_1 --size 512\n"
        "  stylecast dream photo.jpg -o ch.png --layer relu4_1 --channel 42\n"
        "  stylecast dream photo.jpg -o guided.png --guide flowers.jpg --layer relu4_2\n"
        "  stylecast dream big.jpg -o big_dream.jpg --tile 512 --bf16\n\n"
        "Ctrl-C stops early and still writes the dream so far, at full size (exit code 130).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("image", metavar="IMAGE", help="the photo to dream on")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .webp)")
    p.add_argument("--layer", default=d.layer, help=f"VGG19 layer to amplify, e.g. relu3_1 (strokes) .. relu5_2 (objects) (default {d.layer})")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--channel", type=int, default=None, metavar="K", help="amplify only channel K of the layer")
    what.add_argument("--guide", default=None, metavar="IMAGE", help="amplify what the layer sees in this image")
    p.add_argument("--guide-size", type=int, default=d.guide_size, help=f"longer side of the guide image (default {d.guide_size})")
    p.add_argument("--size", type=int, default=None, help="resize so the longer side is SIZE px first (default: keep)")
    p.add_argument("--octaves", type=int, default=d.octaves, help=f"number of scales (default {d.octaves})")
    p.add_argument("--octave-scale", type=float, default=d.octave_scale, help=f"size ratio between octaves (default {d.octave_scale})")
    p.add_argument("--iterations", type=int, default=d.iterations, help=f"ascent steps per octave (default {d.iterations})")
    p.add_argument("--step", type=float, default=d.step, help=f"mean pixel change per step in 8-bit levels (default {d.step})")
    p.add_argument("--jitter", type=int, default=d.jitter, help=f"random roll of up to ±JITTER px per step (default {d.jitter})")
    p.add_argument("--tile", type=int, default=None, metavar="SIZE", help="compute gradients in SIZE px tiles with random shifts (large images)")
    add_run_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_image_output(args, args.image, *([args.guide] if args.guide else []))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    options = DreamOptions(
        layer=args.layer,
        channel=args.channel,
        guide=args.guide,
        guide_size=args.guide_size,
        size=args.size,
        octaves=args.octaves,
        octave_scale=args.octave_scale,
        iterations=args.iterations,
        step=args.step,
        jitter=args.jitter,
        tile=args.tile,
        **run_options(args),
    )
    try:
        result = dream(args.image, options, output=args.output)
    except (torch.OutOfMemoryError, MemoryError):
        raise UserError("out of memory; use --tile 512 (gradients tile by tile) or a smaller --size") from None
    if result.interrupted:
        print(f"stylecast dream: interrupted after {result.iterations} steps; wrote the dream so far to {args.output}", file=sys.stderr)
        return 130
    h, w = result.image.shape[:2]
    if args.guide:
        gain = f"{args.layer} guide score {result.score_before:.4g} -> {result.score_after:.4g}"
    else:
        gain = f"{args.layer}" + (f" channel {args.channel}" if args.channel is not None else "") + f" activation norm x{result.norm_ratio:.2f}"
    print(f"wrote {args.output} ({w}x{h}, {len(result.octave_sizes)} octave(s) x {args.iterations} steps in {result.seconds:.1f} s; {gain})")
    return 0
