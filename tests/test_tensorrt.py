"""The TensorRT engine path without TensorRT: graph preparation, compatibility checks, graph choice,
CLI errors, and the build/run plumbing against a stand-in module (tests/fake_tensorrt.py).

What needs real TensorRT and a GPU (parsing with the real ONNX parser, building, running the plugin)
is at the end and skips with the reason.
"""

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper

import edgeflow.backends.cuda as ef_cuda
import edgeflow.backends.tensorrt as ef_trt
import edgeflow.plugins as ef_plugins
from edgeflow.backends.tensorrt_build import BuildOptions, build_engine, make_progress_monitor, prepare_tensorrt_onnx
from edgeflow.tensorrt_engines import TensorRTOptions, add_tensorrt_engines, plan_engine_jobs
from edgeflow.artifact import Artifact
from edgeflow.backends.cuda import GpuInfo
from edgeflow.backends.tensorrt import check_engine_compatibility, engine_compatibility_problem
from edgeflow.errors import ArtifactError, EdgeflowError
from fake_tensorrt import make_fake_tensorrt  # tests/ is on sys.path; a site-packages "tests" (opensimplex ships one) would shadow tests.


def _tensorrt_installed() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def _strip_plugin_attrs(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for node in copy.graph.node:
        keep = [a for a in node.attribute if not a.name.startswith("plugin_")]
        del node.attribute[:]
        node.attribute.extend(keep)
        node.ClearField("overload")
    del copy.functions[:]
    return copy


# -- prepare_tensorrt_onnx on a real converted artifact ------------------------------------------------
@pytest.mark.parametrize("graph", ["model.onnx", "decoder.onnx"])
def test_prepare_drops_functions_tags_every_node_and_keeps_the_rest(small_artifact, tmp_path, graph):
    src = small_artifact / graph
    original = onnx.load(str(src))
    assert any(f.name == "Correlation" for f in original.functions)
    result = prepare_tensorrt_onnx(src, tmp_path / "trt.onnx")
    prepared = onnx.load(str(result.path))

    assert result.functions_removed >= 1 and not any(f.name == "Correlation" for f in prepared.functions)
    nodes = [n for n in prepared.graph.node if n.op_type == "Correlation"]
    assert len(nodes) == result.correlation_nodes == sum(n.op_type == "Correlation" for n in original.graph.node) > 0
    for n in nodes:
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        assert attrs["plugin_namespace"] == b"edgeflow" and attrs["plugin_version"] == b"1"
        assert n.domain == "edgeflow" and not n.overload
        assert {"max_displacement", "kernel_size", "stride1", "stride2", "pad_size", "normalize"} <= set(attrs)
    # Everything but the functions and the two new attributes is byte-for-byte the same.
    assert _strip_plugin_attrs(prepared).SerializeToString() == _strip_plugin_attrs(original).SerializeToString()
    assert [(o.domain, o.version) for o in prepared.opset_import] == [(o.domain, o.version) for o in original.opset_import]


def test_prepare_drops_overload_ids_and_keeps_other_functions(tmp_path):
    pytest.importorskip("torch")
    from converters.export import attach_correlation_functions

    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 8, 16, 16])
    y = [helper.make_tensor_value_info(f"y{i}", onnx.TensorProto.FLOAT, None) for i in range(2)]
    nodes = [
        helper.make_node("Correlation", ["x", "x"], ["y0"], name="c0", domain="edgeflow", max_displacement=2,
                         kernel_size=1, stride1=1, stride2=1, pad_size=2, normalize=1),
        helper.make_node("Correlation", ["x", "x"], ["y1"], name="c1", domain="edgeflow", max_displacement=4,
                         kernel_size=1, stride1=1, stride2=2, pad_size=4, normalize=1),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], y), opset_imports=[helper.make_opsetid("", 17)])
    attach_correlation_functions(model)
    other = helper.make_function("mine", "Helper", ["a"], ["b"], [helper.make_node("Identity", ["a"], ["b"])],
                                 [helper.make_opsetid("", 17)])
    model.functions.append(other)
    assert {n.overload for n in model.graph.node} == {"set0", "set1"} and len(model.functions) == 3
    onnx.save(model, str(tmp_path / "in.onnx"))

    result = prepare_tensorrt_onnx(tmp_path / "in.onnx", tmp_path / "out.onnx")
    out = onnx.load(str(result.path))
    assert (result.correlation_nodes, result.functions_removed) == (2, 2)
    assert [(f.domain, f.name) for f in out.functions] == [("mine", "Helper")]
    assert all(not n.overload for n in out.graph.node)


def test_prepare_rejects_a_non_onnx_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all \xff\xfe")
    with pytest.raises(EdgeflowError, match="cannot read"):
        prepare_tensorrt_onnx(bad, tmp_path / "out.onnx")


# -- engine compatibility (pure) --------------------------------------------------------------------
RECORD = {"version": "10.3.0", "gpu": "Orin", "compute_capability": "8.7", "plugin_sha256": "ab" * 32}


def test_compatible_engine_passes():
    assert engine_compatibility_problem(RECORD, "10.3.0", "Orin", "8.7") is None
    assert engine_compatibility_problem(RECORD, "10.3.0.30", "orin ", "8.7") is None  # build number, case, spaces
    check_engine_compatibility(RECORD, "10.3.0", "Orin", "8.7")


@pytest.mark.parametrize("version, gpu, cc, words", [
    ("10.4.0", "Orin", "8.7", "TensorRT 10.3.0 (this device runs 10.4.0)"),
    ("11.1.0", "Orin", "8.7", "TensorRT 10.3.0"),
    ("10.3.0", "NVIDIA H100 80GB HBM3", "9.0", "compute capability 8.7 (this GPU is 9.0)"),
    ("10.3.0", "NVIDIA GeForce RTX 3080", "8.7", "the GPU 'Orin'"),
])
def test_mismatched_engine_is_refused_with_the_rebuild_command(version, gpu, cc, words):
    with pytest.raises(ArtifactError) as info:
        check_engine_compatibility(RECORD, version, gpu, cc, artifact_root="/data/flow-fp16")
    msg = str(info.value)
    assert words in msg and "`edgeflow convert /data/flow-fp16 --target tensorrt`" in msg
    assert "not portable" in msg and "\n" not in msg


def test_engine_without_a_record_is_refused():
    for record in (None, {}, {"gpu": "Orin"}):
        assert "no record" in engine_compatibility_problem(record, "10.3.0", "Orin", "8.7")


# -- which graph each engine is built from (pure) ---------------------------------------------------
def _manifest(precision, *roles):
    return {"precision": precision, "graphs": {r: f"{r}.onnx" for r in roles}}


def test_plan_fp32_builds_split_engines_on_both_generations():
    for strong in (False, True):
        jobs = plan_engine_jobs(_manifest("fp32", "model", "encoder", "decoder"), "fp32", strong)
        assert [(j.source_role, j.engine_role) for j in jobs] == [
            ("model", "engine"), ("encoder", "encoder_engine"), ("decoder", "decoder_engine")]
    assert len(plan_engine_jobs(_manifest("fp32", "model", "encoder", "decoder"), "fp32", False, split=False)) == 1


def test_plan_fp16_uses_the_fp16_graph_or_the_builder_flag():
    fp16_artifact = _manifest("fp16", "model", "fp32", "encoder", "decoder")
    for strong in (False, True):
        assert [j.source_role for j in plan_engine_jobs(fp16_artifact, "fp16", strong)] == ["model", "encoder", "decoder"]
    fp32_artifact = _manifest("fp32", "model", "encoder", "decoder")
    assert [j.source_role for j in plan_engine_jobs(fp32_artifact, "fp16", strongly_typed=False)] == ["model", "encoder", "decoder"]
    with pytest.raises(EdgeflowError, match="strongly typed.*--fp16"):
        plan_engine_jobs(fp32_artifact, "fp16", strongly_typed=True)
    both = _manifest("int8", "model", "fp32", "fp16", "trt_onnx")
    assert [j.source_role for j in plan_engine_jobs(both, "fp16", True)] == ["fp16"]
    assert [j.source_role for j in plan_engine_jobs(both, "fp32", True)] == ["fp32"]


def test_plan_int8_needs_the_tensorrt_qdq_graph():
    jobs = plan_engine_jobs(_manifest("int8", "model", "fp32", "trt_onnx"), "int8", False)
    assert [(j.source_role, j.engine_role, j.engine_file) for j in jobs] == [("trt_onnx", "engine", "model.engine")]
    with pytest.raises(EdgeflowError, match="no TensorRT INT8 graph.*--int8"):
        plan_engine_jobs(_manifest("fp32", "model"), "int8", False)
    with pytest.raises(EdgeflowError, match="no FP32 graph"):
        plan_engine_jobs(_manifest("fp16", "model"), "fp32", False)


# -- CLI without TensorRT -------------------------------------------------------------------------------
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "edgeflow", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(_tensorrt_installed(), reason="tensorrt is installed here: the missing-TensorRT error cannot happen")
def test_target_tensorrt_without_tensorrt_is_one_line(small_artifact, tmp_path):
    for args in (["pwc-lite", "--out", str(tmp_path / "never"), "--quiet"], [str(small_artifact)]):
        r = _cli("convert", *args, "--target", "tensorrt")
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "tensorrt" in r.stderr.lower() and "pip install tensorrt" in r.stderr
    assert not (tmp_path / "never").exists()  # refused before converting anything


@pytest.mark.skipif(_tensorrt_installed(), reason="tensorrt is installed here: the missing-TensorRT error cannot happen")
def test_convert_job_builds_engines_as_its_own_stage(tmp_path):
    """A Python user of ConvertJob gets the TensorRT stage too (not only the CLI): asked for
    without TensorRT, the job refuses before converting anything."""
    from converters.convert import ConvertJob, ConvertOptions, ExportOptions

    opts = ConvertOptions("pwc-lite", out=tmp_path / "never", export=ExportOptions(height=64, width=64), tensorrt=TensorRTOptions())
    with pytest.raises(EdgeflowError, match="pip install tensorrt"):
        ConvertJob(opts).run()
    assert not (tmp_path / "never").exists()


@pytest.mark.skipif(_tensorrt_installed(), reason="tensorrt is installed here: the build would start")
def test_on_device_path_never_imports_torch(small_artifact):
    """`convert ARTIFACT --target tensorrt` runs on a Jetson without torch: it must get as far as TensorRT."""
    code = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked in this test')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from edgeflow.cli import main\n"
        f"rc = main(['convert', {str(small_artifact)!r}, '--target', 'tensorrt'])\n"
        "assert not any(k == 'torch' or k.startswith('torch.') for k in sys.modules)\n"
        "sys.exit(rc)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "tensorrt Python package is not installed" in r.stderr, r.stderr


def test_artifact_without_target_is_a_one_line_error(small_artifact):
    r = _cli("convert", str(small_artifact))
    assert r.returncode == 2 and "--target tensorrt" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_no_gpu_is_a_one_line_error():
    try:
        info = ef_cuda.gpu_info()
    except EdgeflowError as err:
        assert "\n" not in str(err) and ("GPU" in str(err) or "driver" in str(err))
    else:
        pytest.skip(f"this machine has a GPU ({info.name})")


# -- cuda-python wrapper against a host-memory stand-in of cudart ---------------------------------------
class _HostCudart:
    """cudart's calling convention ((error, *results)) over real host memory, so copies really move bytes."""

    import types as _types

    cudaMemcpyKind = _types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)

    def __init__(self):
        import ctypes

        self.ctypes, self.blocks, self.fail = ctypes, {}, set()

    def _alloc(self, n):
        buf = (self.ctypes.c_ubyte * n)()
        self.blocks[self.ctypes.addressof(buf)] = buf
        return self.ctypes.addressof(buf)

    def cudaMalloc(self, n):
        return (2, None) if "malloc" in self.fail else (0, self._alloc(n))

    def cudaMallocHost(self, n):
        return 0, self._alloc(n)

    def cudaFree(self, ptr):
        del self.blocks[ptr]
        return (0,)

    cudaFreeHost = cudaFree

    def cudaMemcpyAsync(self, dst, src, count, kind, stream):
        self.ctypes.memmove(dst, src, count)
        return (0,)

    def cudaStreamCreate(self):
        return 0, 77

    def cudaStreamSynchronize(self, stream):
        return (0,)

    def cudaStreamDestroy(self, stream):
        return (0,)

    def cudaGetErrorName(self, err):
        return 0, {2: b"cudaErrorMemoryAllocation"}.get(int(err), b"?")


def test_cuda_python_wrapper_moves_bytes_through_pinned_buffers():
    rt = _HostCudart()
    api = ef_cuda.CudaPythonApi(rt)
    x = np.arange(24, dtype=np.float16).reshape(2, 3, 4)
    host_in, host_out = api.pinned(x.shape, x.dtype), api.pinned(x.shape, x.dtype)
    assert host_in.array.shape == (2, 3, 4) and host_in.array.dtype == np.float16 and host_in.array.flags.writeable
    np.copyto(host_in.array, x)
    dev, stream = api.malloc(x.nbytes), api.stream_create()
    api.h2d_async(dev, host_in.array, stream)
    api.d2h_async(host_out.array, dev, stream)
    api.stream_sync(stream)
    np.testing.assert_array_equal(host_out.array, x)
    assert api.stream_handle(stream) == 77
    for buf in (host_in, host_out):
        api.free_pinned(buf)
    api.free(dev)
    api.stream_destroy(stream)
    assert rt.blocks == {}
    rt.fail.add("malloc")
    with pytest.raises(EdgeflowError, match="cudaMalloc failed: cudaErrorMemoryAllocation"):
        api.malloc(16)


# -- build and run against the stand-in module ----------------------------------------------------------
@pytest.fixture
def fake_trt(monkeypatch, tmp_path):
    """Install a fake ``tensorrt`` (and fake GPU, CUDA memory, plugin library); returns a factory."""

    def install(version="10.3.0", precision_flags=True, dla_cores=0, plugin=True):
        trt = make_fake_tensorrt(version, precision_flags, dla_cores)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        monkeypatch.setattr(ef_trt, "_logger", None)
        monkeypatch.setattr(ef_trt, "load_cuda_api", lambda device=0: trt.cuda)
        monkeypatch.setattr(ef_cuda, "gpu_info", lambda device=0: GpuInfo("Fake Orin", "8.7"))
        lib = tmp_path / "plugins" / "libedgeflow_plugins.so"
        lib.parent.mkdir(exist_ok=True)
        lib.write_bytes(b"stand-in for the plugin library")

        def load(path=None, name=None):
            trt.registered.add(("Correlation", "1", "edgeflow"))
            return object()  # no edgeflow_plugin_tensorrt_version: version check skipped

        monkeypatch.setattr(ef_plugins, "find_plugin_library", lambda name=None: lib if plugin else None)
        monkeypatch.setattr(ef_plugins, "load_plugin_library", load)
        return trt

    return install


@pytest.fixture
def artifact_copy(small_artifact, tmp_path):
    dst = tmp_path / "artifact"
    shutil.copytree(small_artifact, dst)
    return dst


def _flows(path, backend):
    import edgeflow
    from edgeflow.tensorrt_engines import parity_frames

    with edgeflow.load(path, backend=backend) as model:
        f1, f2 = parity_frames((96, 128), seed=3)
        whole = model.infer(f1, f2)
        cached = model.decode(model.encode(f1), model.encode(f2)) if model.can_cache_features else None
        return whole, cached, model.runner.backend


def test_engines_are_built_added_verified_and_run(fake_trt, artifact_copy, tmp_path):
    trt = fake_trt("10.3.0")
    cache = tmp_path / "timing.cache"
    result = add_tensorrt_engines(artifact_copy, TensorRTOptions(timing_cache=cache, latency_iterations=1))

    art = Artifact.open(artifact_copy)  # sha256 of every file, engines included
    graphs = art.manifest["graphs"]
    for role, name in [("engine", "model.engine"), ("encoder_engine", "encoder.engine"), ("decoder_engine", "decoder.engine"),
                       ("engine_onnx", "model.engine.onnx"), ("model", "model.onnx")]:
        assert graphs[role] == name
    rec = art.manifest["tensorrt"]
    assert (rec["version"], rec["gpu"], rec["compute_capability"], rec["precision"], rec["dla"]) == ("10.3.0", "Fake Orin", "8.7", "fp32", None)
    assert len(rec["plugin_sha256"]) == 64 and rec["engines"]["engine"]["inputs"][0]["shape"] == [1, 3, 96, 128]
    assert result.report["parity_vs_onnxruntime"]["engine"]["flow"]["epe"] < 1e-4
    assert "tensorrt" in json.loads((artifact_copy / "report.json").read_text())
    assert [b["profile"]["frame1"] for b in trt.builds[:1]] == [[1, 3, 96, 128]] and trt.builds[0]["flags"] == []
    assert cache.read_bytes().endswith(b"+fake-timings")
    assert onnx.load(str(artifact_copy / "model.engine.onnx")).functions == []

    whole, cached, backend = _flows(artifact_copy, "tensorrt")
    ref_whole, ref_cached, _ = _flows(artifact_copy, "onnxruntime")
    assert backend == "tensorrt" and whole.shape == (96, 128, 2)
    np.testing.assert_allclose(whole, ref_whole, atol=1e-4)
    np.testing.assert_allclose(cached, ref_cached, atol=1e-4)
    assert trt.cuda.mem == {} and trt.cuda.pinned_live == 0 and trt.cuda.streams == 0  # close() freed everything

    # Rebuilding replaces the engines (all of them: stale encoder/decoder engines go too).
    add_tensorrt_engines(artifact_copy, TensorRTOptions(precision="fp16", split=False, timing_cache=cache, latency_iterations=1))
    art = Artifact.open(artifact_copy)
    assert art.manifest["tensorrt"]["precision"] == "fp16" and "FP16" in trt.builds[-1]["flags"]
    assert sorted(p.name for p in artifact_copy.glob("*.engine*")) == ["model.engine", "model.engine.onnx"]
    assert not any(r.startswith(("encoder_engine", "decoder_engine")) for r in art.manifest["graphs"])


def test_runtime_refuses_an_engine_from_another_tensorrt(fake_trt, artifact_copy):
    fake_trt("10.3.0")
    add_tensorrt_engines(artifact_copy, TensorRTOptions(split=False, latency_iterations=1))
    fake_trt("10.4.0")  # the device was upgraded
    import edgeflow

    with pytest.raises(ArtifactError, match=r"TensorRT 10.3.0 \(this device runs 10.4.0\).*--target tensorrt"):
        edgeflow.load(artifact_copy, backend="tensorrt")
    with edgeflow.load(artifact_copy, backend="onnxruntime") as model:  # the ONNX graph still runs
        assert model.runner.backend == "onnxruntime"


def test_tensorrt_11_builds_fp16_strongly_typed_from_the_fp16_graph(fake_trt, small_artifact, tmp_path):
    trt = fake_trt("11.1.0", precision_flags=False)
    prepared = prepare_tensorrt_onnx(small_artifact / "model.onnx", tmp_path / "m.onnx")
    info = build_engine(prepared.path, tmp_path / "m.engine", "fp16", options=BuildOptions(
        shapes={n: ((1, 3, 96, 128),) * 3 for n in ("frame1", "frame2")}))
    assert info.strongly_typed and trt.builds[-1]["flags"] == [] and "strongly typed" in info.notes[0]
    with pytest.raises(EdgeflowError, match="strongly typed"):  # an FP32-only artifact cannot give FP16 on 11.x
        add_tensorrt_engines(small_artifact, TensorRTOptions(precision="fp16"))


def test_build_options_reach_the_builder(fake_trt, small_artifact, tmp_path):
    trt = fake_trt("10.3.0", dla_cores=2)
    prepared = prepare_tensorrt_onnx(small_artifact / "model.onnx", tmp_path / "m.onnx")
    shapes = {n: ((1, 3, 96, 128),) * 3 for n in ("frame1", "frame2")}
    build_engine(prepared.path, tmp_path / "m.engine", "fp16", workspace_gb=1.5, dla_core=1, options=BuildOptions(shapes=shapes))
    b = trt.builds[-1]
    assert b["flags"] == ["FP16", "GPU_FALLBACK"] and b["device"] == "DLA" and b["dla_core"] == 1
    assert b["pools"] == {"WORKSPACE": int(1.5 * 2**30)}
    with pytest.raises(EdgeflowError, match="DLA runs FP16 and INT8 only"):
        build_engine(prepared.path, tmp_path / "m.engine", "fp32", dla_core=0, options=BuildOptions(shapes=shapes))
    with pytest.raises(EdgeflowError, match="DLA cores 0..1"):
        build_engine(prepared.path, tmp_path / "m.engine", "fp16", dla_core=5, options=BuildOptions(shapes=shapes))
    with pytest.raises(EdgeflowError, match="QDQ"):  # INT8 never falls back to a calibrator
        build_engine(prepared.path, tmp_path / "m.engine", "int8", options=BuildOptions(shapes=shapes))
    with pytest.raises(EdgeflowError, match="dynamic dims"):
        build_engine(prepared.path, tmp_path / "m.engine", "fp32", options=BuildOptions())


def test_damaged_timing_cache_is_replaced(fake_trt, small_artifact, tmp_path):
    fake_trt("10.3.0")
    prepared = prepare_tensorrt_onnx(small_artifact / "encoder.onnx", tmp_path / "e.onnx")
    cache = tmp_path / "t.cache"
    cache.write_bytes(b"corrupt")
    info = build_engine(prepared.path, tmp_path / "e.engine", "fp32", timing_cache_path=cache,
                        options=BuildOptions(shapes={"frame": ((1, 3, 96, 128),) * 3}, require_plugin=False))
    assert any("ignored timing cache" in n for n in info.notes)
    assert cache.read_bytes() == b"+fake-timings"


@pytest.mark.parametrize("version, flags_api, expected", [("10.3.0", True, ["INT8"]), ("11.1.0", False, [])])
def test_int8_uses_the_qdq_graph_with_the_flag_only_where_it_exists(fake_trt, tmp_path, version, flags_api, expected):
    trt = fake_trt(version, precision_flags=flags_api)
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    scale = helper.make_tensor("s", onnx.TensorProto.FLOAT, [], [0.1])
    zero = helper.make_tensor("z", onnx.TensorProto.INT8, [], [0])
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]), helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "qdq", [x], [y], initializer=[scale, zero])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "qdq.onnx"))
    info = build_engine(tmp_path / "qdq.onnx", tmp_path / "qdq.engine", "int8", options=BuildOptions(require_plugin=False))
    assert trt.builds[-1]["flags"] == expected and info.strongly_typed == (not flags_api)
    assert "no calibrator" in info.notes[0]


def test_missing_plugin_library_says_build_plugin(fake_trt, small_artifact, tmp_path):
    fake_trt("10.3.0", plugin=False)
    prepared = prepare_tensorrt_onnx(small_artifact / "model.onnx", tmp_path / "m.onnx")
    with pytest.raises(EdgeflowError, match="edgeflow build-plugin") as info:
        build_engine(prepared.path, tmp_path / "m.engine", "fp32")
    assert "\n" not in str(info.value)


def test_parser_failure_names_the_node(fake_trt, tmp_path):
    fake_trt("10.3.0")
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("FakeUnsupportedOp", ["x"], ["y"], name="weird_0", domain="x.y")], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("x.y", 1)]),
              str(tmp_path / "bad.onnx"))
    with pytest.raises(EdgeflowError, match=r"cannot parse bad.onnx: node 'weird_0' \(FakeUnsupportedOp\): No importer"):
        build_engine(tmp_path / "bad.onnx", tmp_path / "bad.engine", options=BuildOptions(require_plugin=False))


def test_progress_monitor_draws_one_tqdm_bar_only_on_a_terminal_handler(fake_trt):
    """The build's bar is edgeflow.console's: drawn on the stream of a handler that shows the
    edgeflow logger's INFO records on a terminal, nowhere under --quiet's warning-only handler."""
    import io
    import logging

    class Tty(io.StringIO):
        def isatty(self):
            return True

    def build(level):
        stream = Tty()
        handler = logging.StreamHandler(stream)
        handler.setLevel(level)
        logger = logging.getLogger("edgeflow")
        saved = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            bar = make_progress_monitor(fake_trt("10.3.0"))
            bar.phase_start("Building engine", None, 4)
            bar.phase_start("Tactic search", "Building engine", 10)
            assert bar.step_complete("Tactic search", 4) is True
            during = stream.getvalue()
            bar.step_complete("Building engine", 1)
            during += stream.getvalue()
            bar.phase_finish("Tactic search")
            bar.phase_finish("Building engine")
        finally:
            logger.removeHandler(handler)
            logger.setLevel(saved)
        return during, stream.getvalue()

    during, _ = build(logging.INFO)
    assert "Building engine: Tactic search" in during  # the bar follows the outer phase, names the inner one
    assert "2/4" in during
    assert build(logging.WARNING) == ("", "")  # --quiet: no bar at all


# -- real TensorRT (skips here) ---------------------------------------------------------------------------
def test_real_tensorrt_builds_and_runs_the_plugin_engine(small_artifact, tmp_path):
    pytest.importorskip("tensorrt", reason="needs the tensorrt Python package")
    try:
        ef_cuda.gpu_info()
    except EdgeflowError as err:
        pytest.skip(f"needs a CUDA GPU: {err}")
    if ef_plugins.find_plugin_library() is None:
        pytest.skip("needs libedgeflow_plugins.so: run `edgeflow build-plugin`")
    dst = tmp_path / "artifact"
    shutil.copytree(small_artifact, dst)
    result = add_tensorrt_engines(dst, TensorRTOptions())
    assert result.report["parity_vs_onnxruntime"]["engine"]["flow"]["epe"] < 0.05
    whole, cached, backend = _flows(dst, "tensorrt")
    ref, _, _ = _flows(dst, "onnxruntime")
    assert backend == "tensorrt" and np.abs(whole - ref).max() < 0.5
