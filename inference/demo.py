"""`stylecast demo` (`make demo`): the main job on built-in defaults.

With shipped styles (the normal case; the models folder is found as for every command:
--models-dir > $STYLECAST_MODELS > ./checkpoints > the styles installed with the package):
stylize the bundled photo with every style (torch-free ONNX path) next to --output, then start
`stylecast serve` on 127.0.0.1 and print the page's URL (upload a photo or turn on the webcam
there). With `--optimize`, or without any style: run `stylecast optimize`, the slow Gatys
optimizer, on the bundled photo and style at a small size (about a minute on a 2-core CPU; needs
torch). Bundled images and their licences: stylecast/samples/SOURCES.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack
from importlib import resources
from pathlib import Path

from stylecast.images import load_image, save_image
from stylecast.inference.registry import MODELS_DIR_RULE, StyleRegistry

SAMPLES = resources.files("stylecast") / "samples"
CONTENT = "chelsea.jpg"
STYLE = "swirls.png"
# swirls.png is a high-contrast drawing: its squared Gram entries are 3-11x those of a real
# painting such as The Starry Night, so the default style weight (20) would bury the cat.
STYLE_WEIGHT = 4.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stylecast demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", default="out/demo.png", help="the optimizer's image; the stylized ones go beside it (default: %(default)s)")
    p.add_argument("--models-dir", default=None, help=f"folder of <style>.onnx files (default: {MODELS_DIR_RULE})")
    p.add_argument("--size", type=int, default=224, help="--optimize: longer side in pixels (default: %(default)s)")
    p.add_argument("--iterations", type=int, default=60, help="--optimize: L-BFGS iterations (default: %(default)s)")
    p.add_argument("--optimize", action="store_true", help="run the slow optimizer demo even if styles are shipped (needs torch)")
    p.add_argument("--no-serve", action="store_true", help="stylize with every style, then exit instead of starting the server")
    p.add_argument("--port", type=int, default=8000, help="server port (default: %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    registry = StyleRegistry(args.models_dir)
    out_dir = Path(args.output).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.optimize or not registry.names():
        return _optimize_demo(args)
    stylize_every_style(registry, out_dir)
    if args.no_serve:
        return 0
    from stylecast.inference import serve_cli  # the server's packages load only when it starts

    return serve_cli.main(["--models-dir", str(registry.models_dir), "--port", str(args.port)])


def stylize_every_style(registry: StyleRegistry, out_dir: Path) -> list[Path]:
    """The bundled photo through every style of `registry`: out_dir/demo_<style>.png each
    (demo_<model>_<style>.png for the styles of a multi-style model)."""
    with resources.as_file(SAMPLES / CONTENT) as content:
        photo = load_image(content)
    written = []
    for name in registry.names():
        start = time.perf_counter()
        path = out_dir / f"demo_{name.replace('/', '_')}.png"  # painters/starry_night: a style of a multi-style model
        save_image(registry.get(name)(photo), path)
        print(f"stylized {CONTENT} with {name} in {time.perf_counter() - start:.2f} s -> {path}", file=sys.stderr)
        written.append(path)
    return written


def _optimize_demo(args: argparse.Namespace) -> int:
    # Through the dispatcher, as a user would type it: the demo stays on the torch-free floor
    # (inference imports no optimization code), and a serving install gets the dispatcher's
    # one-line "needs torch" message instead of a traceback.
    from stylecast.cli import main as stylecast_main

    with ExitStack() as stack:
        content = stack.enter_context(resources.as_file(SAMPLES / CONTENT))
        style = stack.enter_context(resources.as_file(SAMPLES / STYLE))
        command = [
            "optimize",
            str(content),
            str(style),
            "-o",
            args.output,
            "--size",
            str(args.size),
            "--iterations",
            str(args.iterations),
            "--style-weight",
            str(STYLE_WEIGHT),
        ]
        print(f"stylecast demo: Gatys et al. style transfer of {CONTENT} with {STYLE}: stylecast {' '.join(command)}", file=sys.stderr)
        return stylecast_main(command)


if __name__ == "__main__":  # pragma: no cover
    from stylecast.cli import main as cli_main

    sys.exit(cli_main(["demo", *sys.argv[1:]]))
