"""Expand ``edgeflow::Correlation`` nodes into their band-MatMul bodies, for INT8 on onnxruntime.

The correlation is a third of an INT8 pwc-lite's CPU time when it runs in float: its GEMM writes
a (H', W', D * Wp) float matrix ~10x larger than the cost volume, then a Gather picks the band.
Inlined, onnxruntime's quantizer sees that chain (Transpose, Slice, Concat, MatMul, Gather,
Reshape) and runs it as uint8: ``QLinearMatMul`` writes a quarter of the bytes, and the Gather
and reshapes move uint8. Measured on pwc-lite at 320x240: INT8 model CPU time 0.73x -> 0.68x of
FP32 (docs/quantization.md).

Only the onnxruntime-CPU graph is inlined; the TensorRT-bound graph keeps the node, so TensorRT
still binds its plugin. Every inlined node and tensor is named ``<Correlation node>/<body name>``
(e.g. ``/decoder/correlations.3/Correlation/pairs_23``): the accuracy guard can address one
level's correlation as a group and keep it in float.
"""

from __future__ import annotations

import onnx
from onnx import helper

from converters.ops.correlation import ONNX_DOMAIN, ONNX_OP

#: Output-name stems of the band body (converters.ops.band_correlation) that quantize cleanly:
#: the data-moving chain from frame 2's rows to the cost volume. Frame 1's rows stay float up
#: to the GEMM (they are divided by C there, a float op).
QUANTIZABLE_STEMS = ("rows2", "rows_dy", "stacked", "pairs", "flat", "band_flat", "band_rows", "band", "cost")


def _stem(name: str) -> str:
    return name.rsplit("_", 1)[0]


def inlinable(model: onnx.ModelProto) -> bool:
    """True when every Correlation function is a band-MatMul body without attribute references."""
    fns = [f for f in model.functions if (f.domain, f.name) == (ONNX_DOMAIN, ONNX_OP)]
    if not fns:
        return False
    for fn in fns:
        if not any(n.op_type == "MatMul" for n in fn.node):
            return False
        for node in fn.node:
            if any(a.ref_attr_name for a in node.attribute):
                return False
    return True


def inline_correlations(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Inline (in place) every Correlation node; returns {node name: quantizable inlined nodes}."""
    fns = {(f.domain, f.name, f.overload): f for f in model.functions}
    out_nodes, chains = [], {}
    for node in model.graph.node:
        if (node.domain, node.op_type) != (ONNX_DOMAIN, ONNX_OP):
            out_nodes.append(node)
            continue
        fn = fns[(node.domain, node.op_type, node.overload)]
        prefix = node.name or f"correlation_{len(chains)}"
        binding = dict(zip(fn.input, node.input))
        final = fn.node[-1]  # Identity(cost) -> out: write the node's output directly instead
        if final.op_type == "Identity" and final.output[0] == fn.output[0]:
            binding[final.input[0]] = node.output[0]
            body = fn.node[:-1]
        else:
            binding.update(zip(fn.output, node.output))
            body = fn.node
        chain = []
        for inner in body:
            rename = lambda t: binding.get(t, f"{prefix}/{t}") if t else t  # noqa: E731
            new = helper.make_node(inner.op_type, [rename(t) for t in inner.input], [rename(t) for t in inner.output],
                                   name=f"{prefix}/{inner.name or inner.output[0]}", domain=inner.domain)
            new.attribute.extend(inner.attribute)
            out_nodes.append(new)
            if _stem(inner.output[0]) in QUANTIZABLE_STEMS and inner.op_type != "Constant":
                chain.append(new.name)
        chains[prefix] = chain
    del model.graph.node[:]
    model.graph.node.extend(out_nodes)
    used = {(n.domain, n.op_type) for n in model.graph.node}
    keep = [f for f in model.functions if (f.domain, f.name) in used]
    del model.functions[:]
    model.functions.extend(keep)
    if not any(d == ONNX_DOMAIN for d, _ in used):
        kept = [o for o in model.opset_import if o.domain != ONNX_DOMAIN]
        del model.opset_import[:]
        model.opset_import.extend(kept)
    return chains
