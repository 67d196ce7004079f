"""A faster standard-op body for ``edgeflow::Correlation`` on CPUs: one batched MatMul per call.

Why: with the per-displacement bodies (:mod:`converters.ops.onnx_function`), a 4-level pwc-lite
at 320x240 spends more than half of its onnxruntime CPU time in the correlation: 81 x (Slice,
Mul, ReduceMean over channels) per level, each a separate memory pass over a NCHW tensor whose
channel reduction is strided. Quantizing the convolutions cannot fix that, so INT8 gains little.

How: for ``kernel_size == 1`` and ``stride1 == 1`` (every PWC-style net), write the cost volume as
dot products of channel vectors. With frame-1 features transposed to rows of (W', C) and the
padded frame-2 features to (C, Wp), one MatMul per (row, vertical displacement) gives every
pair (x, x') of the two rows; the D horizontal displacements of pixel x are the band
x' = x + off + j*s2 of that (W', Wp) matrix. Flattened row-major, the band element (x, j) sits
at x*(Wp + 1) + off + j*s2, so one Gather with indices built from the runtime shape extracts the
whole band. The MatMul does ``Wp / D`` times more multiply-adds than the correlation needs
(about 10x at 1/4 resolution), but as one GEMM it is still several times faster than 81 passes.

The node itself is unchanged (TensorRT still binds its plugin); only the model-local function
body differs, so the choice is per graph and :func:`use_band_bodies` can switch any exported
model. Other attribute sets keep the body they have.
"""

from __future__ import annotations

import onnx
from onnx import FunctionProto, TensorProto, helper

from converters.ops.attrs import CorrelationAttrs
from converters.ops.correlation import ONNX_DOMAIN, ONNX_OP
from converters.ops.onnx_function import _INT64_MAX, _Body, _finish

FORMULATION = "band_matmul"
MIN_OPSET = 15  # CastLike


def supports(attrs: CorrelationAttrs, opset: int) -> bool:
    return attrs.kernel_size == 1 and attrs.stride1 == 1 and opset >= MIN_OPSET


def _scalar(body: _Body, value: int, stem: str) -> str:
    return body.op("Constant", [], stem, value=helper.make_tensor(stem, TensorProto.INT64, [], [value]))


def build_band_function(attrs: CorrelationAttrs, opset: int, overload: str | None = None) -> FunctionProto:
    """The ``edgeflow::Correlation`` function for ``attrs`` as Transpose -> MatMul -> Gather."""
    if not supports(attrs, opset):
        raise ValueError("the band_matmul correlation body covers kernel_size=1, stride1=1 and opset >= 15")
    a, body = attrs, _Body(opset)
    p, md, s2 = a.pad_size, a.max_displacement, a.stride2
    r, d = a.grid_radius, a.grid_width
    f1, f2 = "f1", "f2"
    if p > 0:
        pads = body.const([0, 0, p, p, 0, 0, p, p], "pads")
        f2 = body.op("Pad", [f2, pads], "pad2", mode="constant")
        if p != md:
            f1 = body.op("Pad", [f1, pads], "pad1", mode="constant")
    if p != md:  # frame-1 pixels that are window centres: rows/cols [md, Hp - md)
        end = -md if md > 0 else _INT64_MAX
        f1 = body.op("Slice", [f1, body.const([md, md]), body.const([end, end]), body.const([2, 3])], "region1")
    # Frame 1: (B, C, H', W') -> (B, 1, H', W', C), divided by C when normalizing (before the GEMM,
    # on the small tensor).
    rows1 = body.op("Transpose", [f1], "rows1", perm=[0, 2, 3, 1])
    if a.normalize:
        channels = body.op("Gather", [body.op("Shape", [f1], "shape1"), _scalar(body, 1, "axis_c")], "c", axis=0)
        rows1 = body.op("Div", [rows1, body.op("CastLike", [channels, rows1], "c_float")], "rows1_norm")
    rows1 = body.unsqueeze(rows1, [1])
    # Frame 2: (B, C, Hp, Wp) -> (B, Hp, C, Wp); the D vertically shifted row blocks, stacked.
    rows2 = body.op("Transpose", [f2], "rows2", perm=[0, 2, 1, 3])
    shifted = []
    for i in range(d):
        dy = (i - r) * s2
        end = -(md - dy) if md - dy > 0 else _INT64_MAX
        block = body.op("Slice", [rows2, body.const([md + dy]), body.const([end]), body.const([1])], "rows_dy")
        shifted.append(body.unsqueeze(block, [1]))
    stacked = body.op("Concat", shifted, "stacked", axis=1)  # (B, D, H', C, Wp)
    pairs = body.op("MatMul", [rows1, stacked], "pairs")  # (B, D, H', W', Wp)
    # Band extraction: flat index x * (Wp + 1) + off + j * s2.
    shape = body.op("Shape", [pairs], "pairs_shape")
    out_w = body.op("Slice", [shape, body.const([3]), body.const([4]), body.const([0])], "out_w")
    row_len = body.op("Slice", [shape, body.const([4]), body.const([5]), body.const([0])], "row_len")
    flat = body.op("Reshape", [pairs, body.const([0, 0, 0, -1], "flat_shape")], "flat")
    xs = body.op("Range", [_scalar(body, 0, "zero"), body.op("Squeeze", [out_w, body.const([0])], "w_scalar"),
                           _scalar(body, 1, "one")], "xs")
    starts = body.op("Mul", [body.unsqueeze(xs, [1]), body.op("Add", [row_len, body.const([1])], "skew")], "starts")
    offset = md - r * s2
    cols = body.unsqueeze(body.const([offset + j * s2 for j in range(d)], "cols"), [0])
    index = body.op("Reshape", [body.op("Add", [starts, cols], "index_2d"), body.const([-1])], "index")
    band = body.op("Gather", [flat, index], "band_flat", axis=3)  # (B, D, H', W' * D)
    band = body.op("Reshape", [band, body.op("Concat", [body.const([0, 0, 0]), out_w, body.const([d])], "band_shape", axis=0)], "band")
    cost = body.op("Transpose", [band], "cost_t", perm=[0, 1, 4, 2, 3])  # (B, Dy, Dx, H', W')
    hw = body.op("Slice", [shape, body.const([2]), body.const([4]), body.const([0])], "hw")
    cost = body.op("Reshape", [cost, body.op("Concat", [body.const([0, -1]), hw], "cost_shape", axis=0)], "cost")
    body.nodes.append(helper.make_node("Identity", [cost], ["out"]))
    return _finish(body, opset, overload)


def use_band_bodies(model: onnx.ModelProto) -> int:
    """Replace (in place) every Correlation function whose attributes allow it; returns how many."""
    from converters.export import correlation_nodes, node_attrs

    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    by_overload = {}
    for node in correlation_nodes(model):
        by_overload.setdefault(node.overload or None, node_attrs(node))
    replaced = 0
    for index, fn in enumerate(model.functions):
        if fn.domain != ONNX_DOMAIN or fn.name != ONNX_OP:
            continue
        attrs = by_overload.get(fn.overload or None)
        if attrs is None or not supports(attrs, opset):
            continue
        model.functions[index].CopyFrom(build_band_function(attrs, opset, fn.overload or None))
        replaced += 1
    return replaced
