"""`stylecast export-repository`: the styles as an NVIDIA Triton model repository (KServe runs it too).

    OUT/<model>/config.pbtxt       ONNX Runtime backend, dynamic H and W, dynamic batching
    OUT/<model>/1/model.onnx       the exported file, unchanged

Our models are plain ONNX, so Triton runs them as they are; this writes the glue. One Triton model
per .onnx file: a multi-style file stays one model whose second input `style_weights` (one float
per style) picks or mixes its styles, as everywhere else in stylecast.

Batching: Triton's dynamic batcher merges only requests of identical shape. Clients that want
their requests batched send a few fixed sizes (buckets, e.g. 256×256, 480×640, 512×512) rather than
each photo's own size; the config says so in its parameters for whoever reads it.

Torch-free: it reads the files with ONNX Runtime (the contract check every stylecast model passes).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from stylecast.errors import UserError
from stylecast.inference.backends import read_model_info
from stylecast.inference.contract import OUTPUT_NAME
from stylecast.inference.registry import resolve_models_dir

# ONNX Runtime's type strings -> Triton's DataType names (model_config.proto)
TRITON_TYPES = {"tensor(float)": "TYPE_FP32", "tensor(float16)": "TYPE_FP16", "tensor(uint8)": "TYPE_UINT8"}
# The image sizes a client should send so that Triton can batch them (it batches equal shapes only).
SIZE_BUCKETS = "256x256,480x640,512x512,720x1280"


@dataclass(frozen=True)
class Tensor:
    name: str
    data_type: str
    dims: tuple[int, ...]  # without the batch dimension (max_batch_size > 0); -1 = any size


@dataclass(frozen=True)
class TritonModel:
    name: str
    source: Path
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    parameters: dict[str, str]


def _dims(shape: list, what: str, path: Path) -> tuple[int, ...]:
    # ONNX Runtime reports symbolic dimensions as strings (or None): those are Triton's -1.
    if not shape:
        raise UserError(f"{path}: {what} has no shape")
    return tuple(int(d) if isinstance(d, int) and d > 0 else -1 for d in shape[1:])


def _tensor(info, path: Path) -> Tensor:
    if info.type not in TRITON_TYPES:
        raise UserError(f"{path}: tensor {info.name!r} has type {info.type}, which Triton's ONNX backend config here does not map")
    return Tensor(info.name, TRITON_TYPES[info.type], _dims(list(info.shape), f"tensor {info.name!r}", path))


def describe(path: str | os.PathLike) -> TritonModel:
    """The Triton view of one stylecast model file (UserError naming the file when it is not one)."""
    path = Path(path)
    meta, session = read_model_info(path)
    inputs = tuple(_tensor(i, path) for i in session.get_inputs())
    outputs = tuple(_tensor(o, path) for o in session.get_outputs() if o.name == OUTPUT_NAME)
    params = {f"stylecast.{k}": v for k, v in sorted(meta.items())}
    params["stylecast.size_buckets"] = SIZE_BUCKETS
    return TritonModel(path.stem, path, inputs, outputs, params)


def _quote(text: str) -> str:
    """A protobuf text-format string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def config_pbtxt(model: TritonModel, *, max_batch_size: int = 8, kind: str = "KIND_CPU", instances: int = 1, queue_delay_us: int = 2000) -> str:
    """config.pbtxt (protobuf text format of Triton's ModelConfig) for one model."""

    def tensors(ts: tuple[Tensor, ...]) -> str:
        return ",\n".join(f"  {{\n    name: {_quote(t.name)}\n    data_type: {t.data_type}\n    dims: [ {', '.join(map(str, t.dims))} ]\n  }}" for t in ts)

    lines = [
        f"name: {_quote(model.name)}",
        'platform: "onnxruntime_onnx"',
        f"max_batch_size: {max_batch_size}",
        f"input [\n{tensors(model.inputs)}\n]",
        f"output [\n{tensors(model.outputs)}\n]",
        # a short wait lets concurrent same-size requests share one run of the network
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {queue_delay_us}\n}}",
        f"instance_group [\n  {{\n    count: {instances}\n    kind: {kind}\n  }}\n]",
    ]
    lines += [f"parameters {{\n  key: {_quote(k)}\n  value: {{ string_value: {_quote(v)} }}\n}}" for k, v in model.parameters.items()]
    return "\n".join(lines) + "\n"


def export_repository(
    out: str | os.PathLike, models_dir: str | os.PathLike | None = None, *, gpu: bool = False, max_batch_size: int = 8, instances: int = 1, force: bool = False
) -> list[TritonModel]:
    """Write the repository for every model in the models folder; all or nothing.

    It is built beside OUT and renamed into place, so a failure (a bad model file, a full disk)
    leaves no half-written repository and an existing OUT untouched (replaced only with force).
    """
    out = Path(out)
    if max_batch_size < 1 or instances < 1:
        raise UserError(f"--max-batch-size and --instances must be >= 1, got {max_batch_size} and {instances}")
    if out.exists() and not force:
        raise UserError(f"{out}: already exists (pass --force to replace it)")
    folder = resolve_models_dir(models_dir)
    files = sorted(folder.glob("*.onnx")) if folder.is_dir() else []
    if not files:
        raise UserError(f"{folder}: no .onnx models to export (--models-dir)")
    models = [describe(f) for f in files]  # every file checked before anything is written
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for m in models:
            (tmp / m.name / "1").mkdir(parents=True)
            shutil.copyfile(m.source, tmp / m.name / "1" / "model.onnx")
            (tmp / m.name / "config.pbtxt").write_text(
                config_pbtxt(m, max_batch_size=max_batch_size, kind="KIND_GPU" if gpu else "KIND_CPU", instances=instances)
            )
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"{out}: could not write the repository ({exc.strerror or exc})") from None
    return models


def main(argv: list[str] | None = None) -> int:
    from stylecast.flags import ArgumentParser, add_force, add_quiet

    p = ArgumentParser(
        prog="stylecast export-repository",
        description=(
            "Write the styles as an NVIDIA Triton model repository (OUT/<model>/config.pbtxt + OUT/<model>/1/model.onnx), "
            "which Triton and KServe (protocol v2) serve as they are. Triton batches only same-shape requests: "
            f"send a few fixed sizes (e.g. {SIZE_BUCKETS.replace(',', ', ')})."
        ),
    )
    p.add_argument("out", help="the repository folder to write")
    p.add_argument("--models-dir", help="models folder (default: $STYLECAST_MODELS, ./checkpoints, or the shipped styles)")
    p.add_argument("--gpu", action="store_true", help="instance_group KIND_GPU (default KIND_CPU)")
    p.add_argument("--max-batch-size", type=int, default=8, help="largest batch Triton's dynamic batcher forms (default 8)")
    p.add_argument("--instances", type=int, default=1, help="model instances per device (default 1)")
    add_force(p)
    add_quiet(p)
    args = p.parse_args(argv)
    try:
        models = export_repository(args.out, args.models_dir, gpu=args.gpu, max_batch_size=args.max_batch_size, instances=args.instances, force=args.force)
    except UserError as exc:
        print(f"stylecast export-repository: error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        for m in models:
            ins = ", ".join(f"{t.name} {t.data_type} [-1, {', '.join(map(str, t.dims))}]" for t in m.inputs)
            print(f"{args.out}/{m.name}: {ins}")
        print(f"wrote {len(models)} model(s) to {args.out} ({'GPU' if args.gpu else 'CPU'} instances, max batch {args.max_batch_size})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
