"""The dynamo ONNX exporter's translation of ``torch.ops.edgeflow.correlation``.

Why: a program that already holds the op as one node (a ``torch.export`` ``.pt2``, or any model
traced with the custom op) reaches the dynamo exporter as ``edgeflow::correlation``, for which
torch has no ONNX function. This translation (onnxscript) emits the one
``edgeflow::Correlation`` node with its six attributes; :mod:`converters.ops.onnx_function`
attaches the standard-op body afterwards, exactly as for the TorchScript exporter.

Eager models exported with ``dynamo=True`` do not need it: :func:`converters.ops.correlation`
emits the node itself through ``torch.onnx.ops.symbolic`` while the exporter traces.
"""

from __future__ import annotations

import torch

from converters.ops.correlation import ONNX_DOMAIN, ONNX_DOMAIN_VERSION, ONNX_OP  # also registers the op


def register_onnx_schema() -> None:
    """Declare ``edgeflow::Correlation`` to onnx (inputs, output, attributes): onnxscript builds
    nodes only for ops with a schema. Idempotent; no shape inference is declared."""
    import onnx
    from onnx.defs import OpSchema

    if onnx.defs.has(ONNX_OP, ONNX_DOMAIN):
        return
    from converters.ops.onnx_function import ATTRIBUTE_NAMES

    schema = OpSchema(
        ONNX_OP, ONNX_DOMAIN, ONNX_DOMAIN_VERSION,
        doc="Correlation / cost volume (edgeflow docs/correlation.md)",
        inputs=[OpSchema.FormalParameter("f1", "T"), OpSchema.FormalParameter("f2", "T")],
        outputs=[OpSchema.FormalParameter("out", "T")],
        type_constraints=[("T", ["tensor(float)", "tensor(float16)", "tensor(double)"], "float tensors")],
        attributes=[OpSchema.Attribute(name, OpSchema.AttrType.INT, "", required=False) for name in ATTRIBUTE_NAMES],
    )
    onnx.defs.register_schema(schema)


def _translation():
    import onnxscript

    register_onnx_schema()
    node = onnxscript.values.Opset(ONNX_DOMAIN, ONNX_DOMAIN_VERSION)[ONNX_OP]

    def correlation(f1, f2, max_displacement: int, kernel_size: int, stride1: int, stride2: int, pad_size: int,
                    normalize: bool):
        return node(
            f1, f2, max_displacement=int(max_displacement), kernel_size=int(kernel_size), stride1=int(stride1),
            stride2=int(stride2), pad_size=int(pad_size), normalize=int(bool(normalize)),
        )

    return correlation


def custom_translation_table() -> dict:
    """``torch.onnx.export(program, ..., dynamo=True, custom_translation_table=custom_translation_table())``."""
    return {torch.ops.edgeflow.correlation.default: _translation()}
