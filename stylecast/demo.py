"""`make demo` / `python -m stylecast.demo`: the main job on built-in defaults.

With shipped styles in checkpoints/ (the normal case): stylize the bundled photo with every style
(torch-free ONNX path) into out/, then start `stylecast serve` on 127.0.0.1 and print the page's
URL (upload a photo or turn on the webcam there). Without any style (`--optimize`, or an empty
checkpoints/): run the slow Gatys optimizer on the bundled photo and style at a small size (about
a minute on a 2-core CPU). Bundled images and their licences: stylecast/samples/SOURCES.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib import resources
from pathlib import Path

SAMPLES = resources.files("stylecast") / "samples"
CONTENT = "chelsea.jpg"
STYLE = "swirls.png"
MODELS_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
# swirls.png is a high-contrast drawing: its squared Gram entries are 3-11x those of a real
# painting such as The Starry Night, so the default style weight (20) would bury the cat.
STYLE_WEIGHT = 4.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stylecast.demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", default="out/demo.png", help="where to write the stylized image (default: %(default)s)")
    p.add_argument("--size", type=int, default=224, help="longer side in pixels (default: %(default)s)")
    p.add_argument("--iterations", type=int, default=60, help="L-BFGS iterations (default: %(default)s)")
    p.add_argument("--optimize", action="store_true", help="run the slow optimizer demo even if styles are shipped")
    p.add_argument("--port", type=int, default=8000, help="server port (default: %(default)s)")
    args = p.parse_args(argv)
    if not args.optimize and _shipped_styles():
        return _serve_demo(args.port)

    from stylecast.optimization.gatys import optimize
    from stylecast.errors import UserError

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with resources.as_file(SAMPLES / CONTENT) as content, resources.as_file(SAMPLES / STYLE) as style:
        print(f"stylecast demo: Gatys et al. style transfer of {CONTENT} with {STYLE}, {args.size} px, {args.iterations} L-BFGS iterations", file=sys.stderr)
        start = time.perf_counter()
        try:
            result = optimize(content, style, output=out, size=args.size, iterations=args.iterations, style_weight=STYLE_WEIGHT)
        except UserError as exc:
            print(f"stylecast demo: error: {exc}", file=sys.stderr)
            return 2
    h, w = result.image.shape[:2]
    print(f"wrote {out} ({w}x{h}) in {time.perf_counter() - start:.0f} s; try: stylecast optimize --help")
    return 0


def _shipped_styles() -> list[str]:
    from stylecast.inference.registry import StyleRegistry

    return StyleRegistry(MODELS_DIR).names()


def _serve_demo(port: int) -> int:
    from stylecast.inference import serve_cli
    from stylecast.inference.registry import StyleRegistry
    from stylecast.images import load_image, save_image

    registry = StyleRegistry(MODELS_DIR)
    out = Path("out")
    out.mkdir(exist_ok=True)
    with resources.as_file(SAMPLES / CONTENT) as content:
        photo = load_image(content)
    for name in registry.names():
        start = time.perf_counter()
        save_image(registry.get(name)(photo), out / f"demo_{name}.png")
        print(f"stylized {CONTENT} with {name} in {time.perf_counter() - start:.2f} s -> out/demo_{name}.png", file=sys.stderr)
    return serve_cli.main(["--models-dir", str(MODELS_DIR), "--port", str(port)])


if __name__ == "__main__":
    sys.exit(main())
