"""A Stylizer whose network runs on a server that speaks the Open Inference Protocol (KServe v2):
`stylecast serve`, NVIDIA Triton (a repository from `stylecast export-repository`) or KServe.

    stylizer = remote_stylizer("http://gpu-box:8000", "starry_night")
    stylizer(photo, size=512, strength=0.8)     # resize, blend and colour handling stay local

Only the network's pass travels: float32 NCHW tensors in the protocol's binary extension, one
request per batch (send same-size images together and the server runs them as one batch). The
style spelling is the CLI's (inference/mix.py): a model name, MODEL/STYLE of a multi-style model,
or a mix of one model's styles. Standard library HTTP only: no new dependency for a serving install.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from stylecast.errors import UserError
from stylecast.inference import mix
from stylecast.inference.contract import INPUT_NAME, OUTPUT_NAME, STYLE_WEIGHTS_NAME
from stylecast.inference.stylizer import Stylizer, native_size_of

HEADER_LENGTH = "Inference-Header-Content-Length"


class V2Client:
    """The few v2 calls a stylizer needs, with one-line UserErrors naming the server."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 120.0):
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise UserError(f"--server: {url!r} is not an http:// or https:// URL")
        self.token, self.timeout = token, timeout

    def _request(self, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[bytes, dict[str, str]]:
        req = urllib.request.Request(self.url + path, data=body, headers=dict(headers or {}), method="POST" if body is not None else "GET")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read(), {k.lower(): v for k, v in resp.headers.items()}
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("error") or exc.reason
            except (ValueError, AttributeError):
                detail = exc.reason
            raise UserError(f"--server {self.url}: {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UserError(f"--server {self.url}: cannot connect ({reason})") from None

    def model_metadata(self, model: str) -> dict:
        data, _ = self._request(f"/v2/models/{urllib.request.quote(model, safe='')}")
        return json.loads(data)

    def infer(self, model: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        inputs, blobs = [], []
        for name, array in feeds.items():
            blob = np.ascontiguousarray(array, "<f4").tobytes()
            inputs.append({"name": name, "shape": list(array.shape), "datatype": "FP32", "parameters": {"binary_data_size": len(blob)}})
            blobs.append(blob)
        head = json.dumps({"inputs": inputs, "outputs": [{"name": OUTPUT_NAME, "parameters": {"binary_data": True}}]}).encode()
        data, headers = self._request(
            f"/v2/models/{urllib.request.quote(model, safe='')}/infer",
            head + b"".join(blobs),
            {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(head))},
        )
        n = int(headers.get(HEADER_LENGTH.lower(), len(data)))
        reply = json.loads(data[:n])
        out = next((o for o in reply.get("outputs", []) if o.get("name") == OUTPUT_NAME), None)
        if out is None:
            raise UserError(f"--server {self.url}: the reply has no {OUTPUT_NAME!r} output")
        shape = out["shape"]
        if "data" in out:  # a server that ignored the binary request
            return np.asarray(out["data"], np.float32).reshape(shape)
        return np.frombuffer(data[n : n + int(np.prod(shape)) * 4], "<f4").reshape(shape).copy()


class _RemoteBackend:
    name = "remote"

    def __init__(self, client: V2Client, model: str):
        self.client, self.model = client, model
        self.device = client.url
        self.providers = [f"v2:{client.url}/v2/models/{model}"]

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.client.infer(self.model, {INPUT_NAME: x})

    def run_feeds(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        return [self.client.infer(self.model, feeds)]


class RemoteStylizer(Stylizer):
    """Stylizer's options (size, strength, colour, mixes, batches) around a remote network pass."""

    def __init__(self, client: V2Client, model: str):  # noqa: D107  (no model file: Stylizer.__init__ is not called)
        meta = client.model_metadata(model)
        names = [i.get("name") for i in meta.get("inputs", [])]
        if INPUT_NAME not in names:
            raise UserError(f"--server {client.url}: model {model!r} has inputs {names}, not a stylecast style model (input {INPUT_NAME!r})")
        self.path = Path(model)
        self.name = model
        self.metadata = {k: str(v) for k, v in (meta.get("parameters") or {}).items() if not isinstance(v, list)}
        style_names = list((meta.get("parameters") or {}).get("styles") or [])
        if STYLE_WEIGHTS_NAME in names and not style_names:  # a plain Triton model: styles by index
            n = next(i["shape"][-1] for i in meta["inputs"] if i["name"] == STYLE_WEIGHTS_NAME)
            style_names = [str(k) for k in range(int(n))]
        self.styles = [{"name": n} for n in style_names]
        self.style_names = style_names
        self.style_weights = None
        # our server passes the model's metadata on; a plain Triton model has none
        self.native_size = native_size_of(self.metadata, f"--server {client.url}: model {model!r}")
        self._backend = _RemoteBackend(client, model)
        self.backend, self.device, self.providers = "remote", client.url, list(self._backend.providers)
        self.precision = "server's"
        self._tin, self._tin_lock = None, threading.Lock()

    def stylize_tiled(self, *args, **kwargs):
        raise UserError("--tile runs the network in pieces locally; it is not available with --server")


def remote_stylizer(url: str, style: str, token: str | None = None) -> RemoteStylizer:
    """The style (a model name, MODEL/STYLE, or a mix of one model's styles) on the server at `url`."""
    terms = mix.parse(style)
    model = mix.model_of(terms)  # MODEL/ once applies to every term
    if model is None and len(terms) > 1:
        # the server is not searched for the model holding the styles: the mix names it
        raise UserError(f"--server: name the model of a mix, e.g. MODEL/{terms[0].name}:{terms[0].weight:g},... ({style!r})")
    client = V2Client(url, token)
    if model is None:  # a single-style model by its name
        return RemoteStylizer(client, terms[0].name)
    stylizer = RemoteStylizer(client, model)
    unknown = [t.name for t in terms if t.name not in stylizer.style_names]
    if unknown:
        raise UserError(f"--server: model {model!r} has no style {unknown[0]!r}; its styles: {', '.join(stylizer.style_names)}")
    return stylizer.with_style(mix.normalized(terms), name=style)
