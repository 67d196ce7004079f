"""The correlation (cost-volume) op in PyTorch: fast eager path, autograd, and ONNX export.

Eager: one vectorized multiply-reduce per displacement over the whole image (never a loop over
pixels). Autograd comes for free because only differentiable torch ops are used. fp16 inputs are
multiplied and accumulated in fp32 and the result is cast back, matching the CUDA kernel.

Export: the op is a ``torch.library`` custom op (``torch.ops.edgeflow.correlation``) with a fake
kernel and autograd, so traces (``torch.jit.trace``, ``torch.export``) keep ONE node instead of
its eager body. The TorchScript ONNX exporter turns that node into ``edgeflow::Correlation``
(a registered symbolic); the dynamo exporter gets it from ``torch.onnx.ops.symbolic`` while it
traces an eager model, and from a custom translation (:mod:`converters.ops.dynamo`) for programs
that already contain the op. :mod:`converters.ops.onnx_function` then attaches a standard-op
function body so any ONNX runtime can execute it.
"""

from __future__ import annotations

import torch
import torch.onnx.ops  # noqa: F401  (torch.onnx.ops.symbolic, used while the dynamo exporter runs)
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


# ---------------------------------------------------------------------------------------------
# The op as a torch.library custom op: ``torch.ops.edgeflow.correlation``.
#
# Why a registered op and not just Python: a registered op is a single node to every tracer.
# torch.jit.trace and torch.export record ``edgeflow::correlation`` instead of the ~400 slices
# of its eager body, so a user's trace or .pt2 still carries the correlation; the TorchScript
# ONNX exporter maps that node to ``edgeflow::Correlation`` (register_custom_op_symbolic) and
# the dynamo exporter through a custom translation (converters.ops.dynamo) or, for a plain
# ``torch.onnx.export(model, args, f)``, through ``torch.onnx.ops.symbolic`` below.
# ---------------------------------------------------------------------------------------------


@torch.library.custom_op("edgeflow::correlation", mutates_args=())
def _correlation_op(
    f1: torch.Tensor,
    f2: torch.Tensor,
    max_displacement: int,
    kernel_size: int,
    stride1: int,
    stride2: int,
    pad_size: int,
    normalize: bool,
) -> torch.Tensor:
    for counter in _call_counters:  # counted here so traced / exported programs are counted too
        counter[0] += 1
    attrs = CorrelationAttrs(max_displacement, kernel_size, stride1, stride2, pad_size, normalize)
    return _correlation_eager(f1, f2, attrs)


def _out_len(n, attrs: CorrelationAttrs):
    """Output length along one axis; integer-only so symbolic sizes (torch.export) work."""
    span = n + 2 * attrs.pad_size - 2 * attrs.border
    return (span + attrs.stride1 - 1) // attrs.stride1


@_correlation_op.register_fake
def _correlation_fake(f1, f2, max_displacement, kernel_size, stride1, stride2, pad_size, normalize):
    attrs = CorrelationAttrs(max_displacement, kernel_size, stride1, stride2, pad_size, normalize)
    torch._check(f1.dim() == 4 and f1.shape == f2.shape, lambda: "correlation: inputs must be two (B, C, H, W) tensors of one shape")
    return f1.new_empty((f1.shape[0], attrs.out_channels, _out_len(f1.shape[2], attrs), _out_len(f1.shape[3], attrs)))


def _setup_context(ctx, inputs, output):
    f1, f2, *attrs = inputs
    ctx.save_for_backward(f1, f2)
    ctx.attrs = CorrelationAttrs(*attrs)


def _backward(ctx, grad):
    """Gradients by re-running the differentiable eager body: the op stays trainable."""
    f1, f2 = ctx.saved_tensors
    with torch.enable_grad():
        a = f1.detach().requires_grad_(ctx.needs_input_grad[0])
        b = f2.detach().requires_grad_(ctx.needs_input_grad[1])
        out = _correlation_eager(a, b, ctx.attrs)
        wanted = [t for t in (a, b) if t.requires_grad]
        grads = iter(torch.autograd.grad(out, wanted, grad) if wanted else ())
    g1 = next(grads) if ctx.needs_input_grad[0] else None
    g2 = next(grads) if ctx.needs_input_grad[1] else None
    return g1, g2, None, None, None, None, None, None


_correlation_op.register_autograd(_backward, setup_context=_setup_context)


def _torchscript_symbolic(g, f1, f2, max_displacement, kernel_size, stride1, stride2, pad_size, normalize):
    """TorchScript exporter: ``edgeflow::correlation`` -> one ``edgeflow::Correlation`` node."""
    from torch.onnx import symbolic_helper as sh

    values = [sh._get_const(v, "i", name) for v, name in zip(
        (max_displacement, kernel_size, stride1, stride2, pad_size), ("max_displacement", "kernel_size", "stride1", "stride2", "pad_size"))]
    attrs = CorrelationAttrs(*values, bool(sh._get_const(normalize, "b", "normalize")))
    out = g.op(f"{ONNX_DOMAIN}::{ONNX_OP}", f1, f2, **{f"{k}_i": v for k, v in attrs.as_onnx_attributes().items()})
    # Shape for the exporter's inference pass: channels are static, H'/W' follow the input.
    # The rank is always 4, even where the input's sizes are unknown (a rewritten trace):
    # later symbolics (flatten, unflatten) need the rank.
    if f1.type().kind() == "TensorType":
        sizes = f1.type().varyingSizes() or [None] * 4
        spatial = [None, None]
        if len(sizes) == 4 and sizes[2] is not None and sizes[3] is not None:
            spatial = list(attrs.out_size(sizes[2], sizes[3]))
        out.setType(f1.type().with_sizes([sizes[0] if len(sizes) == 4 else None, attrs.out_channels, *spatial]))
    return out


for _opset in range(9, 25):
    torch.onnx.register_custom_op_symbolic("edgeflow::correlation", _torchscript_symbolic, _opset)


def _dynamo_exporting() -> bool:
    """True while ``torch.onnx.export(..., dynamo=True)`` traces (not the TorchScript exporter)."""
    if not torch.onnx.is_in_onnx_export():
        return False
    try:
        from torch.onnx._internal.exporter import _flags
    except ImportError:  # a torch without the dynamo exporter
        return False
    return bool(getattr(_flags, "_is_onnx_exporting", False))


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
    a = CorrelationAttrs(max_displacement, kernel_size, stride1, stride2, pad_size, normalize)
    if _dynamo_exporting():
        # torch.onnx.export(..., dynamo=True) of an eager model: emit the ONNX node directly, so
        # a user's plain export needs no translation table.
        for counter in _call_counters:
            counter[0] += 1
        shape = (f1.shape[0], a.out_channels, _out_len(f1.shape[2], a), _out_len(f1.shape[3], a))
        return torch.onnx.ops.symbolic(f"{ONNX_DOMAIN}::{ONNX_OP}", (f1, f2), a.as_onnx_attributes(), dtype=f1.dtype,
                                       shape=shape, version=ONNX_DOMAIN_VERSION)
    return torch.ops.edgeflow.correlation(f1, f2, a.max_displacement, a.kernel_size, a.stride1, a.stride2, a.pad_size, bool(a.normalize))


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
