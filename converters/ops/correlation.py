"""The correlation (cost-volume) op in PyTorch: fast eager path, autograd, and ONNX export.

Eager: one vectorized multiply-reduce per displacement over the whole image (never a loop over
pixels). Autograd comes for free because only differentiable torch ops are used. fp16 inputs are
multiplied and accumulated in fp32 and the result is cast back, matching the CUDA kernel.

Export: while ``torch.onnx.export`` (TorchScript exporter) runs, the op is routed through an
``autograd.Function`` whose ``symbolic`` emits ONE node ``edgeflow::Correlation`` carrying the
attributes; :mod:`converters.ops.onnx_function` then attaches a standard-op function body so any
ONNX runtime can execute it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from converters.ops.attrs import CorrelationAttrs

ONNX_DOMAIN = "edgeflow"
ONNX_OP = "Correlation"
ONNX_DOMAIN_VERSION = 1

_call_counters: list[list[int]] = []


class count_calls:
    """``with count_calls() as n: model(x, y)`` -> ``n[0]`` correlation calls were made.

    The exporter uses it to know how many ``Correlation`` nodes a faithful graph must contain,
    however the model reuses its layers or calls the functional form.
    """

    def __enter__(self) -> list[int]:
        self.counter = [0]
        _call_counters.append(self.counter)
        return self.counter

    def __exit__(self, *exc):
        _call_counters.remove(self.counter)
        return False


def _correlation_eager(f1: torch.Tensor, f2: torch.Tensor, a: CorrelationAttrs) -> torch.Tensor:
    if f1.shape != f2.shape or f1.dim() != 4:
        raise ValueError(f"correlation: inputs must be two (B, C, H, W) tensors of one shape, got {tuple(f1.shape)} and {tuple(f2.shape)}")
    out_dtype = f1.dtype
    if f1.dtype in (torch.float16, torch.bfloat16):
        f1, f2 = f1.float(), f2.float()  # fp32 accumulation, as the CUDA kernel does
    channels, height, width = f1.shape[1], f1.shape[2], f1.shape[3]
    out_h, out_w = a.out_size(height, width)
    p, md, k, s1 = a.pad_size, a.max_displacement, a.kernel_size, a.stride1
    padded1 = F.pad(f1, (p, p, p, p))
    padded2 = F.pad(f2, (p, p, p, p))
    # Rows/cols of padded1 touched by any output (window centres +- kernel radius).
    span_h = (out_h - 1) * s1 + k
    span_w = (out_w - 1) * s1 + k
    region1 = padded1[:, :, md : md + span_h, md : md + span_w]
    planes = []
    for dy, dx in a.displacements():
        region2 = padded2[:, :, md + dy : md + dy + span_h, md + dx : md + dx + span_w]
        planes.append((region1 * region2).sum(dim=1))
    cost = torch.stack(planes, dim=1)
    if k > 1:
        cost = F.avg_pool2d(cost, k, s1) * (k * k)
    elif s1 > 1:
        cost = cost[:, :, ::s1, ::s1]
    if a.normalize:
        cost = cost / (channels * k * k)
    return cost.to(out_dtype)


class _CorrelationExport(torch.autograd.Function):
    """Only used while exporting: makes the TorchScript exporter emit one custom node."""

    @staticmethod
    def forward(ctx, f1, f2, max_displacement, kernel_size, stride1, stride2, pad_size, normalize):
        attrs = CorrelationAttrs(max_displacement, kernel_size, stride1, stride2, pad_size, bool(normalize))
        return _correlation_eager(f1, f2, attrs)

    @staticmethod
    def symbolic(g, f1, f2, max_displacement, kernel_size, stride1, stride2, pad_size, normalize):
        out = g.op(
            f"{ONNX_DOMAIN}::{ONNX_OP}",
            f1,
            f2,
            max_displacement_i=max_displacement,
            kernel_size_i=kernel_size,
            stride1_i=stride1,
            stride2_i=stride2,
            pad_size_i=pad_size,
            normalize_i=int(normalize),
        )
        # Shape for the exporter's inference pass: channels are static, H'/W' follow the input.
        attrs = CorrelationAttrs(max_displacement, kernel_size, stride1, stride2, pad_size, bool(normalize))
        sizes = f1.type().varyingSizes() if f1.type().kind() == "TensorType" else None
        if sizes:
            spatial = [None, None]
            if sizes[2] is not None and sizes[3] is not None:
                spatial = list(attrs.out_size(sizes[2], sizes[3]))
            out.setType(f1.type().with_sizes([sizes[0], attrs.out_channels, *spatial]))
        return out


def correlation(
    f1: torch.Tensor,
    f2: torch.Tensor,
    max_displacement: int,
    kernel_size: int = 1,
    stride1: int = 1,
    stride2: int = 1,
    pad_size: int | None = None,
    normalize: bool = True,
) -> torch.Tensor:
    """Correlate ``f1`` with ``f2`` shifted by every displacement; returns (B, D*D, H', W').

    See docs/correlation.md for the exact definition (FlowNet2 / PWC-Net semantics).
    """
    attrs = CorrelationAttrs(max_displacement, kernel_size, stride1, stride2, pad_size, normalize)
    for counter in _call_counters:
        counter[0] += 1
    if torch.onnx.is_in_onnx_export():
        return _CorrelationExport.apply(
            f1, f2, attrs.max_displacement, attrs.kernel_size, attrs.stride1, attrs.stride2, attrs.pad_size, int(attrs.normalize)
        )
    return _correlation_eager(f1, f2, attrs)


class Correlation(nn.Module):
    """Cost-volume layer: ``Correlation(max_displacement=4)(f1, f2)`` -> (B, 81, H, W)."""

    def __init__(
        self,
        max_displacement: int,
        kernel_size: int = 1,
        stride1: int = 1,
        stride2: int = 1,
        pad_size: int | None = None,
        normalize: bool = True,
    ):
        super().__init__()
        self.attrs = CorrelationAttrs(max_displacement, kernel_size, stride1, stride2, pad_size, normalize)

    @property
    def out_channels(self) -> int:
        return self.attrs.out_channels

    def forward(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        a = self.attrs
        return correlation(f1, f2, a.max_displacement, a.kernel_size, a.stride1, a.stride2, a.pad_size, a.normalize)

    def extra_repr(self) -> str:
        a = self.attrs
        return (
            f"max_displacement={a.max_displacement}, kernel_size={a.kernel_size}, stride1={a.stride1}, "
            f"stride2={a.stride2}, pad_size={a.pad_size}, normalize={a.normalize}"
        )
