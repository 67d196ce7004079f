"""Which convolutions of an INT8 CPU graph onnxruntime really runs in INT8 (QLinearConv).

A QDQ graph is only faster than FP32 where onnxruntime fuses DequantizeLinear -> Conv ->
QuantizeLinear into ``QLinearConv``; a conv it cannot fuse runs in float behind a
DequantizeLinear, slower than the FP32 graph's own (fused, NCHWc) conv. PTLFlow's pwcnet was
0.94x of FP32 in INT8 for two reasons these tests rebuild in a few layers: the TorchScript
exporter stores equal parameters once (zero-initialized biases) and reads them through Identity
nodes, which is not a QLinearConv pattern; and LeakyReLU / DenseNet concats between the convs.
Each test reads onnxruntime's own optimized graph (real sessions, no mocks).
"""

from __future__ import annotations

import collections
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from converters.quantize.calibration import PairFeeds
from converters.quantize.int8 import Int8Options, Int8Quantizer, fold_parameter_identities, nodes_to_quantize

NAMES = ["frame1", "frame2"]
H, W = 32, 48


class DenseLeaky(torch.nn.Module):
    """PWC-Net's decoder in miniature: zero biases, LeakyReLU after every conv, cat(conv(x), x)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.enc = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.dense = torch.nn.ModuleList([torch.nn.Conv2d(16 + 8 * i, 8, 3, padding=1) for i in range(3)])
        self.head = torch.nn.Conv2d(40, 2, 3, padding=1)
        for conv in [self.enc, *self.dense, self.head]:
            torch.nn.init.zeros_(conv.bias)  # what PTLFlow's models (and many others) do

    def forward(self, frame1, frame2):
        x = torch.cat([F.leaky_relu(self.enc(frame1 / 255), 0.1), F.leaky_relu(self.enc(frame2 / 255), 0.1)], 1)
        for conv in self.dense:
            x = torch.cat([F.leaky_relu(conv(x), 0.1), x], 1)
        return self.head(x)


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    path = tmp_path_factory.mktemp("fusion") / "fp32.onnx"
    x = torch.rand(1, 3, H, W) * 255
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(DenseLeaky().eval(), (x, x.clone()), str(path), dynamo=False, opset_version=17,
                          input_names=NAMES, output_names=["flow"])
    return path


def feeds(count=3):
    rng = np.random.default_rng(1)
    pairs = [tuple(rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(2)) for _ in range(count)]
    return PairFeeds(pairs, NAMES, 1)


def optimized_ops(path, tmp_path) -> collections.Counter:
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return collections.Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)


def test_the_exporter_reads_shared_biases_through_identity_nodes(fp32):
    """The premise: without it the next test would pass for the wrong reason."""
    model = onnx.load(str(fp32))
    inits = {t.name for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    via_identity = [n.name for n in model.graph.node if n.op_type == "Conv" and len(n.input) > 2
                    and n.input[2] not in inits and producers[n.input[2]].op_type == "Identity"]
    assert len(via_identity) >= 3


def test_every_conv_runs_as_qlinearconv_in_the_int8_cpu_graph(fp32, tmp_path):
    quantizer = Int8Quantizer(fp32, feeds(), Int8Options(cpu_scheme="u8s8"))
    out = quantizer.write(tmp_path / "int8.onnx", "cpu").path
    ops = optimized_ops(out, tmp_path)
    convs = sum(1 for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv")
    assert ops["QLinearConv"] == convs, ops
    assert ops["Conv"] == 0 and ops["FusedConv"] == 0, ops
    # and it still computes the model: INT8 close to FP32 on a calibration-like pair
    feed = next(iter(feeds(1)))
    ref = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max() + 1e-3


def test_fold_gives_each_reader_its_own_initializer(fp32):
    model = onnx.load(str(fp32))
    before = [n.output[0] for n in model.graph.node if n.op_type == "Identity"]
    assert fold_parameter_identities(model) == len(before)
    assert not any(n.op_type == "Identity" for n in model.graph.node)
    inits = {t.name for t in model.graph.initializer}
    assert set(before) <= inits
    onnx.checker.check_model(model)
    feed = next(iter(feeds(1)))
    a = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    b = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    np.testing.assert_array_equal(a, b)


def test_concats_are_quantized_when_everything_they_feed_is(fp32):
    """The dense chain (each cat feeds a conv and the next cat) is quantized as a whole; the
    head conv's output and the LeakyReLUs after convs are chosen; nothing float-only is."""
    model = onnx.load(str(fp32))
    chosen = set(nodes_to_quantize(model))
    by_type = collections.defaultdict(set)
    for n in model.graph.node:
        by_type[n.op_type].add(n.name)
    assert by_type["Conv"] <= chosen
    assert by_type["LeakyRelu"] <= chosen
    assert by_type["Concat"] <= chosen
    assert not (by_type["Div"] & chosen)
    # a Concat read by a float node stays float
    consumers = collections.defaultdict(list)
    for n in model.graph.node:
        for i in n.input:
            consumers[i].append(n)
    last = next(n for n in model.graph.node if n.op_type == "Concat" and all(c.op_type == "Conv" for c in consumers[n.output[0]]))
    extra = onnx.helper.make_node("Relu", [last.output[0]], ["extra_out"], name="float_reader")
    model.graph.node.append(extra)
    model.graph.output.append(onnx.helper.make_tensor_value_info("extra_out", onnx.TensorProto.FLOAT, None))
    assert last.name not in set(nodes_to_quantize(model, op_types=("Conv", "Concat")))


def test_fold_keeps_a_source_that_a_subgraph_still_reads():
    """An initializer read by a folded Identity *and* inside an If branch stays: dropping it would
    leave the branch reading nothing (an invalid graph, and a failed INT8 conversion)."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(4, dtype=np.float32).reshape(1, 4), "w")
    branch = lambda name: helper.make_graph(  # noqa: E731
        [helper.make_node("Add", ["x", "w"], [f"{name}_out"])], name, [],
        [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [1, 4])])
    nodes = [helper.make_node("Identity", ["w"], ["w_copy"]),
             helper.make_node("Add", ["x", "w_copy"], ["y"]),
             helper.make_node("If", ["c"], ["z"], then_branch=branch("then"), else_branch=branch("else"))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
                                           helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4]),
                               helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert fold_parameter_identities(model) == 1
    assert {t.name for t in model.graph.initializer} == {"w", "w_copy"}
    onnx.checker.check_model(model)
    x = np.ones((1, 4), np.float32)
    y, z = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x, "c": np.array(True)})
    np.testing.assert_array_equal(y, x + np.arange(4))
    np.testing.assert_array_equal(z, y)


def test_vnni_detection_and_the_reduce_range_default():
    """Without VNNI, u8s8 weights get 7 bits (onnxruntime's fix for VPMADDUBSW saturation);
    s8s8 graphs and an explicit choice are left alone."""
    from converters.quantize.int8 import has_vnni

    assert not has_vnni("processor : 0\nflags\t\t: fpu sse2 avx2 fma\n")
    assert has_vnni("flags\t\t: fpu avx2 avx512f avx512_vnni\n")
    assert has_vnni("flags : avx2 avx_vnni\n")
    assert Int8Options(cpu_scheme="u8s8").reduce_range is (not has_vnni())
    assert Int8Options(cpu_scheme="s8s8").reduce_range is False
    assert Int8Options(cpu_scheme="u8s8", reduce_range=False).reduce_range is False
    assert Int8Options(cpu_scheme="u8s8", reduce_range=True).describe()["reduce_range"] is True
