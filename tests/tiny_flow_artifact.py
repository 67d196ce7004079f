"""Hand-built ONNX flow artifacts for the streaming tests (no training, no torch, milliseconds to run).

``model.onnx``: ``flow = (frame2 - frame1)[:, :2] / 255 + (1.0, -0.5)``; with ``split=True`` also
``encoder.onnx`` (``feat_0 = frame / 255``) and ``decoder.onnx``
(``flow = (feat2_0 - feat1_0)[:, :2] + (1.0, -0.5)``), so the cached and the whole-pair paths give
the same flow and a test can tell a swapped pair from a correct one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeflow.artifact import ArtifactWriter

BIAS = np.array([1.0, -0.5], dtype=np.float32)
OPSET = 17


def _model(nodes, inputs, outputs, inits) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgeflow-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _tensor(name, channels):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, channels, "height", "width"])


def _consts():
    return [
        numpy_helper.from_array(np.array([0], dtype=np.int64), "starts"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "ends"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
        numpy_helper.from_array(np.array(1 / 255, dtype=np.float32), "scale"),
        numpy_helper.from_array(BIAS.reshape(1, 2, 1, 1), "bias"),
    ]


def whole_model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Sub", ["frame2", "frame1"], ["d"]),
        helper.make_node("Slice", ["d", "starts", "ends", "axes"], ["d2"]),
        helper.make_node("Mul", ["d2", "scale"], ["s"]),
        helper.make_node("Add", ["s", "bias"], ["flow"]),
    ]
    return _model(nodes, [_tensor("frame1", 3), _tensor("frame2", 3)], [_tensor("flow", 2)], _consts())


def encoder_model() -> onnx.ModelProto:
    nodes = [helper.make_node("Mul", ["frame", "scale"], ["feat_0"])]
    return _model(nodes, [_tensor("frame", 3)], [_tensor("feat_0", 3)], _consts()[3:4])


def decoder_model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Sub", ["feat2_0", "feat1_0"], ["d"]),
        helper.make_node("Slice", ["d", "starts", "ends", "axes"], ["d2"]),
        helper.make_node("Add", ["d2", "bias"], ["flow"]),
    ]
    inits = [c for c in _consts() if c.name != "scale"]
    return _model(nodes, [_tensor("feat1_0", 3), _tensor("feat2_0", 3)], [_tensor("flow", 2)], inits)


def expected_flow(frame1: np.ndarray, frame2: np.ndarray) -> np.ndarray:
    d = (frame2.astype(np.float32) - frame1.astype(np.float32))[..., :2] / 255
    return d + BIAS


def build_tiny_artifact(out: str | Path, split: bool = True) -> Path:
    spec = lambda n, c: {"name": n, "shape": [1, c, "height", "width"], "dtype": "float32"}  # noqa: E731
    with ArtifactWriter(out) as writer:
        onnx.save(whole_model(), writer.path("model.onnx"))
        writer.add("model.onnx", "model")
        if split:
            onnx.save(encoder_model(), writer.path("encoder.onnx"))
            onnx.save(decoder_model(), writer.path("decoder.onnx"))
            writer.add("encoder.onnx", "encoder")
            writer.add("decoder.onnx", "decoder")
        manifest = {
            "model": {"name": "tiny-diff", "arch": "tiny-diff", "config": None},
            "inputs": [spec("frame1", 3), spec("frame2", 3)],
            "outputs": [spec("flow", 2)],
            "preprocessing": {"color_order": "RGB", "layout": "NCHW", "dtype": "float32", "input_range": [0, 255],
                              "pad_multiple": 8, "pad_mode": "edge"},
            "precision": "fp32",
        }
        return writer.commit(manifest, {"note": "hand-built test artifact"})


def moving_frames(n: int, height: int = 32, width: int = 32, seed: int = 0):
    """``n`` distinct small RGB frames (a smooth texture shifted one pixel per frame), as a generator."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(height, width + n, 3), dtype=np.uint8)
    for i in range(n):
        yield np.ascontiguousarray(base[:, i : i + width])
