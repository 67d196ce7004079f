"""What recognition produces and checks against, below the package and its rewriters.

``Layer`` (one recognized layer and its verdict), ``EdgeflowCorrelation`` (the drop-in replacement)
and ``VERIFY_RTOL`` live here so that ``converters.recognize`` and its rewriters for ``.pt2``
programs (``exported.py``) and TorchScript traces (``traced.py``) all import them from one module
below them, instead of the rewriters importing the package that imports them (a cycle).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from converters.ops.attrs import CorrelationAttrs
from converters.ops.correlation import correlation
from converters.recognize.apis import cupy_attrs

#: Largest allowed |edgeflow - original| relative to the layer's largest |output| (fp32 sums).
VERIFY_RTOL = 1e-4


class EdgeflowCorrelation(nn.Module):
    """Drop-in replacement: edgeflow's op with a third-party API's output layout."""

    def __init__(self, attrs: CorrelationAttrs, five_d: bool = False, stride_arg: bool = False, api: str = "declared"):
        super().__init__()
        self.attrs, self.five_d, self.stride_arg, self.api = attrs, five_d, stride_arg, api

    def forward(self, f1, f2, stride=None):
        a = self.attrs
        if self.stride_arg and stride is not None:
            a = cupy_attrs(int(stride))
        out = correlation(f1, f2, a.max_displacement, a.kernel_size, a.stride1, a.stride2, a.pad_size, a.normalize)
        if self.five_d:
            out = out.unflatten(1, (a.grid_width, a.grid_width))
        return out

    def extra_repr(self) -> str:
        return f"{self.api}: {describe(self.attrs)}{', 5-D output' if self.five_d else ''}"


def describe(a: CorrelationAttrs) -> str:
    parts = [f"md {a.max_displacement}"]
    if a.stride2 != 1:
        parts.append(f"stride2 {a.stride2}")
    if a.kernel_size != 1:
        parts.append(f"kernel {a.kernel_size}")
    if a.stride1 != 1:
        parts.append(f"stride1 {a.stride1}")
    if a.pad_size != a.max_displacement:
        parts.append(f"pad {a.pad_size}")
    parts.append("mean" if a.normalize else "sum")
    return ", ".join(parts) + f" ({a.out_channels} channels)"


@dataclass
class Layer:
    """One recognized (or declared) correlation layer and what happened to it."""

    path: str  # module path in the model ("decoder.corr") or "module.function" for functional forms
    api: str
    attrs: CorrelationAttrs | None
    five_d: bool = False
    calls: int = 0  # calls seen in the verification forward
    max_abs: float | None = None  # worst |edgeflow - original| over those calls
    status: str = "replaced"  # replaced | unverified | skipped
    reason: str | None = None

    def line(self) -> str:
        if self.status == "skipped":
            return f"kept {self.path} ({self.api}): {self.reason}"
        head = f"replaced {self.path} ({self.api}) -> edgeflow::Correlation {describe(self.attrs)}"
        if self.status == "unverified":
            return f"{head}; not verified: {self.reason}"
        return f"{head}; verified on {self.calls} call(s), max |diff| {self.max_abs:.1e}"

    def as_dict(self) -> dict:
        return {"path": self.path, "api": self.api, "attrs": self.attrs.as_onnx_attributes() if self.attrs else None,
                "five_d": self.five_d, "calls": self.calls, "max_abs_diff": self.max_abs, "status": self.status,
                "reason": self.reason}
