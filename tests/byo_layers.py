"""Faithful stand-ins for third-party correlation APIs that cannot be installed here.

spatial-correlation-sampler and mmcv build CUDA extensions, flownet2's package is CUDA source
and the PWC-Net / LiteFlowNet ports launch cupy kernels, so none runs on this CPU-only machine.
Each class below has the API's documented constructor, attribute names and output layout, and
computes its documented formula with plain loops over displacements and kernel offsets (written
from the docs' formulas, independently of edgeflow's op), so the recognizers are tested against
what the real layers compute. docs/byo.md lists which is which.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def sampler_formula(in1, in2, kernel_size=1, patch_size=1, stride=1, padding=0, dilation=1, dilation_patch=1):
    """spatial-correlation-sampler: out[b, ph, pw, y, x] = sum_c sum_{i,j<k} in1[c, y*s - pad + i*dil, x*s - pad + j*dil]
    * in2[c, same + (ph*dp - dp*(P-1)//2), same + (pw*dp - dp*(P-1)//2)]; zeros outside; no normalization."""
    (kh, kw), (ph_n, pw_n), (sh, sw), (padh, padw) = map(_pair, (kernel_size, patch_size, stride, padding))
    (dh, dw), (dph, dpw) = _pair(dilation), _pair(dilation_patch)
    b, c, h, w = in1.shape
    out_h = (h + 2 * padh - dh * (kh - 1) - 1) // sh + 1
    out_w = (w + 2 * padw - dw * (kw - 1) - 1) // sw + 1
    rad_h, rad_w = dph * (ph_n - 1) // 2, dpw * (pw_n - 1) // 2
    big = max(rad_h, rad_w) + max(padh, padw) + 1
    p1 = F.pad(in1, (big, big, big, big))
    p2 = F.pad(in2, (big, big, big, big))
    out = in1.new_zeros(b, ph_n, pw_n, out_h, out_w)
    ys = torch.arange(out_h) * sh - padh + big
    xs = torch.arange(out_w) * sw - padw + big
    for ph in range(ph_n):
        oy = ph * dph - rad_h
        for pw in range(pw_n):
            ox = pw * dpw - rad_w
            acc = 0
            for i in range(kh):
                for j in range(kw):
                    a = p1[:, :, ys + i * dh][:, :, :, xs + j * dw]
                    bb = p2[:, :, ys + i * dh + oy][:, :, :, xs + j * dw + ox]
                    acc = acc + (a * bb).sum(1)
            out[:, ph, pw] = acc
    return out


def spatial_correlation_sample(input1, input2, kernel_size=1, patch_size=1, stride=1, padding=0, dilation=1, dilation_patch=1):
    return sampler_formula(input1, input2, kernel_size, patch_size, stride, padding, dilation, dilation_patch)


class SpatialCorrelationSampler(nn.Module):
    """spatial_correlation_sampler.SpatialCorrelationSampler's constructor and attributes."""

    def __init__(self, kernel_size=1, patch_size=1, stride=1, padding=0, dilation=1, dilation_patch=1):
        super().__init__()
        self.kernel_size, self.patch_size, self.stride = kernel_size, patch_size, stride
        self.padding, self.dilation, self.dilation_patch = padding, dilation, dilation_patch

    def forward(self, input1, input2):
        return sampler_formula(input1, input2, self.kernel_size, self.patch_size, self.stride, self.padding,
                               self.dilation, self.dilation_patch)


class IterSpatialCorrelationSampler(SpatialCorrelationSampler):
    """PTLFlow's pure-PyTorch stand-in: same API, kernel_size 1 only."""


class TritonSpatialCorrelationSampler(SpatialCorrelationSampler):
    """localcorr's sampler: the same API (kernel_size=1, padding=0)."""


class Correlation(nn.Module):
    """mmcv.ops.Correlation: the sampler with patch_size = 2*max_displacement + 1, 5-D output."""

    def __init__(self, kernel_size=1, max_displacement=1, stride=1, padding=0, dilation=1, dilation_patch=1):
        super().__init__()
        self.kernel_size, self.max_displacement, self.stride = kernel_size, max_displacement, stride
        self.padding, self.dilation, self.dilation_patch = padding, dilation, dilation_patch

    def forward(self, input1, input2):
        return sampler_formula(input1, input2, self.kernel_size, 2 * self.max_displacement + 1, self.stride,
                               self.padding, self.dilation, self.dilation_patch)


def flownet2_formula(in1, in2, pad_size, kernel_size, max_displacement, stride1, stride2):
    """flownet2-pytorch correlation_cuda: windows centred at x*s1 + md + kr in the padded maps,
    displacements (i - r)*s2 with r = md // s2 (vertical outer), mean over C * k * k."""
    b, c, h, w = in1.shape
    kr = (kernel_size - 1) // 2
    border = max_displacement + kr
    p1, p2 = F.pad(in1, (pad_size,) * 4), F.pad(in2, (pad_size,) * 4)
    hp, wp = h + 2 * pad_size, w + 2 * pad_size
    out_h = -(-(hp - 2 * border) // stride1)
    out_w = -(-(wp - 2 * border) // stride1)
    r = max_displacement // stride2
    d = 2 * r + 1
    out = in1.new_zeros(b, d * d, out_h, out_w)
    ys = torch.arange(out_h) * stride1 + border
    xs = torch.arange(out_w) * stride1 + border
    for ti in range(d):
        for tj in range(d):
            dy, dx = (ti - r) * stride2, (tj - r) * stride2
            acc = 0
            for a in range(-kr, kr + 1):
                for e in range(-kr, kr + 1):
                    acc = acc + (p1[:, :, ys + a][:, :, :, xs + e] * p2[:, :, ys + a + dy][:, :, :, xs + e + dx]).sum(1)
            out[:, ti * d + tj] = acc / (c * kernel_size * kernel_size)
    return out


class FlowNet2Correlation(nn.Module):
    """flownet2-pytorch ``networks/correlation_package/correlation.py`` Correlation; named like it below."""

    def __init__(self, pad_size=0, kernel_size=0, max_displacement=0, stride1=1, stride2=2, corr_multiply=1):
        super().__init__()
        self.pad_size, self.kernel_size, self.max_displacement = pad_size, kernel_size, max_displacement
        self.stride1, self.stride2, self.corr_multiply = stride1, stride2, corr_multiply

    def forward(self, input1, input2):
        return flownet2_formula(input1, input2, self.pad_size, self.kernel_size, self.max_displacement, self.stride1, self.stride2)


FlowNet2Correlation.__name__ = "Correlation"  # the real class's name; attributes tell it from mmcv's


def cupy_formula(one, two, stride=None):
    """sniklaus' cupy kernels: PWC-Net (no stride: 9x9, pad 4) or LiteFlowNet (7x7 displacements
    ``stride`` apart, output every ``stride`` pixels, pad 3*stride); sum / C."""
    radius, s = (4, 1) if stride is None else (3, int(stride))
    pad = radius * s
    b, c, h, w = one.shape
    p1, p2 = F.pad(one, (pad,) * 4), F.pad(two, (pad,) * 4)
    out_h, out_w = -(-h // s), -(-w // s)
    d = 2 * radius + 1
    out = one.new_zeros(b, d * d, out_h, out_w)
    ys = (torch.arange(out_h) + radius) * s
    xs = (torch.arange(out_w) + radius) * s
    for ch in range(d * d):
        ox, oy = (ch % d - radius) * s, (ch // d - radius) * s
        out[:, ch] = (p1[:, :, ys][:, :, :, xs] * p2[:, :, ys + oy][:, :, :, xs + ox]).sum(1) / c
    return out


class CudaOnly:
    """Set ``CudaOnly.enabled = True`` to make the cupy stand-ins fail on CPU tensors like the real ones."""

    enabled = False


def FunctionCorrelation(tenOne, tenTwo):  # noqa: N802,N803 (the port's names)
    if CudaOnly.enabled and not tenOne.is_cuda:
        raise NotImplementedError()
    return cupy_formula(tenOne, tenTwo)


class ModuleCorrelation(nn.Module):
    def forward(self, tenOne, tenTwo):  # noqa: N803
        return FunctionCorrelation(tenOne, tenTwo)


class LiteModuleCorrelation(nn.Module):
    """LiteFlowNet's port: ``forward(tenOne, tenTwo, intStride)``."""

    def forward(self, tenOne, tenTwo, intStride):  # noqa: N803
        return cupy_formula(tenOne, tenTwo, intStride)


LiteModuleCorrelation.__name__ = "ModuleCorrelation"


class TinyFlow(nn.Module):
    """Features -> one correlation layer (any API) -> flow head; ``channels`` = the layer's output channels."""

    def __init__(self, corr: nn.Module, channels: int, lite_stride: int | None = None):
        super().__init__()
        self.features = nn.Conv2d(3, 8, 3, padding=1)
        self.corr = corr
        self.lite_stride = lite_stride
        self.head = nn.Conv2d(channels, 2, 3, padding=1)

    def forward(self, a, b):
        fa, fb = self.features(a / 255.0), self.features(b / 255.0)
        cost = self.corr(fa, fb) if self.lite_stride is None else self.corr(fa, fb, self.lite_stride)
        if cost.dim() == 5:
            cost = cost.flatten(1, 2)
        cost = F.interpolate(F.leaky_relu(cost, 0.1), size=a.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(cost)


class FunctionalSampler(nn.Module):
    """Calls the functional form, as code written against ``spatial_correlation_sample`` does."""

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Conv2d(25 + 9, 2, 3, padding=1)

    def forward(self, a, b):
        fa, fb = self.features(a / 255.0), self.features(b / 255.0)
        c1 = spatial_correlation_sample(fa, fb, kernel_size=1, patch_size=5, dilation_patch=2).flatten(1, 2)
        c2 = FunctionCorrelation(fa[:, :, ::2, ::2], fb[:, :, ::2, ::2])[:, :9]
        c2 = F.interpolate(c2, size=a.shape[-2:], mode="nearest")
        return self.head(torch.cat([c1, c2], 1))


class HandWritten(nn.Module):
    """A hand-written correlation (unfold-based), as users write them: the escape hatch's case."""

    def __init__(self, radius=3):
        super().__init__()
        self.radius = radius

    def forward(self, f1, f2):
        b, c, h, w = f1.shape
        d = 2 * self.radius + 1
        windows = F.unfold(f2, d, padding=self.radius).view(b, c, d * d, h, w)
        return (windows * f1.unsqueeze(2)).mean(1)


class HandWrittenFlow(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, 8, 3, padding=1)
        self.matcher = HandWritten(3)
        self.head = nn.Conv2d(49, 2, 3, padding=1)

    def forward(self, a, b):
        return self.head(self.matcher(self.features(a / 255.0), self.features(b / 255.0)))
