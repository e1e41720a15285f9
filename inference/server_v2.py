"""The Open Inference Protocol (KServe v2 REST) on `stylecast serve`, beside our /v1 routes.

The same client then works against this server, NVIDIA Triton and KServe (which run the
repository `stylecast export-repository` writes). A model is one .onnx file, as in that
repository: a single-style model is its style's name; a multi-style file is its file name
(`painters`), with a second input `style_weights` (one float per style: a one-hot picks a style,
a convex mix blends them).

    GET  /v2                        server metadata (extensions: binary_tensor_data)
    GET  /v2/health/live|ready      200, or 503 while loading or draining
    GET  /v2/models/{model}         inputs/outputs: content FP32 [-1,3,-1,-1] (+ style_weights FP32 [-1,N]) -> stylized
    GET  /v2/models/{model}/ready
    POST /v2/models/{model}/infer   JSON tensors, or the binary tensor extension
                                    (Inference-Header-Content-Length, binary_data_size, binary_data)

Tensors are the network's own contract: float32 NCHW RGB in [0, 1], no decoding or encoding (the
client sends pixels). The server's limits hold: the body size, the pixels per request (batch × H ×
W ≤ max_pixels), the token, the queue (503 when full) and the deadline (504). Errors are
{"error": "sentence"}, the protocol's shape (tritonclient raises it as InferenceServerException).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from stylecast import __version__
from stylecast.inference.contract import INPUT_NAME, OUTPUT_NAME, STYLE_WEIGHTS_NAME
from stylecast.inference.server_jobs import run_job
from stylecast.inference.server_limits import ApiError, read_body
from stylecast.inference.server_state import ServerState

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_TYPE = "application/octet-stream"
DTYPES = {"FP32": np.float32}


@dataclass(frozen=True)
class V2Model:
    name: str
    stylizer: Any  # inference.stylizer.Stylizer (for a multi-style file: a view; weights come with each request)
    n_styles: int  # 0: single-style


def v2_error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": detail}, status_code=status, headers=headers)


def served_models(state: ServerState) -> dict[str, V2Model]:
    """The v2 view of what is loaded: one model per file (a multi-style file's styles share one)."""
    models: dict[str, V2Model] = {}
    for name, loaded in state.models.current.items():
        model, slash, _ = name.rpartition("/")
        if slash:
            models.setdefault(model, V2Model(model, loaded.stylizer, len(loaded.stylizer.styles)))
        else:
            models[name] = V2Model(name, loaded.stylizer, 0)
    return models


def model_metadata(m: V2Model) -> dict[str, Any]:
    inputs = [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, 3, -1, -1]}]
    if m.n_styles:
        inputs.append({"name": STYLE_WEIGHTS_NAME, "datatype": "FP32", "shape": [-1, m.n_styles]})
    meta = m.stylizer.metadata
    return {
        "name": m.name,
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": inputs,
        "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, 3, -1, -1]}],
        "parameters": {
            "styles": list(m.stylizer.style_names),
            "recipe": meta.get("recipe", ""),
            "steps": meta.get("steps", ""),
            # the size `stylecast stylize --server` scales larger photos down to (contract.NATIVE_SCALE)
            "native_size": meta.get("native_size", ""),
        },
    }


def _tensor(spec: dict, blob: bytes | None, name: str) -> np.ndarray:
    """One request input -> an array of its declared shape (400 with the reason otherwise)."""
    shape, dtype = spec.get("shape"), spec.get("datatype")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ApiError(400, "bad_request", f"input {name!r}: 'shape' must be a list of non-negative integers")
    if dtype not in DTYPES:
        raise ApiError(400, "bad_request", f"input {name!r}: datatype {dtype!r} is not supported; send FP32")
    count = int(np.prod(shape)) if shape else 1
    if blob is not None:
        if len(blob) != count * 4:
            raise ApiError(400, "bad_request", f"input {name!r}: {len(blob)} bytes of binary data for shape {shape} (expected {count * 4})")
        return np.frombuffer(blob, dtype="<f4").reshape(shape)
    data = spec.get("data")
    if not isinstance(data, list):
        raise ApiError(400, "bad_request", f"input {name!r}: no 'data' and no binary_data_size")
    try:
        array = np.asarray(data, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        raise ApiError(400, "bad_request", f"input {name!r}: 'data' must be numbers") from None
    if array.size != count:
        raise ApiError(400, "bad_request", f"input {name!r}: {array.size} values for shape {shape} (expected {count})")
    return array.reshape(shape)


def parse_infer_request(body: bytes, header_length: str | None) -> tuple[dict, dict[str, np.ndarray]]:
    """The request's JSON header and its inputs by name (JSON data or binary blobs after the header)."""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise ApiError(400, "bad_request", f"{HEADER_LENGTH} must be an integer") from None
        if not 0 < n <= len(body):
            raise ApiError(400, "bad_request", f"{HEADER_LENGTH} {n} does not fit a body of {len(body)} bytes")
        head, rest = body[:n], body[n:]
    else:
        head, rest = body, b""
    try:
        request = json.loads(head)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "bad_request", "the request is not valid JSON") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise ApiError(400, "bad_request", "the request needs an 'inputs' list")
    inputs, offset = {}, 0
    for spec in request["inputs"]:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ApiError(400, "bad_request", "each input needs a 'name'")
        size = (spec.get("parameters") or {}).get("binary_data_size")
        blob = None
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(rest):
                raise ApiError(400, "bad_request", f"input {spec['name']!r}: binary_data_size {size!r} does not fit the body")
            blob, offset = rest[offset : offset + size], offset + size
        inputs[spec["name"]] = _tensor(spec, blob, spec["name"])
    return request, inputs


def check_inputs(m: V2Model, inputs: dict[str, np.ndarray], max_pixels: int) -> tuple[np.ndarray, np.ndarray | None]:
    expected = [INPUT_NAME, STYLE_WEIGHTS_NAME] if m.n_styles else [INPUT_NAME]
    if sorted(inputs) != sorted(expected):
        raise ApiError(400, "bad_request", f"model {m.name!r} takes inputs {expected}, got {sorted(inputs)}")
    x = inputs[INPUT_NAME]
    if x.ndim != 4 or x.shape[1] != 3 or 0 in x.shape:
        raise ApiError(400, "bad_request", f"input {INPUT_NAME!r} must be [N, 3, H, W] with N, H, W > 0, got {list(x.shape)}")
    if x.shape[0] * x.shape[2] * x.shape[3] > max_pixels:
        raise ApiError(413, "payload_too_large", f"{x.shape[0]} x {x.shape[2]} x {x.shape[3]} pixels: over the server's {max_pixels} per request")
    weights = None
    if m.n_styles:
        weights = inputs[STYLE_WEIGHTS_NAME]
        if weights.shape != (x.shape[0], m.n_styles):
            raise ApiError(400, "bad_request", f"input {STYLE_WEIGHTS_NAME!r} must be [{x.shape[0]}, {m.n_styles}], got {list(weights.shape)}")
        if not np.isfinite(weights).all() or (weights < 0).any():
            raise ApiError(400, "bad_request", f"input {STYLE_WEIGHTS_NAME!r}: weights must be finite and >= 0")
    if not np.isfinite(x).all():
        raise ApiError(400, "bad_request", f"input {INPUT_NAME!r} holds NaN or infinity")
    return np.ascontiguousarray(x, np.float32), weights


def infer_response(request: dict, model: str, out: np.ndarray) -> Response:
    """JSON, or the binary extension when the request asked for it (per output or as the default)."""
    wanted = {o.get("name"): o for o in request.get("outputs") or [] if isinstance(o, dict)}
    params = (wanted.get(OUTPUT_NAME) or {}).get("parameters") or {}
    binary = params.get("binary_data", (request.get("parameters") or {}).get("binary_data_output", False))
    body: dict[str, Any] = {"model_name": model, "model_version": "1", "outputs": []}
    if "id" in request:
        body["id"] = request["id"]
    tensor: dict[str, Any] = {"name": OUTPUT_NAME, "datatype": "FP32", "shape": list(out.shape)}
    if binary:
        blob = np.ascontiguousarray(out, "<f4").tobytes()
        tensor["parameters"] = {"binary_data_size": len(blob)}
        body["outputs"].append(tensor)
        head = json.dumps(body).encode()
        return Response(head + blob, media_type=BINARY_TYPE, headers={HEADER_LENGTH: str(len(head))})
    tensor["data"] = out.reshape(-1).tolist()
    body["outputs"].append(tensor)
    return JSONResponse(body)


def add_v2_routes(app: FastAPI, state: ServerState, require_token) -> None:
    config = state.config

    def model_or_404(name: str) -> V2Model:
        m = served_models(state).get(name)
        if m is None:
            raise ApiError(404, "unknown_model", f"no model named {name!r}" if name.replace("_", "").isalnum() else "no model by that name")
        return m

    def guarded(handler):
        """Our ApiErrors in the protocol's shape: {"error": sentence}."""

        @functools.wraps(handler)
        async def wrapper(*args, **kwargs):
            try:
                return await handler(*args, **kwargs)
            except ApiError as exc:
                return v2_error(exc.status, exc.detail, exc.headers)

        return wrapper

    @app.get("/v2", tags=["v2"], summary="Open Inference Protocol: server metadata", dependencies=[Depends(require_token)])
    async def server_metadata():
        return {"name": "stylecast", "version": __version__, "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live", tags=["v2"], summary="Open Inference Protocol: live")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready", tags=["v2"], summary="Open Inference Protocol: ready (models loaded, not draining)")
    async def ready():
        reason = state.ready_reason()
        if reason is not None:
            return v2_error(503, reason, {"Retry-After": "2"})
        return {"ready": True}

    @app.get("/v2/models/{model}", tags=["v2"], summary="Open Inference Protocol: model metadata", dependencies=[Depends(require_token)])
    @guarded
    async def metadata(model: str):
        return model_metadata(model_or_404(model))

    @app.get("/v2/models/{model}/ready", tags=["v2"], summary="Open Inference Protocol: model ready", dependencies=[Depends(require_token)])
    @guarded
    async def model_ready(model: str):
        model_or_404(model)
        state.require_ready()
        return {"name": model, "ready": True}

    @app.post(
        "/v2/models/{model}/infer", tags=["v2"], summary="Open Inference Protocol: inference (JSON or binary tensors)", dependencies=[Depends(require_token)]
    )
    @guarded
    async def infer(model: str, request: Request):
        state.require_ready()
        m = model_or_404(model)
        body = await read_body(request.stream(), request.headers.get("content-length"), config.max_body_bytes, config.body_timeout)
        req, inputs = parse_infer_request(body, request.headers.get(HEADER_LENGTH))
        x, weights = check_inputs(m, inputs, config.max_pixels)

        def job(check):
            return m.stylizer.run(x, style_weights=weights) if weights is not None else m.stylizer.run(x)

        result = await run_job(request, state, job, config.deadline)
        state.metrics.inference_seconds.observe(result.run_seconds, style=f"{model} (v2)")
        state.metrics.queue_seconds.observe(result.queue_seconds)
        return infer_response(req, model, result.value)
