"""Trained style network -> one self-contained ONNX file, checked against torch.

`stylecast export CKPT -o STYLE.onnx` rebuilds `TransformerNet` from a Lightning checkpoint's
hyper-parameters and `net.*` weights (`torch.load(weights_only=True)`: no code from the file runs), exports it
with dynamic batch/height/width, writes the training facts into `metadata_props` (keys and I/O
names from `inference/contract.py`), runs `onnx.checker` with the full check, and compares ONNX
Runtime with torch at two sizes before the file appears (`stylecast.io.atomic_path`).

Exporter choice (measured, see the README section "Stylizing with ONNX"): the dynamo exporter
(`torch.onnx.export(..., dynamo=True)`) is the default; the legacy TorchScript exporter is kept
behind `exporter="legacy"` because torch says it will be removed.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch

from stylecast.inference.contract import (
    INPUT_NAME, IO_CONTRACT, META_PREFIX, MIN_SIDE, MULTI_IO_CONTRACT, OUTPUT_NAME, REQUIRED_METADATA, STYLE_WEIGHTS_NAME, STYLES_KEY, native_size_for,
)  # fmt: skip
from stylecast import __version__
from stylecast.errors import UserError
from stylecast.flags import ArgumentParser, add_force, add_quiet
from stylecast.io import atomic_path, check_new
from stylecast.training.checkpoints import load_checkpoint_file
from stylecast.training.styles import styles_of
from stylecast.training.transformer import TransformerNet

log = logging.getLogger(__name__)

Exporter = Literal["dynamo", "legacy"]
DEFAULT_OPSET = 18
# Parity bounds on the [0,1] output, ORT vs torch eager on the same input. fp32: the same math in
# a different summation order; measured 1e-5..2e-5 on tests' textured_net and up to 1e-4 on a net
# with a 5x wider pre-sigmoid range, so the bound is a quarter of one 8-bit level (1/255/4),
# invisible once saved. fp16 rounds every activation to 11 bits of mantissa: measured 4e-3 and
# 1.9e-2 on those two nets.
FP32_TOLERANCE = 1e-3
FP16_TOLERANCE = 3e-2
# fp16-stored weights, fp32 compute: only the weights' rounding (relative 2^-11) differs.
FP16_WEIGHTS_TOLERANCE = 5e-3
PARITY_SIZES: tuple[tuple[int, int], ...] = ((256, 256), (480, 640))


def parity_tolerance(fp16: bool = False, fp16_weights: bool = False) -> float:
    """The ORT-vs-torch bound an export of this precision must meet."""
    return FP16_TOLERANCE if fp16 else FP16_WEIGHTS_TOLERANCE if fp16_weights else FP32_TOLERANCE


# --------------------------------------------------------------------------------------------
# Checkpoint -> network


def load_checkpoint(ckpt_path: str | os.PathLike) -> tuple[TransformerNet, dict[str, Any], int]:
    """(net in eval mode, hyper_parameters, global_step) from a Lightning .ckpt (no Lightning import)."""
    path = Path(ckpt_path)
    ckpt = load_checkpoint_file(path)  # weights only: a .ckpt from elsewhere must not run code
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise UserError(f"{path}: not a Lightning checkpoint (no 'state_dict')")
    hparams = dict(ckpt.get("hyper_parameters") or {})
    # torch.compile'd modules may store their weights under `_orig_mod.`
    state = {k[len("net.") :].replace("_orig_mod.", ""): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    if not state:
        raise UserError(f"{path}: the checkpoint's state_dict has no 'net.*' weights")
    n_styles = max(1, len(styles_of(hparams)))
    net = TransformerNet(
        width=float(hparams.get("width", 1.0)),
        residual_blocks=int(hparams.get("residual_blocks", 5)),
        n_styles=n_styles,
        variant=str(hparams.get("variant") or "johnson"),
    )
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"{path}: 'net.*' weights do not fit {architecture(net)}: {first}") from None
    return net.eval(), hparams, int(ckpt.get("global_step", 0) or 0)


def architecture(net: TransformerNet) -> str:
    """The metadata's `architecture` (warm_start parses it back); n_styles only when > 1, so a
    single-style model reads as before."""
    styles = f", n_styles={net.n_styles}" if net.n_styles > 1 else ""
    variant = f", variant={net.variant}" if getattr(net, "variant", "johnson") != "johnson" else ""
    return f"TransformerNet(width={net.width:g}, residual_blocks={net.residual_blocks}{styles}{variant})"


def _layers_str(layers: Any) -> str:
    """content_layers/style_layers as stored in hparams (str, list, or {name: weight}) -> 'a:1.0,b:0.5'."""
    if layers is None:
        return ""
    if isinstance(layers, str):
        return layers
    if isinstance(layers, dict):
        return ",".join(f"{k}:{float(v):g}" for k, v in layers.items())
    return ",".join(str(x) for x in layers)


def metadata_from_checkpoint(hparams: dict[str, Any], global_step: int, *, style_name: str) -> dict[str, str]:
    """The contract's metadata (unprefixed keys) from a checkpoint's hyper-parameters."""
    style_image = hparams.get("style_image") or ""
    if isinstance(style_image, (list, tuple)):
        style_image = ",".join(Path(str(s)).name for s in style_image)
    else:
        style_image = Path(str(style_image)).name if style_image else ""
    width, blocks = float(hparams.get("width", 1.0)), int(hparams.get("residual_blocks", 5))
    styles = styles_of(hparams)
    if styles:  # every row's painting, the base's included (style_image holds this run's only)
        style_image = ",".join(s["painting"] for s in styles)
    meta = {
        "style_name": style_name,
        "style_image": style_image,
        "recipe": str(hparams.get("recipe") or ""),
        "steps": str(global_step),
        "content_weight": str(hparams.get("content_weight", "")),
        "style_weight": str(hparams.get("style_weight", "")),
        "tv_weight": str(hparams.get("tv_weight", "")),
        "content_layers": _layers_str(hparams.get("content_layers")),
        "style_layers": _layers_str(hparams.get("style_layers")),
        "architecture": architecture(TransformerNet(width, blocks, n_styles=max(1, len(styles)), variant=str(hparams.get("variant") or "johnson"))),
    }
    if styles:
        meta[STYLES_KEY] = json.dumps([{"name": s["name"], "painting": s["painting"], "style_weight": float(s.get("style_weight", 1.0))} for s in styles])
    for key in ("style_size", "image_size", "vgg_weights", "pooling"):
        if hparams.get(key) is not None:
            meta[key] = str(hparams[key])
    if hparams.get("style_size"):  # where its strokes have the painting's proportions (contract.NATIVE_SCALE)
        meta["native_size"] = str(native_size_for(int(hparams["style_size"])))
    if float(hparams.get("stability_weight") or 0) > 0:  # trained against flicker (training/stability.py)
        meta["stability_weight"] = f"{float(hparams['stability_weight']):g}"
    if float(hparams.get("stability_noise_weight") or 0) > 0:
        meta["stability_noise_weight"] = f"{float(hparams['stability_noise_weight']):g}"
    if hparams.get("init_from"):  # a warm start: what it started from and that source's steps
        meta["init_from"] = Path(str(hparams["init_from"])).name
        meta["init_steps"] = str(int(hparams.get("init_steps") or 0))
    if hparams.get("base"):  # styles added to a trained network: which, and its steps
        meta["base"] = Path(str(hparams["base"])).name
        meta["base_steps"] = str(int(hparams.get("base_steps") or 0))
    return meta


# --------------------------------------------------------------------------------------------
# Network -> ONNX


def _n_styles(net: torch.nn.Module) -> int:
    return int(getattr(getattr(net, "net", net), "n_styles", 1))  # HalfPrecision wraps the net


def _torch_export(net: torch.nn.Module, path: Path, opset: int, exporter: Exporter) -> None:
    example = torch.rand(1, 3, 64, 64)
    n_styles = _n_styles(net)
    # A multi-style net takes one weight row per image: (batch, n_styles), the content's batch.
    args = (example,) if n_styles == 1 else (example, torch.full((1, n_styles), 1.0 / n_styles))
    names = [INPUT_NAME] if n_styles == 1 else [INPUT_NAME, STYLE_WEIGHTS_NAME]
    with warnings.catch_warnings():
        # Both exporters warn about things that do not concern a plain conv net (the legacy one
        # about its own deprecation; dynamo about version conversion); tests check the result.
        warnings.simplefilter("ignore")
        # "torchvision is not installed. Skipping torchvision::nms": harmless, and noisy.
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        if exporter == "dynamo":
            batch, height, width = torch.export.Dim("batch"), torch.export.Dim("height", min=MIN_SIDE), torch.export.Dim("width", min=MIN_SIDE)
            shapes = {"x": {0: batch, 2: height, 3: width}}
            if n_styles > 1:
                shapes["style_weights"] = {0: batch}
            torch.onnx.export(
                net,
                args,
                str(path),
                dynamo=True,
                external_data=False,
                opset_version=opset,
                input_names=names,
                output_names=[OUTPUT_NAME],
                dynamic_shapes=shapes,
                optimize=True,
                verify=False,
                report=False,
                verbose=False,
            )
        elif exporter == "legacy":
            axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
            if n_styles > 1:
                axes[STYLE_WEIGHTS_NAME] = {0: "batch"}
            torch.onnx.export(
                net,
                args,
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=names,
                output_names=[OUTPUT_NAME],
                dynamic_axes=axes,
                do_constant_folding=True,
            )
        else:
            raise ValueError(f"exporter must be 'dynamo' or 'legacy', got {exporter!r}")


class HalfPrecision(torch.nn.Module):
    """fp16 weights and activations behind the contract's fp32 input and output (one Cast each side)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = copy.deepcopy(net).half()

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x.half(), None if style_weights is None else style_weights.half()).float()


def _name_dynamic_dims(model) -> None:
    """Input and output dims read (batch, 3, height, width). The dynamo exporter names the output's
    H as `Min(height, 4*(((height - 1)//4)) + 4)`, the crop after the upsamples, equal to height."""
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        for i, name in ((0, "batch"), (2, "height"), (3, "width")):
            if len(dims) == 4 and not dims[i].HasField("dim_value"):
                dims[i].dim_param = name
        if len(dims) == 2 and not dims[0].HasField("dim_value"):  # style_weights (batch, n_styles)
            dims[0].dim_param = "batch"


FP16_SUFFIX = "__fp16"  # an fp16-stored initializer's name: the fp32 one's + this (warm_start reads it back)


def store_weights_fp16(model, min_size: int = 64) -> int:
    """Store every float32 initializer of at least `min_size` values as float16 followed by a Cast
    back to float32: the file is half the size, the arithmetic stays fp32 (ONNX Runtime and
    OpenVINO fold the Casts when they load the model). Returns the number of tensors converted."""
    from onnx import TensorProto, helper, numpy_helper

    casts = []
    for init in model.graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < min_size:
            continue
        name = init.name
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), name + FP16_SUFFIX)
        init.CopyFrom(half)
        casts.append(helper.make_node("Cast", [half.name], [name], to=TensorProto.FLOAT, name=f"{name}__to_fp32"))
    nodes = [*casts, *model.graph.node]  # Casts before every consumer: still topologically sorted
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return len(casts)


def export_onnx(
    net: torch.nn.Module,
    path: str | os.PathLike,
    metadata: dict[str, str],
    *,
    opset: int = DEFAULT_OPSET,
    fp16: bool = False,
    fp16_weights: bool = False,
    exporter: Exporter = "dynamo",
) -> Path:
    """Export `net` (NCHW RGB [0,1] in and out) to one .onnx file at `path`, atomically.

    `metadata`: contract keys without the "stylecast." prefix; "io", "version" and "precision" are
    filled in. Raises ValueError for a missing required key. Returns the path written.
    fp16: fp16 weights and activations (GPUs). fp16_weights: weights stored in fp16, computed in
    fp32 (half the file, CPU speed unchanged).
    """
    if opset < 17:
        raise ValueError(f"opset must be 17 or newer, got {opset}")
    path = Path(path)
    meta = _full_metadata(metadata, fp16, fp16_weights)
    # The one atomic writer: a failed write is one line naming `path`, nothing left behind.
    with atomic_path(path) as tmp:
        _write_onnx(net.eval(), tmp, meta, opset, fp16, fp16_weights, exporter)
    return path


def _full_metadata(metadata: dict[str, str], fp16: bool, fp16_weights: bool) -> dict[str, str]:
    """The contract's keys (unprefixed) with io, version, precision and weight storage filled in;
    ValueError for a missing required key or contradictory precisions."""
    meta = {k[len(META_PREFIX) :] if k.startswith(META_PREFIX) else k: str(v) for k, v in metadata.items()}
    meta.setdefault("io", MULTI_IO_CONTRACT if STYLES_KEY in meta else IO_CONTRACT)
    meta.setdefault("version", __version__)
    meta["precision"] = "fp16" if fp16 else "fp32"
    if fp16 and fp16_weights:
        raise ValueError("fp16 already stores the weights in fp16; fp16_weights is for fp32 compute")
    if fp16_weights:
        meta["weight_storage"] = "fp16"
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    if missing:
        raise ValueError(f"metadata lacks required key(s): {', '.join(missing)}")
    return meta


def _write_onnx(net: torch.nn.Module, path: Path, meta: dict[str, str], opset: int, fp16: bool, fp16_weights: bool, exporter: Exporter) -> None:
    """export_onnx's work, written straight to `path` (the caller's temp file)."""
    import onnx

    n_styles = _n_styles(net)
    if n_styles > 1:  # the torch-free side names the rows from this list
        styles = json.loads(meta.get(STYLES_KEY) or "[]")
        if len(styles) != n_styles:
            raise ValueError(f"a {n_styles}-style network needs metadata {STYLES_KEY!r} listing {n_styles} styles, got {len(styles)}")

    # Scratch space for the exporter's raw file, beside the output (same disk, same limits).
    with tempfile.TemporaryDirectory(prefix=".export-", dir=path.parent) as scratch:
        raw = Path(scratch) / "raw.onnx"
        with torch.no_grad():
            _torch_export(HalfPrecision(net) if fp16 else net, raw, opset, exporter)
        model = onnx.load(str(raw), load_external_data=True)
        _name_dynamic_dims(model)
        if fp16_weights:
            store_weights_fp16(model)
        # The dynamo exporter annotates nodes with stack traces holding this machine's source
        # paths; a shipped model carries none of that.
        for node in model.graph.node:
            del node.metadata_props[:]
            node.doc_string = ""
        del model.metadata_props[:]
        for key, value in sorted(meta.items()):
            model.metadata_props.add(key=META_PREFIX + key, value=value)
        model.producer_name, model.producer_version = "stylecast", __version__
        onnx.checker.check_model(model, full_check=True)
        onnx.save_model(model, str(path), save_as_external_data=False)


# --------------------------------------------------------------------------------------------
# Parity


def parity_weights(n_styles: int, names: Sequence[str] | None = None, seed: int = 0) -> dict[str, torch.Tensor | None]:
    """The style-weight vectors a parity check runs: {"": None} for a single-style net; else each
    style's one-hot, by name, and "mix", a random convex mix of them all (seeded)."""
    if n_styles == 1:
        return {"": None}
    names = list(names) if names is not None else [f"style{k}" for k in range(n_styles)]
    eye = torch.eye(n_styles)
    mix = torch.rand(n_styles, generator=torch.Generator().manual_seed(seed + 1)) + 0.1
    return {**{name: eye[k] for k, name in enumerate(names)}, "mix": mix / mix.sum()}


def parity(
    net: torch.nn.Module,
    onnx_path: str | os.PathLike,
    sizes: Sequence[tuple[int, int]] = PARITY_SIZES,
    *,
    seed: int = 0,
    style_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Max |ORT - torch| after the sigmoid for a random photo-like batch of 1 at each (H, W):
    {"HxW": diff}; for a multi-style net per style and for a mix, {"HxW/NAME": diff, "HxW/mix": diff}."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    vectors = parity_weights(_n_styles(net), style_names, seed)
    out = {}
    for h, w in sizes:
        # smooth-ish input: low-res noise upsampled, like a photo rather than white noise
        x = torch.nn.functional.interpolate(
            torch.rand(1, 3, max(2, h // 16), max(2, w // 16), generator=gen), size=(h, w), mode="bilinear", align_corners=False
        )
        for name, weights in vectors.items():
            feeds = {INPUT_NAME: x.numpy()}
            if weights is not None:
                feeds[STYLE_WEIGHTS_NAME] = weights[None].numpy()
            with torch.no_grad():
                ref = net.eval()(x, *([] if weights is None else [weights[None]])).numpy()
            got = session.run([OUTPUT_NAME], feeds)[0]
            if got.shape != ref.shape:
                raise AssertionError(f"ONNX output shape {got.shape} != torch {ref.shape} at {h}x{w}")
            out[f"{h}x{w}" + (f"/{name}" if name else "")] = float(np.abs(got.astype(np.float32) - ref).max())
    return out


def export_checkpoint(
    ckpt_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    style_name: str | None = None,
    opset: int = DEFAULT_OPSET,
    fp16: bool = False,
    fp16_weights: bool = False,
    exporter: Exporter = "dynamo",
    check: bool = True,
    tolerance: float | None = None,
) -> dict[str, Any]:
    """Checkpoint -> ONNX file, then ORT-vs-torch parity at 256² and 480x640.

    Returns {"path", "parity" ({size: max abs diff}), "tolerance", "metadata"}. A parity failure
    raises UserError and writes nothing.
    """
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".onnx":
        raise UserError(f"{out_path}: output file must end in .onnx")
    if not out_path.parent.is_dir():
        raise UserError(f"{out_path}: folder {out_path.parent} does not exist")
    net, hparams, step = load_checkpoint(ckpt_path)
    name = style_name or out_path.stem
    meta = metadata_from_checkpoint(hparams, step, style_name=name)
    result: dict[str, Any] = {"path": out_path, "metadata": meta, "parity": {}, "tolerance": None}
    # Checked under a temporary name, renamed only when it passes: a failed export neither leaves
    # an unchecked model behind nor destroys an existing file of that name.
    with atomic_path(out_path) as tmp:
        _write_onnx(net.eval(), tmp, _full_metadata(meta, fp16, fp16_weights), opset, fp16, fp16_weights, exporter)
        if check:
            tol = tolerance if tolerance is not None else parity_tolerance(fp16, fp16_weights)
            names = [s["name"] for s in json.loads(meta[STYLES_KEY])] if STYLES_KEY in meta else None
            diffs = parity(net, tmp, style_names=names)
            result.update(parity=diffs, tolerance=tol)
            worst = max(diffs.values())
            if not worst <= tol:
                raise UserError(f"{out_path}: ONNX Runtime differs from torch by {worst:.2e} (> {tol:.0e}) at {diffs}; not written")
    return result


def parity_summary(diffs: dict[str, float]) -> str:
    """'256x256: 1.0e-05, ...'; for a multi-style model the worst per size over its styles and mix."""
    worst: dict[str, list[float]] = {}
    for key, value in diffs.items():
        worst.setdefault(key.split("/")[0], []).append(value)
    return ", ".join(f"{size}: {max(v):.1e}" + (f" (worst of {len(v)} style vectors)" if len(v) > 1 else "") for size, v in worst.items())


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="stylecast export", description="Export a trained checkpoint to ONNX, checked against torch.")
    p.add_argument("checkpoint", help="Lightning .ckpt written by `stylecast train`")
    p.add_argument("-o", "--output", required=True, help="STYLE.onnx to write (the style's name is the file stem unless --name)")
    p.add_argument("--name", default=None, help="style name stored in the model (default: output file stem)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset, >= 17 (default {DEFAULT_OPSET})")
    precision = p.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true", help="fp16 weights/activations (for GPUs; fp32 input/output kept)")
    precision.add_argument("--fp16-weights", action="store_true", help="store the weights in fp16, compute in fp32: half the file size")
    p.add_argument("--exporter", choices=("dynamo", "legacy"), default="dynamo", help="torch.onnx exporter (default dynamo)")
    p.add_argument("--no-check", action="store_true", help="skip the ORT-vs-torch parity check")
    add_force(p, "an existing output file")
    add_quiet(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.output)
    check_new([out], args.force, inputs=[args.checkpoint])
    if args.opset < 17:
        raise UserError(f"--opset must be 17 or newer, got {args.opset}")
    res = export_checkpoint(
        args.checkpoint,
        out,
        style_name=args.name,
        opset=args.opset,
        fp16=args.fp16,
        fp16_weights=args.fp16_weights,
        exporter=args.exporter,
        check=not args.no_check,
    )
    if args.quiet:
        return 0
    size_mb = out.stat().st_size / 1e6
    kind = "fp16" if args.fp16 else "fp32 with fp16-stored weights" if args.fp16_weights else "fp32"
    meta = res["metadata"]
    what = f"style {meta['style_name']!r}"
    if STYLES_KEY in meta:
        names = [s["name"] for s in json.loads(meta[STYLES_KEY])]
        what = f"{len(names)} styles {meta['style_name']}/{{{','.join(names)}}}"
    print(f"wrote {out} ({size_mb:.1f} MB, {kind}, {what}, {meta['steps']} steps)")
    if res["parity"]:
        print(f"parity vs torch (max abs diff, bound {res['tolerance']:.0e}): {parity_summary(res['parity'])}")
    return 0
