"""What each third-party correlation API means in edgeflow's op (docs/correlation.md, docs/byo.md).

Every API below is a cost volume of dot products over a square window of displacements; they
differ in how they name the window, where the first window sits, whether they divide by the
channel count, and whether the output is 4-D ``(B, D*D, H', W')`` or 5-D ``(B, D, D, H', W')``.
Each ``*_attrs`` function turns an API's own parameters into :class:`CorrelationAttrs` plus the
output layout, or raises :class:`Unsupported` with the reason (then the layer is left alone and
convert says so). Nothing here is trusted blindly: :mod:`converters.recognize` compares every
swap numerically against the original layer on the model's own activations when it can run.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from converters.ops.attrs import CorrelationAttrs


class Unsupported(ValueError):
    """A recognized layer whose parameters edgeflow's op cannot express (reason in the message)."""


@dataclass(frozen=True)
class Mapping:
    api: str  # human name of the API, e.g. "spatial-correlation-sampler"
    attrs: CorrelationAttrs
    five_d: bool  # output (B, D, D, H', W') instead of (B, D*D, H', W')
    stride_arg: bool = False  # forward takes a third positional int: LiteFlowNet's intStride


def _pair(value, name: str) -> int:
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or int(value[0]) != int(value[1]):
            raise Unsupported(f"{name}={tuple(value)}: only square (equal height/width) values are supported")
        value = value[0]
    return int(value)


def sampler_attrs(kernel_size=1, patch_size=1, stride=1, padding=0, dilation=1, dilation_patch=1) -> CorrelationAttrs:
    """spatial-correlation-sampler (and its look-alikes): 5-D, un-normalized sums.

    ``out[b, i, j, y, x] = sum_c sum_{u,v < k} in1[c, y*s - pad + u, x*s - pad + v] *
    in2[c, y*s - pad + u + (i - P//2)*dp, x*s - pad + v + (j - P//2)*dp]`` with zeros outside.
    In edgeflow's terms the displacement spacing ``dp`` is ``stride2`` ("dilated patch"),
    ``max_displacement = (P//2)*dp`` and the zero padding is ``md + pad`` (the window's
    top-left corner is at ``y*s - pad``; edgeflow's window is centred at ``border = md + kr``).
    """
    k, p, s, pad = (_pair(v, n) for v, n in ((kernel_size, "kernel_size"), (patch_size, "patch_size"), (stride, "stride"), (padding, "padding")))
    dil, dp = _pair(dilation, "dilation"), _pair(dilation_patch, "dilation_patch")
    if dil != 1:
        raise Unsupported(f"dilation={dil}: dilated kernels are not in edgeflow's op (dilated patches are: dilation_patch)")
    if k % 2 != 1:
        raise Unsupported(f"kernel_size={k}: only odd kernels have a centre")
    if p % 2 != 1:
        raise Unsupported(f"patch_size={p}: only odd patches are symmetric around zero displacement")
    md = (p // 2) * dp
    return CorrelationAttrs(md, kernel_size=k, stride1=s, stride2=dp, pad_size=md + pad, normalize=False)


def _get(obj, *names, default=None):
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    return default


def sampler_module(obj, api: str) -> Mapping:
    attrs = sampler_attrs(
        _get(obj, "kernel_size", default=1), _get(obj, "patch_size", default=1), _get(obj, "stride", default=1),
        _get(obj, "padding", default=0), _get(obj, "dilation", default=1), _get(obj, "dilation_patch", default=1),
    )
    return Mapping(api, attrs, five_d=True)


def mmcv_module(obj) -> Mapping:
    """mmcv.ops.Correlation: the sampler's semantics with ``patch_size = 2*max_displacement + 1``."""
    md = _pair(_get(obj, "max_displacement", default=1), "max_displacement")
    attrs = sampler_attrs(_get(obj, "kernel_size", default=1), 2 * md + 1, _get(obj, "stride", default=1),
                          _get(obj, "padding", default=0), _get(obj, "dilation", default=1), _get(obj, "dilation_patch", default=1))
    return Mapping("mmcv Correlation", attrs, five_d=True)


def flownet2_module(obj) -> Mapping:
    """NVIDIA flownet2-pytorch ``Correlation(pad_size, kernel_size, max_displacement, stride1, stride2,
    corr_multiply)``: edgeflow's op is this spec (mean over C*k*k); ``corr_multiply`` is unused by
    its kernels, so only 1 is accepted."""
    mult = _get(obj, "corr_multiply", default=1)
    if int(mult) != 1:
        raise Unsupported(f"corr_multiply={mult}: flownet2's kernels ignore it, so its meaning is unclear; declare the layer instead")
    attrs = CorrelationAttrs(int(obj.max_displacement), kernel_size=int(_get(obj, "kernel_size", default=1)),
                             stride1=int(_get(obj, "stride1", default=1)), stride2=int(_get(obj, "stride2", default=1)),
                             pad_size=int(_get(obj, "pad_size", default=obj.max_displacement)), normalize=True)
    return Mapping("flownet2 Correlation", attrs, five_d=False)


def cupy_attrs(stride: int | None) -> CorrelationAttrs:
    """sniklaus' cupy correlation: PWC-Net port (no stride: 9x9, md 4) or LiteFlowNet port
    (``intStride`` s: 7x7 displacements s apart, output every s pixels); mean over channels."""
    if stride is None:
        return CorrelationAttrs(4, pad_size=4, normalize=True)
    s = int(stride)
    return CorrelationAttrs(3 * s, stride1=s, stride2=s, pad_size=3 * s, normalize=True)


def takes_stride(fn) -> bool:
    """True when ``fn(tenOne, tenTwo, intStride)`` (LiteFlowNet) rather than ``fn(tenOne, tenTwo)`` (PWC-Net)."""
    try:
        params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
    except (TypeError, ValueError):
        return False
    return len(params) >= 3


def cupy_module(obj) -> Mapping:
    forward = type(obj).forward
    if takes_stride(forward):
        # LiteFlowNet: the stride is a call argument; the replacement takes it per call.
        return Mapping("cupy ModuleCorrelation (LiteFlowNet)", cupy_attrs(1), five_d=False, stride_arg=True)
    stride = _get(obj, "stride", "intStride")
    return Mapping("cupy ModuleCorrelation (PWC-Net)" if stride is None else "cupy ModuleCorrelation (LiteFlowNet)",
                   cupy_attrs(stride), five_d=False)


# Class names -> mapping function. "Correlation" is ambiguous (mmcv, flownet2, many copies), so it
# is told apart by the attributes the instance carries.
SAMPLER_CLASSES = {
    "SpatialCorrelationSampler": "spatial-correlation-sampler",
    "IterSpatialCorrelationSampler": "PTLFlow IterSpatialCorrelationSampler",
    "TritonSpatialCorrelationSampler": "localcorr",
    "LocalCorrCudaPyramidSampler": "localcorr",
}


def match(obj) -> Mapping | None:
    """The mapping for a layer object, None when it is no correlation API we know.

    Raises :class:`Unsupported` for a known API with parameters the op cannot express.
    """
    cls = type(obj)
    name, module = cls.__name__, getattr(cls, "__module__", "") or ""
    if module.startswith("converters.ops"):
        return None  # already edgeflow's op
    if name in SAMPLER_CLASSES:
        return sampler_module(obj, SAMPLER_CLASSES[name])
    if module.startswith("localcorr") and name.endswith(("SpatialSampler", "PyramidSampler")) and hasattr(obj, "patch_size"):
        return sampler_module(obj, "localcorr")
    if name == "Correlation":
        if hasattr(obj, "dilation_patch") and hasattr(obj, "max_displacement"):
            return mmcv_module(obj)
        if hasattr(obj, "stride1") and hasattr(obj, "max_displacement"):
            return flownet2_module(obj)
        return None
    if name == "ModuleCorrelation":
        return cupy_module(obj)
    return None


#: Function names recognized in a model's module globals (the functional forms).
FUNCTIONS = {
    "spatial_correlation_sample": "spatial-correlation-sampler",
    "iter_spatial_correlation_sample": "PTLFlow iter_spatial_correlation_sample",
    "FunctionCorrelation": "cupy FunctionCorrelation",
}
