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
from converters.ops.onnx_function import _INT64_MAX, _Body, _finish, correlation_nodes, node_attrs

FORMULATION = "band_matmul"
MIN_OPSET = 15  # CastLike
#: Frame-1 columns per MatMul block. Whole rows (None) measured fastest for pwc-lite at 320x240
#: (tiles of 8 / 16 / 32 columns: +7 / +4 / +8 % model CPU time: small GEMMs lose more than the
#: skipped multiply-adds save), so tiling is off by default.
DEFAULT_TILE = None


def supports(attrs: CorrelationAttrs, opset: int) -> bool:
    return attrs.kernel_size == 1 and attrs.stride1 == 1 and opset >= MIN_OPSET


def _scalar(body: _Body, value: int, stem: str) -> str:
    return body.op("Constant", [], stem, value=helper.make_tensor(stem, TensorProto.INT64, [], [value]))


def build_band_function(attrs: CorrelationAttrs, opset: int, overload: str | None = None,
                        tile: int | None = DEFAULT_TILE) -> FunctionProto:
    """The ``edgeflow::Correlation`` function for ``attrs`` as Transpose -> MatMul -> Gather.

    ``tile``: columns of frame 1 per MatMul block (None: a whole row). A row of W' pixels against
    W' + 2 md candidates wastes ~W'/D of the multiply-adds; tiles of T columns against T + 2 md
    candidates waste only (T + 2 md)/D, at the price of one Gather that cuts the overlapping
    frame-2 windows. The frame is zero-padded to a multiple of T and the result cropped.
    """
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
    zero, one = _scalar(body, 0, "zero"), _scalar(body, 1, "one")
    shape1 = body.op("Shape", [f1], "shape1")
    out_hw = body.op("Slice", [shape1, body.const([2]), body.const([4]), body.const([0])], "out_hw")
    out_w = body.op("Slice", [shape1, body.const([3]), body.const([4]), body.const([0])], "out_w")
    # Frame 1: (B, C, H', W') -> (B, H', W', C), divided by C when normalizing (on the small tensor).
    rows1 = body.op("Transpose", [f1], "rows1", perm=[0, 2, 3, 1])
    if a.normalize:
        channels = body.op("Gather", [shape1, _scalar(body, 1, "axis_c")], "c", axis=0)
        rows1 = body.op("Div", [rows1, body.op("CastLike", [channels, rows1], "c_float")], "rows1_norm")
    # Frame 2: (B, C, Hp, Wp) -> (B, Hp, C, Wp).
    rows2 = body.op("Transpose", [f2], "rows2", perm=[0, 2, 1, 3])
    if tile:
        t = int(tile)
        # Pad W' to a multiple of T (frame 1 and, by the same amount, frame 2).
        extra = body.op("Mod", [body.op("Sub", [body.const([t]), body.op("Mod", [out_w, body.const([t])], "w_mod")], "t_minus"),
                                body.const([t])], "extra")
        pad_w = body.op("Concat", [body.const([0, 0, 0, 0, 0, 0]), extra, body.const([0])], "pad_w1", axis=0)
        rows1 = body.op("Pad", [rows1, pad_w], "rows1_tiled_pad", mode="constant")
        pad_w2 = body.op("Concat", [body.const([0, 0, 0, 0, 0, 0, 0]), extra], "pad_w2", axis=0)
        rows2 = body.op("Pad", [rows2, pad_w2], "rows2_tiled_pad", mode="constant")
        dims1 = body.op("Shape", [rows1], "dims1")
        tiles_shape = body.op("Concat", [body.op("Slice", [dims1, body.const([0]), body.const([2]), body.const([0])], "bh"),
                                         body.const([-1, t]),
                                         body.op("Slice", [dims1, body.const([3]), body.const([4]), body.const([0])], "cdim")],
                              "tiles_shape", axis=0)
        rows1 = body.op("Reshape", [rows1, tiles_shape], "rows1_tiles")  # (B, H', nT, T, C)
        n_tiles = body.op("Div", [body.op("Add", [out_w, extra], "w_padded"), body.const([t])], "n_tiles")
        starts = body.op("Mul", [body.unsqueeze(body.op("Range", [zero, body.op("Squeeze", [n_tiles, body.const([0])], "nt"), one],
                                                        "tile_ids"), [1]), body.const([t])], "tile_starts")
        window = body.op("Add", [starts, body.unsqueeze(body.const(list(range(t + 2 * md)), "window_cols"), [0])], "window_idx")
        rows2 = body.op("Gather", [rows2, window], "windows", axis=3)  # (B, Hp, C, nT, T + 2 md)
        rows2 = body.op("Transpose", [rows2], "windows_t", perm=[0, 1, 3, 2, 4])  # (B, Hp, nT, C, T + 2 md)
    offset = md - r * s2
    if not tile:
        # One GEMM per output row: (W', C) @ (C, D * Wp), the D vertically shifted frame-2 rows
        # side by side. No broadcast batch axis and D times wider GEMMs than one per shift.
        shifted = []
        for i in range(d):
            dy = (i - r) * s2
            end = -(md - dy) if md - dy > 0 else _INT64_MAX
            shifted.append(body.op("Slice", [rows2, body.const([md + dy]), body.const([end]), body.const([1])], "rows_dy"))
        stacked = body.op("Concat", shifted, "stacked", axis=3)  # (B, H', C, D * Wp)
        pairs = body.op("MatMul", [rows1, stacked], "pairs")  # (B, H', W', D * Wp)
        row_len = body.op("Slice", [body.op("Shape", [rows2], "shape2"), body.const([3]), body.const([4]), body.const([0])], "row_len")
        flat = body.op("Reshape", [pairs, body.const([0, 0, -1], "flat_shape")], "flat")  # (B, H', W' * D * Wp)
        # element (x, i, j) -> x * D * Wp + i * Wp + x + offset + j * s2
        xs = body.op("Range", [zero, body.op("Squeeze", [out_w, body.const([0])], "w_scalar"), one], "xs")
        per_x = body.op("Add", [body.op("Mul", [row_len, body.const([d])], "d_row_len"), body.const([1])], "per_x")
        x_part = body.op("Reshape", [body.op("Mul", [xs, per_x], "x_start"), body.const([-1, 1, 1])], "x_part")
        i_part = body.op("Reshape", [body.op("Mul", [body.const(list(range(d)), "dys"), row_len], "i_start"), body.const([1, -1, 1])], "i_part")
        j_part = body.const([offset + j * s2 for j in range(d)], "dxs")
        index = body.op("Reshape", [body.op("Add", [body.op("Add", [x_part, i_part], "xi"), j_part], "index_3d"), body.const([-1])], "index")
        band = body.op("Gather", [flat, index], "band_flat", axis=2)  # (B, H', W' * D * D)
        band = body.op("Reshape", [band, body.const([0, 0, -1, d, d])], "band_rows")  # (B, H', W', Dy, Dx)
        band = body.op("Transpose", [band], "band", perm=[0, 3, 4, 1, 2])  # (B, Dy, Dx, H', W')
        cost = body.op("Reshape", [band, body.op("Concat", [body.const([0, -1]), out_hw], "cost_shape", axis=0)], "cost")
        body.nodes.append(helper.make_node("Identity", [cost], ["out"]))
        return _finish(body, opset, overload)
    rows1 = body.unsqueeze(rows1, [1])
    shifted = []
    for i in range(d):
        dy = (i - r) * s2
        end = -(md - dy) if md - dy > 0 else _INT64_MAX
        block = body.op("Slice", [rows2, body.const([md + dy]), body.const([end]), body.const([1])], "rows_dy")
        shifted.append(body.unsqueeze(block, [1]))
    stacked = body.op("Concat", shifted, "stacked", axis=1)
    pairs = body.op("MatMul", [rows1, stacked], "pairs")  # (B, D, H', nT, T, T + 2md)
    row_len = t + 2 * md
    flat = body.op("Reshape", [pairs, body.const([0, 0, 0, 0, -1], "flat_shape")], "flat")
    index = body.const([x * (row_len + 1) + offset + j * s2 for x in range(t) for j in range(d)], "band_index")
    band = body.op("Gather", [flat, index], "band_flat", axis=4)  # (B, D, H', nT, T * D)
    band = body.op("Reshape", [band, body.const([0, 0, 0, -1, d])], "band_padded")  # (B, D, H', W'', D)
    band = body.op("Slice", [band, body.const([0]), out_w, body.const([3])], "band")
    cost = body.op("Transpose", [band], "cost_t", perm=[0, 1, 4, 2, 3])  # (B, Dy, Dx, H', W')
    cost = body.op("Reshape", [cost, body.op("Concat", [body.const([0, -1]), out_hw], "cost_shape", axis=0)], "cost")
    body.nodes.append(helper.make_node("Identity", [cost], ["out"]))
    return _finish(body, opset, overload)


def use_band_bodies(model: onnx.ModelProto, tile: int | None = DEFAULT_TILE) -> int:
    """Replace (in place) every Correlation function whose attributes allow it; returns how many."""
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
        model.functions[index].CopyFrom(build_band_function(attrs, opset, fn.overload or None, tile))
        replaced += 1
    return replaced
