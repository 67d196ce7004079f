"""FP16 ONNX: half-precision weights and activations, float32 at the graph boundary.

For runtimes that execute FP16 natively (TensorRT, onnxruntime's CUDA / ARM FP16 kernels) and as
the precision hint for TensorRT builds. Inputs and outputs stay float32 (``keep_io_types``) so the
runtime feeds the same frames and reads the same flow as for FP32.

The conversion is onnxconverter-common's ``convert_float_to_float16``, which does not look inside
model-local functions. The ``edgeflow::Correlation`` bodies are type-generic (Slice, Mul,
ReduceMean, MatMul, Gather ...), so they run in FP16 once their inputs are FP16 (the correlation
spec: FP16 in, FP16 out); any float32 constant or Cast-to-float inside a body is converted here,
so no body silently computes in float32 or mixes types.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeflow.errors import EdgeflowError


def _functions_to_fp16(model: onnx.ModelProto) -> int:
    changed = 0
    for fn in model.functions:
        for node in fn.node:
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                        arr = numpy_helper.to_array(attr.t).astype(np.float16)
                        attr.t.CopyFrom(numpy_helper.from_array(arr, attr.t.name))
                        changed += 1
            elif node.op_type == "Cast":
                for attr in node.attribute:
                    if attr.name == "to" and attr.i == TensorProto.FLOAT:
                        attr.i = TensorProto.FLOAT16
                        changed += 1
    return changed


def _terminal_outputs(model: onnx.ModelProto) -> None:
    """Give every graph output that other nodes also read its own Identity node.

    The float16 converter's ``keep_io_types`` casts outputs back to float32 by renaming; an
    output that also feeds later nodes (every encoder feature level does) then ends up with
    float32 and float16 consumers of one tensor, which onnxruntime rejects.
    """
    read = {name for node in model.graph.node for name in node.input}
    for out in model.graph.output:
        if out.name in read:
            inner = f"{out.name}__inner"
            for node in model.graph.node:
                node.output[:] = [inner if o == out.name else o for o in node.output]
                node.input[:] = [inner if i == out.name else i for i in node.input]
            model.graph.node.append(helper.make_node("Identity", [inner], [out.name], name=f"{out.name}__output"))


def convert_fp16(src: str | Path, dst: str | Path) -> Path:
    """Write an FP16 copy of ``src`` with float32 inputs and outputs."""
    try:
        from onnxconverter_common.float16 import convert_float_to_float16
    except ImportError:
        raise EdgeflowError("--fp16 needs onnxconverter-common: pip install onnxconverter-common") from None
    model = onnx.load(str(src))
    _terminal_outputs(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the model contains values out of fp16 range" for clipped constants
        half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    _functions_to_fp16(half)
    del half.graph.value_info[:]  # stale float32 shapes of converted tensors would confuse runtimes
    dst = Path(dst)
    onnx.save(half, str(dst))
    return dst


def io_types(path: str | Path) -> dict[str, int]:
    """name -> ONNX element type of every graph input and output (for checks and tests)."""
    model = onnx.load(str(path))
    return {v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
