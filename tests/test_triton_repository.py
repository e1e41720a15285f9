"""`stylecast export-repository`: every config.pbtxt parses with Triton's own schema
(tritonclient's model_config_pb2) and matches its ONNX file; all-or-nothing writes; one-line errors."""

from __future__ import annotations

import json
import shutil

import onnx
import pytest

from server_fixtures import tiny_models  # noqa: F401  (fixture)
from stylecast.cli import main as stylecast_main
from test_multistyle_server import export_tiny_painters

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
text_format = pytest.importorskip("google.protobuf.text_format")

ONNX_TO_TRITON = {onnx.TensorProto.FLOAT: model_config_pb2.TYPE_FP32}


@pytest.fixture(scope="module")
def models(tiny_models, tmp_path_factory):  # noqa: F811
    folder = tmp_path_factory.mktemp("triton_models")
    for f in tiny_models.glob("*.onnx"):
        shutil.copy(f, folder / f.name)
    export_tiny_painters(folder / "painters.onnx")
    return folder


def parse(path) -> "model_config_pb2.ModelConfig":
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def onnx_io(path) -> dict[str, tuple[int, list]]:
    """name -> (element type, dims as Triton sees them: batch dropped, symbolic -1)."""
    g = onnx.load(str(path)).graph
    out = {}
    for v in [*g.input, *g.output]:
        t = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        out[v.name] = (t.elem_type, dims[1:])
    return out


def test_every_config_parses_with_tritons_schema_and_matches_its_onnx(models, tmp_path, capsys):
    out = tmp_path / "repo"
    assert stylecast_main(["export-repository", str(out), "--models-dir", str(models), "--max-batch-size", "4"]) == 0
    assert "wrote 3 model(s)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["alpha", "beta", "painters"]
    for folder in out.iterdir():
        onnx_path = folder / "1" / "model.onnx"
        assert onnx_path.read_bytes() == (models / f"{folder.name}.onnx").read_bytes()  # the file as exported
        cfg = parse(folder / "config.pbtxt")
        assert (cfg.name, cfg.platform, cfg.max_batch_size) == (folder.name, "onnxruntime_onnx", 4)
        assert cfg.dynamic_batching.max_queue_delay_microseconds == 2000
        assert [(g.kind, g.count) for g in cfg.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_CPU, 1)]
        io = onnx_io(onnx_path)
        declared = {t.name: (t.data_type, list(t.dims)) for t in [*cfg.input, *cfg.output]}
        assert declared == {name: (ONNX_TO_TRITON[etype], dims) for name, (etype, dims) in io.items()}
        params = {k: v.string_value for k, v in cfg.parameters.items()}
        assert params["stylecast.style_name"] == folder.name and params["stylecast.size_buckets"]
    painters = parse(out / "painters" / "config.pbtxt")
    assert [(t.name, list(t.dims)) for t in painters.input] == [("content", [3, -1, -1]), ("style_weights", [2])]
    assert [s["name"] for s in json.loads({k: v.string_value for k, v in painters.parameters.items()}["stylecast.styles"])] == ["dots", "waves"]


def test_gpu_instances_and_replacing_needs_force(models, tmp_path, capsys):
    out = tmp_path / "repo"
    assert stylecast_main(["export-repository", str(out), "--models-dir", str(models), "-q"]) == 0
    assert stylecast_main(["export-repository", str(out), "--models-dir", str(models), "--gpu"]) == 2
    assert capsys.readouterr().err == f"stylecast export-repository: error: {out}: already exists (pass --force to replace it)\n"
    assert stylecast_main(["export-repository", str(out), "--models-dir", str(models), "--gpu", "--instances", "2", "--force", "-q"]) == 0
    cfg = parse(out / "alpha" / "config.pbtxt")
    assert [(g.kind, g.count) for g in cfg.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_GPU, 2)]
    assert [p.name for p in tmp_path.iterdir()] == ["repo"]  # no temp or old folders left behind


def test_a_bad_model_file_writes_nothing(models, tmp_path, capsys):
    folder = tmp_path / "models"
    shutil.copytree(models, folder)
    (folder / "zz_broken.onnx").write_bytes(b"not a model")
    out = tmp_path / "repo"
    assert stylecast_main(["export-repository", str(out), "--models-dir", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"stylecast export-repository: error: {folder / 'zz_broken.onnx'}: not a valid ONNX model") and err.count("\n") == 1
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["models"]
    assert stylecast_main(["export-repository", str(out), "--models-dir", str(tmp_path / "nowhere")]) == 2
    assert "no .onnx models to export" in capsys.readouterr().err
