"""In-browser inference: the routes that hand the page a style's model and onnxruntime-web's
files, and what GET /v1/styles says about them.

    GET /v1/styles/{name}/model[?v=HASH]   the style's .onnx, exactly the bytes the server runs
    GET /ort/{version}/{file}              onnxruntime-web's JS and wasm (inference/web_runtime.py)

Model downloads follow the API's rules: the token (from headers: the page fetches with
Authorization), names looked up among the served styles (never a path), JSON errors. Caching:
the listing links each model as `model?v=<first 16 hex of its sha256>`; a request whose `v` is the
current hash gets a year of max-age (`immutable`: the URL changes when the model does), any other
request `no-cache`, i.e. revalidation. Both carry the ETag (the sha256), and If-None-Match
answers 304, so a reload of the page costs no download and a changed model is never served stale.

The runtime files are public like the page's own scripts (ES module imports and workers cannot
send an Authorization header). Their URL holds the version, so they are cached for a year too.
They carry COEP/CORP because the page is cross-origin isolated (for WASM threads, which need
SharedArrayBuffer) and the pthread workers are started from these files.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, Response

from stylecast.inference.contract import INPUT_NAME, MIN_SIDE, OUTPUT_NAME, SIZE_MULTIPLE, parse_architecture
from stylecast.inference.server_config import ServerConfig
from stylecast.inference.server_limits import ApiError
from stylecast.inference.server_models import LoadedStyle
from stylecast.inference.server_state import ServerState
from stylecast.inference.web_runtime import MEDIA_TYPES

YEAR_S = 365 * 86400
VERSION_CHARS = 16  # of the sha256, in the model's URL: collisions between one style's versions are moot
# The ⚡ webcam badge and the 640×480 recommendation go to the architectures built for camera rate on
# a CPU: the tiny variants (starry_night_tiny 27.8 FPS at 640×480 frame by frame in the page, server
# path, 2 cores). The slim Johnson nets (width 0.5, 10.2 GMAC a 640×480 frame) drew 3.5–6.4 FPS there
# and 14.8 at 320×240: no badge, 320×240 recommended (issue 16; BENCHMARKS.md, "Webcam page").
REALTIME_VARIANTS = ("tiny", "tiny_fullres")
NO_MODELS = "this server stylizes every frame itself: it does not hand out its models (started with --no-browser-models)"
ISOLATION_HEADERS = {"Cross-Origin-Embedder-Policy": "require-corp", "Cross-Origin-Resource-Policy": "same-origin"}


def is_realtime(metadata: dict[str, Any]) -> bool:
    """Whether the metadata's architecture is one of the real-time variants (not the style's name:
    a `*_slim` net is not real time on a CPU)."""
    arch = parse_architecture(metadata.get("architecture", ""))
    return arch is not None and arch.variant in REALTIME_VARIANTS


def tensor_contract() -> dict[str, Any]:
    """The network's input and output as the page must feed and read them (contract.py)."""
    image = {"type": "float32", "shape": ["N", 3, "H", "W"], "channels": "RGB", "range": [0, 1]}
    return {
        "input": {
            "name": INPUT_NAME,
            **image,
            "size_multiple": SIZE_MULTIPLE,
            "min_side": MIN_SIDE,
            "padding": "reflect, at the bottom and right, cropped back from the output",
        },
        "output": {"name": OUTPUT_NAME, **image},
    }


def style_browser_info(loaded: LoadedStyle, config: ServerConfig) -> dict[str, Any]:
    """The "browser" entry of one style in GET /v1/styles."""
    realtime = is_realtime(loaded.stylizer.metadata)
    info: dict[str, Any] = {"realtime": realtime, "recommended_size": [640, 480] if realtime else [320, 240], **tensor_contract()}
    if loaded.stylizer.styles:  # the page's runtime feeds one input; a multi-style model takes two
        info["reason"] = "multi-style models run on the server"
    elif config.browser_models:
        info.update(model_url=f"v1/styles/{quote(loaded.name, safe='')}/model?v={loaded.sha256[:VERSION_CHARS]}", sha256=loaded.sha256, bytes=len(loaded.model))
    return info


def runtime_info(state: ServerState) -> dict[str, Any]:
    """The "browser_runtime" entry of GET /v1/styles: can the page run styles itself, and how."""
    if not state.config.browser_models:
        return {"available": False, "reason": NO_MODELS}
    return state.web_runtime.info()


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match against our strong ETag, with the weak comparison RFC 9110 asks for here."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)


def add_browser_routes(app: FastAPI, state: ServerState, require_token) -> None:
    @app.get(
        "/v1/styles/{name}/model",
        tags=["styles"],
        response_class=Response,
        dependencies=[Depends(require_token)],
        summary="The style's ONNX file, for running it in the browser (ETag; 304 on If-None-Match)",
        responses={
            200: {"content": {"application/octet-stream": {}}},
            304: {"description": "not modified"},
            403: {"description": "the server does not hand out its models"},
            404: {"description": "no such style"},
        },
    )
    async def model(
        request: Request, name: str, v: str | None = Query(None, max_length=64, description="the version the listing links; a current one is cached for a year")
    ):
        if not state.config.browser_models:
            raise ApiError(403, "forbidden", NO_MODELS)
        loaded = state.style(name)
        current = v is not None and v == loaded.sha256[:VERSION_CHARS]
        headers = {
            "ETag": f'"sha256-{loaded.sha256}"',
            "Cache-Control": f"private, max-age={YEAR_S}, immutable" if current else "private, no-cache",
            "Content-Disposition": f'attachment; filename="{quote(loaded.name, safe="")}.onnx"',
        }
        if etag_matches(request.headers.get("if-none-match"), headers["ETag"]):
            return Response(status_code=304, headers=headers)
        return Response(loaded.model, media_type="application/octet-stream", headers=headers)

    @app.get("/ort/{version}/{name}", include_in_schema=False)
    async def runtime_file(request: Request, version: str, name: str):
        runtime = state.web_runtime
        path = runtime.path(name) if version == runtime.version else None
        if path is None:
            raise ApiError(404, "not_found", runtime.reason or "no such file of the in-browser runtime")
        headers = {"ETag": runtime.etag(name), "Cache-Control": f"public, max-age={YEAR_S}, immutable", **ISOLATION_HEADERS}
        if etag_matches(request.headers.get("if-none-match"), headers["ETag"]):
            return Response(status_code=304, headers=headers)
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=headers)
