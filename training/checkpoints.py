"""Reading training checkpoints without running code from them (no Lightning import: export uses it).

- `load_checkpoint_file`: `torch.load(weights_only=True)`. A .ckpt is a pickle, and unpickling
  with weights_only=False runs whatever callables the file names (issue 15.2: `stylecast export`
  of an untrusted file executed its payload before refusing it). Everything `stylecast train`
  writes is tensors and plain data (dicts, lists, str, numbers), so the restricted unpickler
  reads it; anything else is refused with one line. Used by `stylecast export` and, through
  `training.cli.AtomicCheckpointIO.load_checkpoint`, by Lightning when a run resumes (`--ckpt_path`).
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from stylecast.errors import UserError


def load_checkpoint_file(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """The checkpoint's contents, read with the restricted (weights-only) unpickler.

    UserError naming the file when it is missing, not a torch file, or holds Python objects
    beyond tensors and plain data (which loading would have to construct by running code)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message is a page of advice to load it unsafely; keep the offending name only.
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = f" ({found[1]})" if found else ""
        raise UserError(f"{path}: refused: the checkpoint holds Python objects{what}, not only tensors and plain data; loading it could run code") from None
    except Exception as exc:  # zip/pickle format errors come in many types
        raise UserError(f"{path}: not a readable torch checkpoint ({type(exc).__name__})") from None
