"""The Kubernetes and KServe manifests name only what the server has: every probe path answers 200
on a running `stylecast serve`, the port is the one the container's command binds, the grace
period outlasts the SIGTERM drain, and the metrics path is the server's."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from server_fixtures import ServerProcess, tiny_models  # noqa: F401  (fixture)

yaml = pytest.importorskip("yaml")
ROOT = Path(__file__).resolve().parents[1]


def documents(path: Path) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all(path.read_text()) if d}


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):  # noqa: F811
    proc = ServerProcess(tiny_models, tmp_path_factory.mktemp("deploy-server")).start()
    yield proc
    proc.stop()


def test_probes_port_metrics_and_grace_period_match_the_server(server):
    from stylecast.inference.server_config import ServerConfig

    docs = documents(ROOT / "deploy" / "k8s" / "stylecast.yaml")
    assert set(docs) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    pod = docs["Deployment"]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    args = container["args"]
    assert args[0] == "serve" and int(args[args.index("--port") + 1]) == ports["http"] and args[args.index("--host") + 1] == "0.0.0.0"
    probes = [container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]]
    assert {p["port"] for p in probes} == {"http"}
    annotations = pod["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == ports["http"]
    for path in [p["path"] for p in probes] + [annotations["prometheus.io/path"]]:
        r = httpx.get(server.url + path.lstrip("/"), timeout=30)
        assert r.status_code == 200, (path, r.status_code)
    assert "stylecast_" in httpx.get(server.url + annotations["prometheus.io/path"].lstrip("/"), timeout=30).text
    config = ServerConfig()
    drain = config.drain_seconds if config.drain_seconds is not None else config.deadline + 5
    assert pod["spec"]["terminationGracePeriodSeconds"] > drain
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    assert docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == docs["Deployment"]["metadata"]["name"]


def test_kserve_service_speaks_v2_and_the_dockerfile_serves_without_torch():
    isvc = documents(ROOT / "deploy" / "kserve" / "inferenceservice.yaml")["InferenceService"]
    model = isvc["spec"]["predictor"]["model"]
    assert (model["protocolVersion"], model["modelFormat"]["name"]) == ("v2", "onnx")
    docker = (ROOT / "Dockerfile").read_text()
    assert "'.[serve]'" in docker and "USER 10001" in docker and "torch" not in docker.replace("no torch", "")
    assert 'CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]' in docker
