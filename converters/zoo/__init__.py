"""Model zoo: clean PyTorch optical-flow models built around the edgeflow Correlation op.

Every model maps two (B, 3, H, W) float32 RGB frames in 0..255 to a (B, 2, H, W) flow in pixels
(frame-1 pixel (x, y) moves to (x + u, y + v)), is split into ``encoder`` (per frame, cacheable)
and ``decoder`` (pair -> flow), and needs H, W multiples of ``model.pad_multiple`` in ``forward``
(``forward_any_size`` pads for you). See :mod:`converters.zoo.base`.
"""

from converters.zoo.base import FlowNetwork
from converters.zoo.flownetc import FLOWNETC_CONFIG, FLOWNETC_S_CONFIG, FlowNetC, FlowNetCConfig
from converters.zoo.pwc import PWC_CONFIG, PWC_LITE_CONFIG, PWCConfig, PWCNet
from converters.zoo.registry import (
    ARCHS,
    MODELS,
    RandomWeightsWarning,
    build_model,
    correlation_attributes,
    get_model,
    list_models,
)

__all__ = [
    "FlowNetwork",
    "PWCNet",
    "PWCConfig",
    "PWC_CONFIG",
    "PWC_LITE_CONFIG",
    "FlowNetC",
    "FlowNetCConfig",
    "FLOWNETC_CONFIG",
    "FLOWNETC_S_CONFIG",
    "ARCHS",
    "MODELS",
    "RandomWeightsWarning",
    "build_model",
    "correlation_attributes",
    "get_model",
    "list_models",
]
