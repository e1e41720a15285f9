"""The options every stylecast command spells the same way (issue 14): --device, -q/--quiet,
--force, and the parser whose usage errors are one line. Torch-free: `stylize` and `serve`
(ONNX Runtime) and the torch commands share them.

- `--device auto|cpu|cuda|cuda:N` is parsed once here (`parse_device`); each runtime then says
  whether it has that device (torch: `stylecast.optimization.common.device`; ONNX Runtime:
  `stylecast.inference.backends`).
- `-q/--quiet`: no progress bar and no per-file lines; errors and the final summary stay.
- `--force`: overwrite existing outputs (never an input). Without it a command that would
  overwrite a file refuses before doing any work (`stylecast.io.check_new`).
"""

from __future__ import annotations

import argparse
import re

from stylecast.errors import UserError


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are UserErrors: the dispatcher prints them as one line
    (`stylecast NAME: error: ...`) and exits 2, like every other bad input."""

    def error(self, message: str):  # type: ignore[override]
        raise UserError(f"{message} (see {self.prog} --help)")


DEVICE_HELP = "auto (a GPU when there is one), cpu, cuda or cuda:N"
_DEVICE = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


def parse_device(text: str) -> tuple[str, int | None]:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> (kind, index or None). UserError for anything else."""
    m = _DEVICE.match(str(text).strip().lower())
    if not m or (m[2] is not None and m[1] != "cuda"):
        raise UserError(f"--device must be auto, cpu, cuda or cuda:N, got {text!r}")
    return m[1], None if m[2] is None else int(m[2])


def device_arg(text: str) -> str:
    """argparse `type=` for --device: the normalized spelling, or a usage error."""
    try:
        kind, index = parse_device(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--device ")) from None
    return kind if index is None else f"{kind}:{index}"


def add_device(parser, default: str = "auto", help: str | None = None) -> None:
    parser.add_argument("--device", type=device_arg, default=default, help=help or f"{DEVICE_HELP} (default {default})")


def add_quiet(parser, *aliases: str) -> None:
    """-q/--quiet (and older spellings kept as aliases, e.g. compare's --no-progress)."""
    parser.add_argument("-q", "--quiet", *aliases, dest="quiet", action="store_true", help="no progress bar or per-file lines")


def add_force(parser, what: str = "existing output files") -> None:
    parser.add_argument("--force", "--overwrite", dest="force", action="store_true", help=f"overwrite {what} (never an input)")
