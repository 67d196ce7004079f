"""Naive correlation: loops straight from the spec, float64 numpy. The yardstick for every fast path."""

from __future__ import annotations

import numpy as np

from converters.ops.attrs import CorrelationAttrs


def correlation_reference(f1, f2, max_displacement, kernel_size=1, stride1=1, stride2=1, pad_size=None, normalize=True):
    a = CorrelationAttrs(max_displacement, kernel_size, stride1, stride2, pad_size, normalize)
    f1 = np.asarray(f1, dtype=np.float64)
    f2 = np.asarray(f2, dtype=np.float64)
    b_, c_, h, w = f1.shape
    p = a.pad_size
    p1 = np.pad(f1, ((0, 0), (0, 0), (p, p), (p, p)))
    p2 = np.pad(f2, ((0, 0), (0, 0), (p, p), (p, p)))
    ho, wo = a.out_size(h, w)
    kr = a.kernel_radius
    out = np.zeros((b_, a.out_channels, ho, wo))
    for ch, (dy, dx) in enumerate(a.displacements()):
        for y in range(ho):
            cy = y * a.stride1 + a.border
            for x in range(wo):
                cx = x * a.stride1 + a.border
                patch1 = p1[:, :, cy - kr : cy + kr + 1, cx - kr : cx + kr + 1]
                patch2 = p2[:, :, cy + dy - kr : cy + dy + kr + 1, cx + dx - kr : cx + dx + kr + 1]
                out[:, ch, y, x] = (patch1 * patch2).sum(axis=(1, 2, 3))
    if normalize:
        out /= c_ * a.kernel_size**2
    return out
