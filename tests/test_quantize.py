"""INT8 / FP16 conversion, the accuracy guard and the band-MatMul correlation body.

Everything runs on pwc-lite (random weights) at 64x64 with two calibration pairs, so the whole
file stays fast; the measured speed/accuracy claims live in benchmarks/bench_quantization.py.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from converters.export import export_onnx
from converters.ops.attrs import CorrelationAttrs
from converters.ops.band_correlation import build_band_function, use_band_bodies
from converters.ops.reference import correlation_reference
from converters.quantize.calibration import PairFeeds, load_calibration
from converters.quantize.fp16 import convert_fp16, io_types
from converters.quantize.guard import AccuracyBudgetError, EpeBudget, GuardCheck, Int8Repair, node_groups
from converters.quantize.int8 import Int8Options, Int8Quantizer, default_cpu_scheme, zero_points
from edgeflow.errors import EdgeflowError

H = W = 64
NAMES = ["frame1", "frame2"]


def bare_session(path) -> ort.InferenceSession:
    """A plain onnxruntime session: no edgeflow code, no custom-op library."""
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    from converters.zoo import get_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_model("pwc-lite", pretrained=False).eval()
    torch.manual_seed(0)
    x = torch.rand(1, 3, H, W) * 255
    dyn = {n: {2: "height", 3: "width"} for n in NAMES + ["flow"]}
    path = tmp_path_factory.mktemp("quant") / "fp32.onnx"
    export_onnx(model, (x, x.clone()), path, NAMES, ["flow"], dyn)
    proto = onnx.load(str(path))
    assert use_band_bodies(proto) == 1
    onnx.save(proto, str(path))
    return path


@pytest.fixture(scope="module")
def calib():
    return load_calibration(None, 2, H, W)


@pytest.fixture(scope="module")
def quantizer(fp32, calib):
    return Int8Quantizer(fp32, PairFeeds(calib.pairs, NAMES, 32), Int8Options(cpu_scheme="u8s8"))


@pytest.fixture(scope="module")
def int8_graphs(quantizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8")
    cpu = quantizer.write(out / "cpu.onnx", "cpu").path
    trt = quantizer.write(out / "trt.onnx", "tensorrt").path
    return cpu, trt


def feed(calib):
    f1, f2 = calib.pairs[0]
    return PairFeeds(calib.pairs, NAMES, 32).feed((f1, f2))


# ------------------------------------------------------------------------------------------- INT8
def test_quantized_graphs_run_in_a_bare_onnxruntime_session(int8_graphs, fp32, calib):
    ref = bare_session(fp32).run(None, feed(calib))[0]
    for path in int8_graphs:
        out = bare_session(path).run(None, feed(calib))[0]
        assert out.shape == ref.shape == (1, 2, H, W) and out.dtype == np.float32
        assert np.isfinite(out).all()
        assert np.abs(out - ref).mean() < 0.5 + 0.5 * np.abs(ref).mean()


def test_tensorrt_graph_is_signed_int8_with_zero_points_of_zero(int8_graphs):
    model = onnx.load(str(int8_graphs[1]))
    zps = zero_points(model)
    assert len(zps) > 100
    for node, dtype, values in zps:
        assert dtype == TensorProto.INT8, (node, dtype)  # no uint8 activations, no int32 biases
        assert values and set(values) == {0}, node  # zero point 0 = symmetric range
    # Weights are per-channel: each conv weight's DequantizeLinear has one scale per output channel.
    inits = {t.name: t for t in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    producers = {o: n for n in model.graph.node for o in n.output}
    for conv in convs:
        dq = producers[conv.input[1]]
        assert dq.op_type == "DequantizeLinear"
        scale = inits[dq.input[1]]
        assert len(scale.dims) == 1 and scale.dims[0] == inits[dq.input[0]].dims[0]


def test_cpu_graph_uses_the_fast_x86_representation(int8_graphs):
    assert default_cpu_scheme("x86_64") == "u8s8" and default_cpu_scheme("AMD64") == "u8s8"
    assert default_cpu_scheme("aarch64") == "s8s8" and default_cpu_scheme("armv7l") == "s8s8"
    model = onnx.load(str(int8_graphs[0]))
    kinds = {}
    for _, dtype, values in zero_points(model):
        kinds.setdefault(dtype, set()).update(values)
    # uint8 activations: symmetric (zero point 128), or [0, max] with zero point 0 where a ReLU was
    # folded into its producer; int8 weights and int32 biases at 0.
    assert kinds == {TensorProto.UINT8: {0, 128}, TensorProto.INT8: {0}, TensorProto.INT32: {0}}
    assert not [n for n in model.graph.node if n.op_type == "Relu"]  # every ReLU folded


def test_correlation_stays_a_float_node_for_tensorrt_and_runs_int8_on_cpu(int8_graphs):
    trt = onnx.load(str(int8_graphs[1]))
    corr = [n for n in trt.graph.node if n.domain == "edgeflow" and n.op_type == "Correlation"]
    assert len(corr) == 4 and [(f.domain, f.name) for f in trt.functions] == [("edgeflow", "Correlation")]
    producers = {o: n.op_type for n in trt.graph.node for o in n.output}
    for node in corr:  # reads float tensors, never a quantized one
        assert not {producers[i] for i in node.input} & {"QuantizeLinear"}
    cpu = onnx.load(str(int8_graphs[0]))
    assert not [n for n in cpu.graph.node if n.op_type == "Correlation"] and not cpu.functions
    producers = {o: n.op_type for n in cpu.graph.node for o in n.output}
    matmuls = [n for n in cpu.graph.node if n.op_type == "MatMul"]
    assert len(matmuls) == 4 and all(producers[i] == "DequantizeLinear" for n in matmuls for i in n.input)


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_calibration_methods(fp32, calib, method, tmp_path):
    quantizer = Int8Quantizer(fp32, PairFeeds(calib.pairs, NAMES, 32), Int8Options(method=method))
    out = quantizer.write(tmp_path / f"{method}.onnx", "cpu").path
    assert np.isfinite(bare_session(out).run(None, feed(calib))[0]).all()


def test_unknown_calibration_method_is_a_clean_error():
    with pytest.raises(EdgeflowError, match="calibration method"):
        Int8Options(method="magic")


def test_calibration_from_a_real_video_file(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (96, 160, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 128, 80, "yuv420p"
        for t in range(6):  # a texture panning right by 4 px per frame
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(texture[8:88, 4 * t : 4 * t + 128]), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    calib = load_calibration(str(path), 3, 48, 64)
    assert calib.source == str(path) and len(calib.pairs) == 3
    for (a1, a2), (b1, _) in zip(calib.pairs, calib.pairs[1:]):  # consecutive: (f0, f1), (f1, f2), ...
        assert a1.shape == (48, 64, 3) and a1.dtype == np.uint8
        np.testing.assert_array_equal(a2, b1)
        assert not np.array_equal(a1, a2)
    with pytest.raises(EdgeflowError, match="calibration"):
        load_calibration(str(tmp_path / "missing.mp4"), 3, 48, 64)


# ------------------------------------------------------------------------------------------- FP16
def test_fp16_graph_keeps_float32_io_and_converts_the_correlation(fp32, calib, tmp_path):
    path = convert_fp16(fp32, tmp_path / "fp16.onnx")
    assert set(io_types(path).values()) == {TensorProto.FLOAT}
    model = onnx.load(str(path))
    weights = [t for t in model.graph.initializer if len(t.dims) == 4]
    assert weights and all(t.data_type == TensorProto.FLOAT16 for t in weights)
    corr = next(n for n in model.graph.node if n.op_type == "Correlation")
    casts = {o: n for n in model.graph.node for o in n.output}
    assert all(casts[i].op_type != "Cast" or casts[i].attribute[0].i == TensorProto.FLOAT16 for i in corr.input)
    ref = bare_session(fp32).run(None, feed(calib))[0]
    out = bare_session(path).run(None, feed(calib))[0]
    assert out.dtype == np.float32 and np.abs(out - ref).max() < 0.05 + 0.01 * np.abs(ref).max()


def test_fp16_output_that_feeds_other_nodes(tmp_path):
    """An encoder's feature outputs are also read by the next level: keep_io_types must cope."""
    w = onnx.numpy_helper.from_array(np.full((2, 2, 1, 1), 0.5, np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["f0"]), helper.make_node("Conv", ["f0", "w"], ["f1"])]
    graph = helper.make_graph(nodes, "enc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2, 4, 4]) for n in ("f0", "f1")], [w])
    src = tmp_path / "enc.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    dst = convert_fp16(src, tmp_path / "enc16.onnx")
    assert set(io_types(dst).values()) == {TensorProto.FLOAT}
    f0, f1 = bare_session(dst).run(["f0", "f1"], {"x": np.ones((1, 2, 4, 4), np.float32)})
    np.testing.assert_allclose(f0, 1.0) and np.testing.assert_allclose(f1, 1.0)


# ------------------------------------------------------------------------------------------ guard
def test_budget_parsing():
    assert EpeBudget.parse(None) == EpeBudget(0.05, True)
    assert EpeBudget.parse("10%").allowed(2.0) == pytest.approx(0.2)
    assert EpeBudget.parse("0.3px").allowed(9.0) == pytest.approx(0.3)
    assert EpeBudget.parse("0.3") == EpeBudget(0.3, False)
    assert EpeBudget.parse("off").allowed(1.0) is None
    for bad in ("fast", "-1%"):
        with pytest.raises(EdgeflowError, match="max-epe-increase"):
            EpeBudget.parse(bad)


def test_node_groups_merge_both_encoder_passes():
    groups = node_groups(["/encoder/levels.0/levels.0.0/levels.0.0.0/Conv", "/encoder_1/levels.0/levels.0.0/levels.0.0.0/Conv",
                          "/decoder/estimators.3/convs.0/convs.0.0/Conv", "/decoder/context/layers/layers.4/Conv", "lonely"])
    assert groups == {"encoder/levels.0": ["/encoder/levels.0/levels.0.0/levels.0.0.0/Conv",
                                           "/encoder_1/levels.0/levels.0.0/levels.0.0.0/Conv"],
                      "decoder/estimators.3": ["/decoder/estimators.3/convs.0/convs.0.0/Conv"],
                      "decoder/context": ["/decoder/context/layers/layers.4/Conv"], "lonely": ["lonely"]}


class _FakeQuantizer:
    """Each conv adds a known EPE increase unless excluded: tests the search, not onnxruntime."""

    def __init__(self, cost):
        self.cost = cost
        self.quantizable = list(cost)
        self.excluded = []

    def write(self, out, target, exclude=()):
        self.excluded = list(exclude)


class _FakeGuard:
    def __init__(self, quantizer, allowed):
        self.q, self._allowed = quantizer, allowed
        self.budget = EpeBudget(allowed, False)

    def check(self, path, variant):
        inc = sum(c for n, c in self.q.cost.items() if n not in self.q.excluded)
        return GuardCheck(variant, inc, 1.0 + inc, 1.0, inc, self._allowed, inc < self._allowed, 9)


def test_repair_keeps_the_most_sensitive_groups_float():
    cost = {"/a/x/Conv": 0.01, "/b/x/Conv": 0.30, "/c/x/Conv": 0.02, "/d/x/Conv": 0.0, "/e/x/Conv": 0.12, "/f/x/Conv": 0.0}
    q = _FakeQuantizer(cost)
    result = Int8Repair(q, _FakeGuard(q, 0.1)).run("unused.onnx")
    assert result.check.passed and result.excluded == ["/b/x/Conv", "/e/x/Conv"]
    assert max(result.sensitivity, key=result.sensitivity.get) == "b/x"
    q = _FakeQuantizer(cost)
    with pytest.raises(AccuracyBudgetError, match="most sensitive"):
        Int8Repair(q, _FakeGuard(q, 0.001)).run("unused.onnx")  # needs 4 of 6 float: over the half cap


def test_impossible_budget_fails_cleanly_and_writes_nothing_valid(tmp_path, capsys):
    from edgeflow.cli import main

    out = tmp_path / "art"
    code = main(["convert", "pwc-lite", "--height", "64", "--width", "64", "--int8", "--calib-frames", "2",
                 "--max-epe-increase", "0", "--no-split", "--parity-pairs", "1", "--quiet", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and "max-epe-increase 0" in err and "Traceback" not in err
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else {"valid": False}
    assert manifest["valid"] is False
    from edgeflow.artifact import Artifact

    with pytest.raises(EdgeflowError):
        Artifact.open(out)


def test_int8_fp16_artifact_layout_report_and_runtime(tmp_path):
    import edgeflow
    from edgeflow.cli import main

    out = tmp_path / "int8"
    code = main(["convert", "pwc-lite", "--height", "64", "--width", "64", "--int8", "--fp16", "--calib-frames", "2",
                 "--parity-pairs", "1", "--latency-iterations", "2", "--quiet", "--out", str(out)])
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["valid"] and manifest["precision"] == "int8"
    assert manifest["graphs"] == {"model": "model.onnx", "fp32": "model_fp32.onnx", "fp16": "model_fp16.onnx",
                                  "trt_onnx": "model_int8_trt.onnx", "encoder": "encoder.onnx", "decoder": "decoder.onnx"}
    q = manifest["quantization"]
    assert q["calibration"] == {"source": "synthetic", "pairs": 2, "resolution": [64, 64]} and q["per_channel"]
    assert q["calibration_method"] == "minmax" and "excluded_nodes" in q
    acc = manifest["accuracy"]
    assert acc["budget"] == "5%" and {"fp16", "int8", "int8_trt", "int8_split"} <= set(acc)
    rows = {r["name"]: r for r in json.loads((out / "report.json").read_text())["variants"]}
    assert set(rows) == {"fp32", "fp16", "int8", "int8-trt"}
    assert rows["int8"]["file"] == "model.onnx" and rows["int8"]["size_mb"] < 0.4 * rows["fp32"]["size_mb"]
    assert rows["int8-trt"]["latency"] is None and rows["int8"]["epe_vs_fp32"] is not None
    with edgeflow.load(out) as model:  # the runtime opens it, cached path included
        assert model.can_cache_features
        f1, f2 = (np.full((64, 64, 3), v, np.uint8) for v in (90, 100))
        assert model.infer(f1, f2).shape == (64, 64, 2)
        assert model.decode(model.encode(f1), model.encode(f2)).shape == (64, 64, 2)


# --------------------------------------------------------------------------- band-MatMul correlation
@pytest.mark.parametrize("md,pad,s2,c,h,w", [(4, 4, 1, 5, 7, 9), (3, 3, 1, 2, 6, 5), (4, 6, 2, 3, 8, 10), (2, 1, 1, 4, 5, 6)])
def test_band_correlation_matches_the_reference(md, pad, s2, c, h, w):
    attrs = CorrelationAttrs(md, 1, 1, s2, pad, True)
    node = helper.make_node("Correlation", ["a", "b"], ["y"], domain="edgeflow", **attrs.as_onnx_attributes())
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in "ab"],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("edgeflow", 1)],
                              functions=[build_band_function(attrs, 17)])
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((2, c, h, w)).astype(np.float32) for _ in range(2))
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"a": a, "b": b})[0]
    np.testing.assert_allclose(got, correlation_reference(a, b, md, 1, 1, s2, pad, True), atol=1e-5)
