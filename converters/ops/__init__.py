"""Custom ops: the correlation / cost-volume layer (spec: docs/correlation.md)."""

from converters.ops.attrs import CorrelationAttrs
from converters.ops.correlation import ONNX_DOMAIN, ONNX_DOMAIN_VERSION, ONNX_OP, Correlation, correlation
from converters.ops.reference import correlation_reference

__all__ = [
    "Correlation",
    "CorrelationAttrs",
    "correlation",
    "correlation_reference",
    "ONNX_DOMAIN",
    "ONNX_OP",
    "ONNX_DOMAIN_VERSION",
]
