"""Standard-op ONNX function bodies for ``edgeflow::Correlation``.

The exported graph keeps one ``Correlation`` node (so TensorRT can bind our plugin to it) and the
model carries a *model-local function* of the same name whose body uses only standard ONNX ops, so
plain onnxruntime, or any ONNX runtime, executes it with no edgeflow code loaded.

A function body is fixed: the number of displacements is structure, not a value. So there is one
function per attribute set. When a model uses a single set (every zoo model does) the function is
``edgeflow::Correlation``; when it uses several, each gets an IR-10 ``overload`` id and its nodes
point at it. The body never depends on H or W (negative slice ends), so dynamic spatial axes work.

Formulations (benchmarks/bench_correlation_onnx.py measures them; docs/correlation.md quotes it):
  ``slice_mean``  per displacement: Slice(f2) -> Mul(f1) -> ReduceMean(channels); Concat.   (default)
  ``slice_stack`` per displacement: Slice -> Mul -> Unsqueeze; one Concat, one ReduceMean.
  ``gather``      ONE body for every attribute set (kernel_size 1, stride1 1, normalize): the
                  displacement indices are built at run time from Range over the node's own
                  attributes (``ref_attr_name``), then two Gathers build all shifted windows at once.
"""

from __future__ import annotations

import onnx
from onnx import AttributeProto, FunctionProto, TensorProto, helper

from converters.ops.attrs import CorrelationAttrs
from converters.ops.correlation import ONNX_DOMAIN, ONNX_OP

FORMULATIONS = ("slice_mean", "slice_stack", "gather")
DEFAULT_FORMULATION = "slice_mean"
_INT64_MAX = 2**63 - 1
# Body nodes carry this name prefix so profilers can attribute inlined nodes to the op.
BODY_NODE_PREFIX = "edgeflow_correlation/"
ATTRIBUTE_NAMES = ["max_displacement", "kernel_size", "stride1", "stride2", "pad_size", "normalize"]



def correlation_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The graph's ``edgeflow::Correlation`` nodes (here, not in export.py: the band bodies need them too)."""
    return [n for n in model.graph.node if n.domain == ONNX_DOMAIN and n.op_type == ONNX_OP]


def node_attrs(node: onnx.NodeProto) -> CorrelationAttrs:
    values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return CorrelationAttrs.from_dict(values)


class _Body:
    """Accumulates nodes of a function body with unique value names."""

    def __init__(self, opset: int):
        self.opset = opset
        self.nodes = []
        self._n = 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def const(self, values, stem="c") -> str:
        out = self.name(stem)
        tensor = helper.make_tensor(out, TensorProto.INT64, [len(values)], [int(v) for v in values])
        self.nodes.append(helper.make_node("Constant", [], [out], value=tensor, name=f"{BODY_NODE_PREFIX}{out}"))
        return out

    def op(self, op_type: str, inputs, stem=None, **attrs) -> str:
        out = self.name(stem or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=f"{BODY_NODE_PREFIX}{out}", **attrs))
        return out

    def reduce(self, op_type: str, x: str, axes: list[int], keepdims: int) -> str:
        # ReduceSum takes axes as an input from opset 13, the other Reduce* ops from opset 18.
        if self.opset >= (13 if op_type == "ReduceSum" else 18):
            return self.op(op_type, [x, self.const(axes, "axes")], keepdims=keepdims)
        return self.op(op_type, [x], axes=axes, keepdims=keepdims)

    def unsqueeze(self, x: str, axes: list[int]) -> str:
        if self.opset >= 13:
            return self.op("Unsqueeze", [x, self.const(axes, "axes")])
        return self.op("Unsqueeze", [x], axes=axes)



def _attr_const(body: _Body, attr: str) -> str:
    """A scalar int64 Constant whose value is the calling node's attribute ``attr``."""
    out = body.name(attr)
    node = helper.make_node("Constant", [], [out])
    node.attribute.append(helper.make_attribute_ref("value_int", AttributeProto.INT, ref_attr_name=attr))
    body.nodes.append(node)
    return out


def _gather_body(body: _Body) -> str:
    """Attribute-generic body: indices from Range, windows from Gather. Returns the output name."""
    md, s2, p = (_attr_const(body, a) for a in ("max_displacement", "stride2", "pad_size"))
    p1 = body.unsqueeze(p, [0])
    z2 = body.const([0, 0], "z2")
    pads = body.op("Concat", [z2, p1, p1, z2, p1, p1], "pads", axis=0)
    f1 = body.op("Pad", ["f1", pads], "pad1", mode="constant")
    f2 = body.op("Pad", ["f2", pads], "pad2", mode="constant")
    shape = body.op("Shape", [f2], "shape")
    two_md = body.op("Add", [md, md], "two_md")
    sizes = []
    for axis in (2, 3):
        full = body.op("Gather", [shape, body.op("Constant", [], "axis", value=helper.make_tensor("a", TensorProto.INT64, [], [axis]))], "dim", axis=0)
        sizes.append((full, body.op("Sub", [full, two_md], "span")))
    one = body.op("Constant", [], "one", value=helper.make_tensor("one", TensorProto.INT64, [], [1]))
    zero = body.op("Constant", [], "zero", value=helper.make_tensor("zero", TensorProto.INT64, [], [0]))
    r = body.op("Div", [md, s2], "radius")
    disp = body.op("Mul", [body.op("Range", [body.op("Neg", [r]), body.op("Add", [r, one]), one], "grid"), s2], "disp")
    disp_col = body.unsqueeze(disp, [1])
    windows = f2
    for (full, span), axis in zip(sizes, (2, 4)):
        idx = body.op("Add", [body.op("Add", [disp_col, body.unsqueeze(body.op("Range", [zero, span, one], "pos"), [0])]), md], "idx")
        windows = body.op("Gather", [windows, idx], "shifted", axis=axis)  # (B,C,D,Hr,Wp) then (B,C,D,Hr,D,Wr)
    starts = body.op("Concat", [body.unsqueeze(md, [0]), body.unsqueeze(md, [0])], "starts", axis=0)
    ends = body.op("Concat", [body.unsqueeze(body.op("Sub", [full_, md]), [0]) for full_, _ in sizes], "ends", axis=0)
    region1 = body.op("Slice", [f1, starts, ends, body.const([2, 3], "hw")], "region1")
    prod = body.op("Mul", [windows, body.unsqueeze(region1, [2, 4])], "prod")
    cost = body.reduce("ReduceMean", prod, [1], keepdims=0)  # (B, D, Hr, D, Wr)
    cost = body.op("Transpose", [cost], "dd", perm=[0, 1, 3, 2, 4])
    target = body.op("Concat", [body.const([0, -1], "keep"), body.unsqueeze(sizes[0][1], [0]), body.unsqueeze(sizes[1][1], [0])], "target", axis=0)
    return body.op("Reshape", [cost, target], "cost")


def build_correlation_function(
    attrs: CorrelationAttrs,
    opset: int,
    formulation: str = DEFAULT_FORMULATION,
    overload: str | None = None,
) -> FunctionProto:
    """A FunctionProto ``edgeflow::Correlation`` computing ``attrs`` from standard ops."""
    if formulation not in FORMULATIONS:
        raise ValueError(f"unknown correlation formulation {formulation!r}; choose one of {FORMULATIONS}")
    a = attrs
    body = _Body(opset)
    if formulation == "gather":
        if a.kernel_size != 1 or a.stride1 != 1 or not a.normalize:
            raise ValueError("the gather formulation covers kernel_size=1, stride1=1, normalize=1 only")
        if opset < 13:
            raise ValueError("the gather formulation needs opset >= 13")
        body.nodes.append(helper.make_node("Identity", [_gather_body(body)], ["out"]))
        return _finish(body, opset, overload)
    p, md, k, s1 = a.pad_size, a.max_displacement, a.kernel_size, a.stride1
    f1, f2 = "f1", "f2"
    if p > 0:
        pads = body.const([0, 0, p, p, 0, 0, p, p], "pads")
        f1 = body.op("Pad", [f1, pads], "pad1", mode="constant")
        f2 = body.op("Pad", [f2, pads], "pad2", mode="constant")
    axes = body.const([2, 3], "hw")

    def window(x, dy, dx):
        # Rows [md + dy, Hp - md + dy): Hp - 2*md rows, which covers every output window.
        ends = [-(md - d) if md - d > 0 else _INT64_MAX for d in (dy, dx)]
        return body.op("Slice", [x, body.const([md + dy, md + dx], "starts"), body.const(ends, "ends"), axes], "win")

    region1 = window(f1, 0, 0)
    reduce_op = "ReduceMean" if a.normalize else "ReduceSum"
    planes = []
    for dy, dx in a.displacements():
        prod = body.op("Mul", [region1, window(f2, dy, dx)], "prod")
        if formulation == "slice_mean":
            planes.append(body.reduce(reduce_op, prod, [1], keepdims=1))
        else:
            planes.append(body.unsqueeze(prod, [1]))
    if formulation == "slice_mean":
        cost = body.op("Concat", planes, "cost", axis=1)
    else:
        stacked = body.op("Concat", planes, "stacked", axis=1)
        cost = body.reduce(reduce_op, stacked, [2], keepdims=0)
    if k > 1 or s1 > 1:
        # Window sum over k x k (kernel centres every s1 pixels). AveragePool divides by k*k,
        # which is exactly the spec's normalization; without normalize we undo it.
        cost = body.op("AveragePool", [cost], "pool", kernel_shape=[k, k], strides=[s1, s1])
        if not a.normalize and k > 1:
            scale = body.name("kk")
            body.nodes.append(
                helper.make_node("Constant", [], [scale], value=helper.make_tensor(scale, TensorProto.FLOAT, [], [float(k * k)]))
            )
            cost = body.op("Mul", [cost, scale], "scaled")
    # The function output is always named "out"; fp16 graphs need the Mul constant in fp16 too,
    # so normalize=False with k>1 is only supported for fp32 graphs.
    body.nodes.append(helper.make_node("Identity", [cost], ["out"]))
    return _finish(body, opset, overload)


def _finish(body: _Body, opset: int, overload: str | None) -> FunctionProto:
    fn = helper.make_function(
        ONNX_DOMAIN,
        ONNX_OP,
        ["f1", "f2"],
        ["out"],
        body.nodes,
        [helper.make_opsetid("", opset)],
        attributes=ATTRIBUTE_NAMES,
    )
    if overload:
        fn.overload = overload
    return fn
