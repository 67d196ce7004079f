"""`edgeflow export triton`: repository layout, config.pbtxt read back, plugin shipping, refusals."""

import re
import subprocess
import sys

import pytest

import edgeflow.plugins as ef_plugins
from edgeflow.tensorrt_engines import rewrite_artifact
from edgeflow.artifact import Artifact, sha256_file
from edgeflow.errors import EdgeflowError
from edgeflow.triton import export_triton, model_config, TritonModel


def parse_config(text: str) -> dict:
    """Just enough of protobuf text format for what edgeflow writes."""
    def block(key):
        m = re.search(rf"^{key} \[\n(.*?)^\]", text, re.S | re.M)
        assert m, f"no {key} block"
        return [
            {"name": n, "data_type": t, "dims": [int(d) for d in dims.split(",")]}
            for n, t, dims in re.findall(r'name: "([^"]+)"\s+data_type: (\w+)\s+dims: \[ ([^\]]*) \]', m.group(1))
        ]

    groups = re.findall(r"count: (\d+)\s+kind: (\w+)", text)
    return {
        "name": re.search(r'^name: "([^"]+)"', text, re.M).group(1),
        "platform": re.search(r'^platform: "([^"]+)"', text, re.M).group(1),
        "max_batch_size": int(re.search(r"^max_batch_size: (\d+)", text, re.M).group(1)),
        "input": block("input"),
        "output": block("output"),
        "instance_group": [(int(c), k) for c, k in groups],
    }


def test_onnx_artifact_repository(small_artifact, tmp_path):
    repo = tmp_path / "repo"
    result = export_triton(small_artifact, repo, name="flow")
    model_dir = repo / "flow"
    assert result.platform == "onnxruntime_onnx" and result.plugin is None
    assert sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file()) == [
        "README.txt", "flow/1/model.onnx", "flow/config.pbtxt", "flow/edgeflow-manifest.json"]
    assert sha256_file(model_dir / "1" / "model.onnx") == sha256_file(small_artifact / "model.onnx")

    cfg = parse_config((model_dir / "config.pbtxt").read_text())
    manifest = Artifact.open(small_artifact).manifest
    assert (cfg["name"], cfg["platform"], cfg["max_batch_size"]) == ("flow", "onnxruntime_onnx", 0)
    assert [i["name"] for i in cfg["input"]] == [i["name"] for i in manifest["inputs"]] == ["frame1", "frame2"]
    assert [o["name"] for o in cfg["output"]] == ["flow"]
    assert all(i["dims"] == [1, 3, -1, -1] and i["data_type"] == "TYPE_FP32" for i in cfg["input"])
    assert cfg["output"][0]["dims"] == [1, 2, -1, -1] and cfg["output"][0]["data_type"] == "TYPE_FP32"
    assert cfg["instance_group"] == [(1, "KIND_GPU")]

    readme = (repo / "README.txt").read_text()
    assert "tritonserver --model-repository=" in readme and "flow:" in readme and "LD_PRELOAD" not in readme
    assert "multiple of 32" in readme


def test_cli_export_with_options_and_refusals(small_artifact, tmp_path):
    repo = tmp_path / "repo"
    run = lambda *a: subprocess.run([sys.executable, "-m", "edgeflow", "export", "triton", str(small_artifact), "--repo", str(repo), *a],
                                    capture_output=True, text=True, timeout=120)
    r = run("--name", "cpu-flow", "--instances", "2", "--kind", "cpu")
    assert r.returncode == 0, r.stderr
    cfg = parse_config((repo / "cpu-flow" / "config.pbtxt").read_text())
    assert cfg["instance_group"] == [(2, "KIND_CPU")] and cfg["name"] == "cpu-flow"
    for args, words in [(["--max-batch", "4"], "batch dimension is fixed"),
                        (["--platform", "tensorrt"], "no TensorRT engine"),
                        (["--instances", "0"], ">= 1")]:
        r = run(*args)
        assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.fixture
def engine_artifact(small_artifact, tmp_path):
    """The small artifact plus a (fake) engine and the manifest record convert --target tensorrt writes."""
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"serialized engine bytes")
    record = {"version": "10.3.0", "gpu": "Orin", "compute_capability": "8.7", "plugin_sha256": "0" * 64,
              "precision": "fp16", "dla": None,
              "engines": {"engine": {"file": "model.engine",
                                     "inputs": [{"name": n, "shape": [1, 3, 96, 128], "dtype": "float32"} for n in ("frame1", "frame2")],
                                     "outputs": [{"name": "flow", "shape": [1, 2, 96, 128], "dtype": "float32"}]}}}
    out = tmp_path / "with-engine"
    rewrite_artifact(Artifact.open(small_artifact), out, {"model.engine": (engine, "engine")}, record, {})
    return out


def test_engine_artifact_repository_ships_the_plugin(engine_artifact, tmp_path, monkeypatch):
    lib = tmp_path / "lib" / "libedgeflow_plugins.so"
    lib.parent.mkdir()
    lib.write_bytes(b"plugin")
    monkeypatch.setattr(ef_plugins, "find_plugin_library", lambda name=None: lib)
    repo = tmp_path / "repo"
    result = export_triton(engine_artifact, repo, name="flow-trt")
    model_dir = repo / "flow-trt"
    assert result.platform == "tensorrt_plan" and result.plugin == lib
    assert (model_dir / "1" / "model.plan").read_bytes() == b"serialized engine bytes"
    assert (model_dir / "libedgeflow_plugins.so").read_bytes() == b"plugin"
    cfg = parse_config((model_dir / "config.pbtxt").read_text())
    assert cfg["platform"] == "tensorrt_plan" and cfg["instance_group"] == [(1, "KIND_GPU")]
    assert [(i["name"], i["dims"]) for i in cfg["input"]] == [("frame1", [1, 3, 96, 128]), ("frame2", [1, 3, 96, 128])]
    assert cfg["output"] == [{"name": "flow", "data_type": "TYPE_FP32", "dims": [1, 2, 96, 128]}]
    readme = (repo / "README.txt").read_text()
    assert "LD_PRELOAD=/models/flow-trt/libedgeflow_plugins.so" in readme
    assert '--backend-config=tensorrt,plugins="/models/flow-trt/libedgeflow_plugins.so"' in readme
    assert "TensorRT 10.3.0" in readme and "Orin" in readme
    assert any("sha256 differs" in n for n in result.notes) and any("TensorRT 10.3.0" in n for n in result.notes)

    # The portable graph on request, and a second model listed in the same README.
    export_triton(engine_artifact, repo, name="flow-onnx", platform="onnxruntime")
    assert parse_config((repo / "flow-onnx" / "config.pbtxt").read_text())["platform"] == "onnxruntime_onnx"
    readme = (repo / "README.txt").read_text()
    assert "flow-trt:" in readme and "flow-onnx:" in readme
    with pytest.raises(EdgeflowError, match="GPU only"):
        export_triton(engine_artifact, repo, kind="cpu")


def test_engine_without_plugin_library_is_refused(engine_artifact, tmp_path, monkeypatch):
    monkeypatch.setattr(ef_plugins, "find_plugin_library", lambda name=None: None)
    with pytest.raises(EdgeflowError, match="edgeflow build-plugin"):
        export_triton(engine_artifact, tmp_path / "repo")


def test_config_types_and_batched_dims():
    model = TritonModel("m", "onnxruntime_onnx", [{"name": "x", "shape": ["batch", 3, 8, "w"], "dtype": "float16"}],
                        [{"name": "y", "shape": ["batch", 2], "dtype": "int64"}], max_batch_size=8)
    cfg = parse_config(model_config(model))
    assert cfg["max_batch_size"] == 8
    assert cfg["input"] == [{"name": "x", "data_type": "TYPE_FP16", "dims": [3, 8, -1]}]  # batch dim left to Triton
    assert cfg["output"] == [{"name": "y", "data_type": "TYPE_INT64", "dims": [2]}]
