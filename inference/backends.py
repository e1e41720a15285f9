"""Runtimes that execute an exported style model: ONNX Runtime (CPU/CUDA/TensorRT) and OpenVINO (CPU).

Both take and return float32 NCHW arrays under the names in `stylecast.inference.contract`; everything else
(padding, tiling, strength, colour) is the stylizer's and is shared by both.

Why two: ONNX Runtime's CPU path runs the net's convolutions at ~60% of this CPU's fp32 peak;
OpenVINO reads the same .onnx file and, with INFERENCE_PRECISION_HINT=bf16 on CPUs with bf16
matmul units (AMX, AVX512_BF16), runs it several times faster (issue 5; BENCHMARKS.md).
OpenVINO compiles for a static input shape, so compiled models are cached per shape and only the
first frame of a new size pays the compile.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Literal

import numpy as np

from stylecast.inference.contract import INPUT_NAME, META_PREFIX, OUTPUT_NAME, REQUIRED_METADATA, STYLE_WEIGHTS_NAME, STYLES_KEY
from stylecast.errors import UserError
from stylecast.flags import parse_device

log = logging.getLogger(__name__)

Device = str  # auto | cpu | cuda | cuda:N (stylecast.flags.parse_device)
BackendName = Literal["auto", "ort", "openvino"]
Precision = Literal["auto", "fp32", "bf16"]


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise UserError("onnxruntime is not installed; install it with pip install 'stylecast[serve]'") from None
    return onnxruntime


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def cuda_available() -> bool:
    return "CUDAExecutionProvider" in _ort().get_available_providers()


def cpu_has_bf16() -> bool:
    """True on CPUs with bf16 matmul instructions (Intel AMX, AVX512_BF16 on Xeon/EPYC)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    if "amx_bf16" in flags or "avx512_bf16" in flags:
        return True
    if not openvino_available():
        return False
    try:
        import openvino as ov

        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # a CPU plugin that does not answer is a CPU without bf16 for us
        return False


# ------------------------------------------------------------------------------------------------
# Model file checks (shared by both backends; ONNX Runtime parses the file, so no `onnx` package)


def model_styles(meta: dict[str, str], path: str | os.PathLike = "<model>") -> list[dict]:
    """A multi-style model's styles ({"name", "painting", ...} in the order of its weights); []
    for a single-style model. UserError for a style list that is not what the exporter writes."""
    text = meta.get(STYLES_KEY)
    if not text:
        return []
    try:
        styles = json.loads(text)
        names = [str(s["name"]) for s in styles]
    except (ValueError, TypeError, KeyError):
        raise UserError(f"{path}: metadata {META_PREFIX + STYLES_KEY} is not a list of styles with names") from None
    if len(styles) < 2 or len(set(names)) != len(names) or any(not n or "/" in n or "," in n or ":" in n for n in names):
        raise UserError(f"{path}: metadata {META_PREFIX + STYLES_KEY} needs two or more distinct names without '/', ',' or ':'")
    return [dict(s, name=str(s["name"])) for s in styles]


def read_model_info(path: str | os.PathLike) -> tuple[dict[str, str], "object"]:
    """Validate a style model and return (metadata without the prefix, the CPU ORT session).

    UserError naming the file when it is not ONNX, lacks the contract's metadata, or its input or
    output is not a float (N, 3, H, W) tensor under the contract's names; a multi-style model
    (metadata STYLES_KEY) must also take float style weights (N, n_styles), one per listed style.
    """
    ort = _ort()
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # InvalidProtobuf, Fail, NoSuchFile ... all mean "not a model we can run"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a valid ONNX model ({reason[:160]})") from None
    raw = session.get_modelmeta().custom_metadata_map
    meta = {k[len(META_PREFIX) :]: v for k, v in raw.items() if k.startswith(META_PREFIX)}
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    if missing:
        raise UserError(
            f"{path}: not a stylecast style model: metadata lacks {', '.join(META_PREFIX + k for k in missing)} (export it with `stylecast export`)"
        )
    inputs, outputs = session.get_inputs(), session.get_outputs()
    styles = model_styles(meta, path)
    expected = [INPUT_NAME, STYLE_WEIGHTS_NAME] if styles else [INPUT_NAME]
    if [i.name for i in inputs] != expected or OUTPUT_NAME not in [o.name for o in outputs]:
        raise UserError(
            f"{path}: expected input(s) {expected} and output {OUTPUT_NAME!r}, found inputs {[i.name for i in inputs]} and outputs {[o.name for o in outputs]}"
        )
    if styles:
        shape = list(inputs[1].shape)
        if inputs[1].type != "tensor(float)" or len(shape) != 2 or shape[1] != len(styles):
            raise UserError(f"{path}: {STYLE_WEIGHTS_NAME!r} must be float32 (N, {len(styles)}) for its {len(styles)} styles, found {inputs[1].type} {shape}")
    for arg in (inputs[0], next(o for o in outputs if o.name == OUTPUT_NAME)):
        shape = list(arg.shape)
        if arg.type != "tensor(float)" or len(shape) != 4 or shape[1] != 3:
            raise UserError(f"{path}: {arg.name!r} must be float32 (N, 3, H, W), found {arg.type} {shape}")
    return meta, session


# ------------------------------------------------------------------------------------------------
# ONNX Runtime


class OrtBackend:
    """`source`: a model file or serialized ONNX bytes."""

    name = "ort"

    def __init__(self, source: str | os.PathLike | bytes, *, device: Device = "auto", threads: int | None = None, session=None):
        ort = _ort()
        available = ort.get_available_providers()
        kind, index = parse_device(device)
        if kind == "cuda" and "CUDAExecutionProvider" not in available:
            raise UserError(
                f"--device {device}: onnxruntime has no CUDA provider here (available: {', '.join(available)}); install onnxruntime-gpu or use --device cpu"
            )
        use_cuda = kind == "cuda" or (kind == "auto" and "CUDAExecutionProvider" in available)
        providers: list = ["CPUExecutionProvider"]
        if use_cuda:
            # cudnn_conv_algo_search EXHAUSTIVE picks the fastest conv per shape once (like cudnn.benchmark).
            options = {"cudnn_conv_algo_search": "EXHAUSTIVE", "device_id": index or 0}
            providers = [("CUDAExecutionProvider", options), "CPUExecutionProvider"]
        self.device = ("cuda" if index is None else f"cuda:{index}") if use_cuda else "cpu"
        self.threads = threads
        if session is not None and not use_cuda and threads is None:
            self.session = session  # the validation session is already the CPU session we want
        else:
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            if threads:
                opts.intra_op_num_threads = int(threads)
                opts.inter_op_num_threads = 1
            model = source if isinstance(source, bytes) else str(source)
            self.session = ort.InferenceSession(model, opts, providers=providers)
        self.providers = list(self.session.get_providers())
        if use_cuda and "CUDAExecutionProvider" not in self.providers:
            # onnxruntime falls back to CPU silently when CUDA fails to initialise (driver, cuDNN).
            raise UserError(f"--device {self.device}: the CUDA provider failed to initialise (running providers: {', '.join(self.providers)})")

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]

    def run_feeds(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        return self.session.run(outputs, feeds)

    def derive(self, model_bytes: bytes) -> "OrtBackend":
        """The same runtime settings for another (rewritten) graph."""
        return OrtBackend(model_bytes, device=self.device, threads=self.threads)


# ------------------------------------------------------------------------------------------------
# OpenVINO


# Infer requests kept per thread (OpenVinoBackend._request).
REQUESTS_PER_THREAD = 2


class OpenVinoBackend:
    name = "openvino"
    device = "cpu"

    def __init__(self, source: str | os.PathLike | bytes, *, precision: Precision = "auto", threads: int | None = None, cache_size: int = 8):
        try:
            import openvino as ov
        except ImportError:
            raise UserError("--backend openvino: the openvino package is not installed; pip install 'stylecast[openvino]'") from None
        self._core = ov.Core()
        try:
            self._model = self._core.read_model(source if isinstance(source, bytes) else str(source))
        except Exception as exc:
            raise UserError(
                f"{'<model>' if isinstance(source, bytes) else source}: OpenVINO cannot read the model ({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__})"
            ) from None
        if precision == "auto":
            precision = "bf16" if cpu_has_bf16() else "fp32"
        if precision not in ("fp32", "bf16"):
            raise UserError(f"precision must be auto, fp32 or bf16, got {precision!r}")
        self.precision, self.threads, self.cache_size = precision, threads, cache_size
        self.config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
        self.providers = [f"OpenVINO CPU ({precision})"]
        self._compiled: OrderedDict[tuple, object] = OrderedDict()
        self._cache_size = max(1, int(cache_size))
        self._lock = threading.Lock()
        self._compiling: dict[tuple, threading.Lock] = {}
        self._local = threading.local()  # per thread: {id(compiled): (compiled, infer request)}

    def compiled(self, shapes: dict[str, tuple[int, ...]]):
        """The model compiled for static input shapes (LRU cache of `cache_size` shape sets)."""
        key = tuple(sorted((k, tuple(int(d) for d in v)) for k, v in shapes.items()))
        with self._lock:
            hit = self._compiled.get(key)
            if hit is not None:
                self._compiled.move_to_end(key)
                return hit
            key_lock = self._compiling.setdefault(key, threading.Lock())
        # One compile per size even when several callers meet a new size at once; callers of
        # other, cached sizes are not held up meanwhile.
        with key_lock:
            with self._lock:
                hit = self._compiled.get(key)
            if hit is not None:
                return hit
            model = self._model.clone()
            model.reshape({k: list(v) for k, v in key})
            compiled = self._core.compile_model(model, "CPU", self.config)
            with self._lock:
                self._compiled[key] = compiled
                self._compiling.pop(key, None)
                while len(self._compiled) > self._cache_size:
                    self._compiled.popitem(last=False)
        log.debug("OpenVINO compiled %s for %s", self.precision, key)
        return compiled

    def cached_shapes(self) -> list[tuple]:
        with self._lock:
            return list(self._compiled)

    def _request(self, compiled):
        """This thread's infer request for `compiled`. An infer request owns the network's
        intermediate buffers (tens of MB at 640x480): a fresh one per call made the kernel hand out
        and zero those pages again every frame (measured in the webcam stream: 6,800 page faults
        and 15 ms of system time per 640x480 frame, more than the network itself). One per thread
        keeps concurrent callers (server workers) independent; each thread keeps the requests of its
        last REQUESTS_PER_THREAD shapes (a webcam's one size stays warm; photos of ever new sizes do
        not pin a buffer set per size)."""
        requests = getattr(self._local, "requests", None)
        if requests is None:
            requests = self._local.requests = OrderedDict()
        hit = requests.get(id(compiled))
        if hit is not None and hit[0] is compiled:
            requests.move_to_end(id(compiled))
            return hit[1]
        while len(requests) >= REQUESTS_PER_THREAD:
            requests.popitem(last=False)
        requests[id(compiled)] = (compiled, compiled.create_infer_request())
        return requests[id(compiled)][1]

    def run_feeds(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        compiled = self.compiled({k: v.shape for k, v in feeds.items()})
        request = self._request(compiled)
        request.infer(feeds)
        return [np.array(request.get_tensor(name).data, dtype=np.float32, copy=True) for name in outputs]

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.run_feeds({INPUT_NAME: batch}, [OUTPUT_NAME])[0]

    def derive(self, model_bytes: bytes) -> "OpenVinoBackend":
        return OpenVinoBackend(model_bytes, precision=self.precision, threads=self.threads, cache_size=self.cache_size)


def make_backend(path, meta_session, *, device: Device, backend: BackendName, threads: int | None, precision: Precision = "auto"):
    """Pick the runtime. `auto`: OpenVINO on CPU when installed (faster on this class of CPU,
    BENCHMARKS.md), ONNX Runtime otherwise and whenever CUDA is asked for or present."""
    if backend not in ("auto", "ort", "openvino"):
        raise UserError(f"backend must be auto, ort or openvino, got {backend!r}")
    kind, _ = parse_device(device)
    if backend == "openvino":
        if kind == "cuda":
            raise UserError("--backend openvino runs on the CPU only; use --backend ort with --device cuda")
        return OpenVinoBackend(path, precision=precision, threads=threads)
    if backend == "auto" and kind != "cuda" and not (kind == "auto" and cuda_available()) and openvino_available():
        return OpenVinoBackend(path, precision=precision, threads=threads)
    return OrtBackend(path, device=device, threads=threads, session=meta_session)
