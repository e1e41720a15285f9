"""Warm start: begin a run from a trained TransformerNet instead of random weights.

A trained style network's encoder and decoder already reconstruct photos; only the style has to
move. Starting from one cuts the steps a new style or a new phase (e.g. 256² crops after a 128²
run) needs. Two sources are accepted:

- a Lightning checkpoint of `stylecast train` (`runs/NAME/checkpoints/last.ckpt`), and
- an exported model (`checkpoints/NAME.onnx`): its initializers are the network's parameters under
  their torch names (fp16-stored ones as `NAME__fp16`, cast back to fp32 here), and its metadata
  records the architecture and the steps it was trained for. This lets a run continue in a later
  session from what was committed, when the run folder is gone.

Optimizer state is not carried over (Adam's moments start from zero): a warm start is a new run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stylecast.errors import UserError
from stylecast.inference.contract import META_PREFIX, STYLES_KEY, Architecture, parse_architecture
from stylecast.training.export import FP16_SUFFIX, load_checkpoint
from stylecast.training.styles import style_name, styles_of
from stylecast.training.transformer import GROWS_FROM


@dataclass
class WarmStart:
    state_dict: dict[str, torch.Tensor]  # TransformerNet keys (no `net.` prefix), fp32
    width: float
    residual_blocks: int
    steps: int  # steps the source was trained for, its own warm start's included (0 when unknown)
    source: str  # file name, for the model card
    n_styles: int = 1
    # one record per style, {"name", "painting", "style_weight"} (training/styles.py); a
    # single-style source has one, named after its painting (or its style_name when exported)
    styles: list[dict[str, Any]] = field(default_factory=list)
    variant: str = "johnson"  # transformer.VARIANTS


def _architecture(text: str, path: Path) -> Architecture:
    arch = parse_architecture(text)
    if arch is None:
        raise UserError(f"{path}: metadata 'architecture' is {text!r}, not a TransformerNet")
    return arch


def _onnx_styles(meta: dict[str, str], n_styles: int, path: Path) -> list[dict[str, Any]]:
    if n_styles == 1:
        return [{"name": meta.get("style_name") or style_name(path), "painting": meta.get("style_image", ""), "style_weight": 1.0}]
    try:
        styles = json.loads(meta[STYLES_KEY])
    except (KeyError, ValueError):
        raise UserError(f"{path}: a {n_styles}-style model without a readable {STYLES_KEY!r} list in its metadata") from None
    if len(styles) != n_styles:
        raise UserError(f"{path}: metadata lists {len(styles)} styles for a {n_styles}-style network")
    return styles


def _from_onnx(path: Path) -> WarmStart:
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf decode errors come in several types
        raise UserError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    meta = {p.key.removeprefix(META_PREFIX): p.value for p in model.metadata_props}
    if "architecture" not in meta:
        raise UserError(f"{path}: no 'architecture' in the model's metadata (not exported by stylecast?)")
    width, blocks, n_styles, variant = _architecture(meta["architecture"], path)
    state = {}
    for init in model.graph.initializer:
        name = init.name.removesuffix(FP16_SUFFIX)
        state[name] = torch.from_numpy(numpy_helper.to_array(init).astype("float32"))
    # a source that was itself warm-started counts its own source's steps too (init_steps)
    steps = int(meta.get("steps") or 0) + int(meta.get("init_steps") or 0)
    return WarmStart(state, width, blocks, steps, path.name, n_styles, _onnx_styles(meta, n_styles, path), variant)


def _from_checkpoint(path: Path) -> WarmStart:
    net, hparams, step = load_checkpoint(path)
    styles = styles_of(hparams)
    if not styles:
        painting = hparams.get("style_image") or path.stem
        painting = painting[0] if isinstance(painting, (list, tuple)) and painting else painting
        styles = [{"name": style_name(painting), "painting": Path(str(painting)).name, "style_weight": 1.0}]
    steps = step + int(hparams.get("init_steps") or 0)
    return WarmStart(net.state_dict(), net.width, net.residual_blocks, steps, path.name, net.n_styles, styles, net.variant)


def load_warm_start(path: str | Path, option: str = "--model.init_from") -> WarmStart:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{option}: {path}: no such file")
    if path.suffix.lower() == ".onnx":
        return _from_onnx(path)
    return _from_checkpoint(path)


def apply_warm_start(net: torch.nn.Module, warm: WarmStart) -> None:
    """Copy the weights into `net` (same architecture required; extra ONNX constants are ignored)."""
    if (float(net.width), int(net.residual_blocks)) != (warm.width, warm.residual_blocks):
        raise UserError(
            f"--model.init_from: {warm.source} is TransformerNet(width={warm.width:g}, "
            f"residual_blocks={warm.residual_blocks}), this run builds width={net.width:g}, "
            f"residual_blocks={net.residual_blocks}: set --model.width/--model.residual_blocks to match"
        )
    variant = getattr(net, "variant", "johnson")
    grows = GROWS_FROM.get(variant) == warm.variant  # e.g. tiny -> tiny_fullres: the head keeps its init
    if variant != warm.variant and not grows:
        raise UserError(
            f"--model.init_from: {warm.source} is the {warm.variant!r} network variant, this run builds {net.variant!r}: set --model.variant {warm.variant}"
        )
    n_styles = int(getattr(net, "n_styles", 1))
    # A single-style source may start a multi-style run: its γ, β go into every style's row, so
    # training starts from a net that already reconstructs photos and only has to tell the styles
    # apart (the shared convolutions are most of the work on a CPU budget).
    broadcast = warm.n_styles == 1 and n_styles > 1
    if n_styles != warm.n_styles and not broadcast:
        raise UserError(
            f"--model.init_from: {warm.source} holds {warm.n_styles} style(s), this run trains {n_styles}: to add styles to a trained network use --base"
        )
    own = net.state_dict()
    grown = {k for k in own if grows and k.startswith("head.")}
    missing = [k for k in own if k not in warm.state_dict and k not in grown]
    if missing:
        raise UserError(f"--model.init_from: {warm.source} lacks {len(missing)} weights, e.g. {missing[0]!r}")
    with torch.no_grad():
        for key, value in own.items():
            if key in grown:
                continue
            src = warm.state_dict[key]
            if broadcast and value.dim() == 2 and src.shape == value.shape[1:]:
                src = src.expand_as(value)  # a conditional norm's (n_styles, C) table from one (C,) row
            if src.shape != value.shape:
                raise UserError(f"--model.init_from: {warm.source}: {key} has shape {tuple(src.shape)}, expected {tuple(value.shape)}")
            value.copy_(src)
