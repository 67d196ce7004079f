"""Bilinear texture sampling in plain numpy.

Everything in :mod:`edgeflow.synthetic` is rendered by *inverse mapping*: for every output pixel
we compute where it comes from in a source image and sample there. Coordinates are pixel
centres: source pixel ``[i, j]`` sits at ``(x=j, y=i)``.

Training draws samples on the fly on a CPU, so this is written for speed:

* :class:`PackedTexture` (the renderer's default, uint8 sources) stores, for every texel, the
  RGBA bytes of its 2x2 neighbourhood in 16 contiguous bytes. A bilinear sample is then *one*
  gather instead of twelve (4 taps x 3 planes): on real scenes that sample several textures the
  gathers' cache misses, not the arithmetic, are the cost.
* :class:`PlanarTexture` keeps float32 planes; slower, but holds any values (tests use it with
  linear ramps, on which bilinear interpolation is exact).
* Work is done in blocks of ``CHUNK`` samples: whole-frame temporaries (hundreds of KB each)
  make the allocator hand memory back to the OS and page-fault it in again on every call, which
  costs more than the arithmetic.

:func:`sample_bilinear` / :func:`warp_backward` are the convenient ``HxWxC`` forms used by tests
and the evaluation set.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

BORDERS = ("mirror", "clamp")
CHUNK = 8192


def mirror_index(index: np.ndarray, size: int) -> np.ndarray:
    """Reflect integer indices into ``[0, size - 1]`` (…, 2, 1, 0, 1, 2, …, size-1, size-2, …).

    Reflection instead of clamping keeps textures free of smeared streaks when a moving layer
    shows more than its source image holds.
    """
    if size == 1:
        return np.zeros_like(index)
    period = 2 * size - 2
    index = np.abs(index) % period
    return np.where(index >= size, period - index, index)


def _corners(x: np.ndarray, y: np.ndarray, height: int, width: int):
    """Integer top-left corner, fractional offsets and whether the 2x2 footprint is in bounds."""
    x0f = np.floor(x)
    y0f = np.floor(y)
    fx = x - x0f
    fy = y - y0f
    x0 = x0f.astype(np.intp)
    y0 = y0f.astype(np.intp)
    inside = bool(x0.min() >= 0 and y0.min() >= 0 and x0.max() < width - 1 and y0.max() < height - 1)
    return x0, y0, fx, fy, inside


def _border_indices(x0, y0, height, width, border):
    """The four flat texel indices of each footprint, with the border rule applied."""
    x1 = x0 + 1
    y1 = y0 + 1
    if border == "clamp":
        x0, x1 = np.clip(x0, 0, width - 1), np.clip(x1, 0, width - 1)
        y0, y1 = np.clip(y0, 0, height - 1), np.clip(y1, 0, height - 1)
    else:
        x0, x1 = mirror_index(x0, width), mirror_index(x1, width)
        y0, y1 = mirror_index(y0, height), mirror_index(y1, height)
    y0 = y0 * width
    y1 = y1 * width
    return y0 + x0, y0 + x1, y1 + x0, y1 + x1


class Texture:
    """Interface: ``height``, ``width``, ``channels`` and ``sample(x, y, border, gain)``."""

    height: int
    width: int
    channels: int

    def sample(
        self,
        x: np.ndarray,
        y: np.ndarray,
        border: str = "mirror",
        gain: Optional[np.ndarray] = None,
        out: Optional[np.ndarray] = None,
    ) -> np.ndarray:
        """Bilinear samples at float coordinates as float32 ``C x n`` (times ``gain``, per channel).

        ``x``, ``y``: equal-shaped arrays, read in C order. ``out``: optional float32 ``C x n``
        array to write into (e.g. a reshaped frame, saving a copy).
        """
        if border not in BORDERS:
            raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
        x = np.asarray(x, dtype=np.float32).ravel()
        y = np.asarray(y, dtype=np.float32).ravel()
        if out is None:
            out = np.empty((self.channels, x.shape[0]), dtype=np.float32)
        for start in range(0, x.shape[0], CHUNK):
            stop = start + CHUNK
            self._block(x[start:stop], y[start:stop], border, out[:, start:stop])
        if gain is not None:
            out *= np.asarray(gain, np.float32)[:, None]
        return out

    def sample_grid(
        self,
        coeffs: tuple[float, float, float, float, float, float],
        height: int,
        width: int,
        border: str = "mirror",
        gain: Optional[np.ndarray] = None,
        out: Optional[np.ndarray] = None,
    ) -> np.ndarray:
        """Sample at the affine image of a ``height x width`` pixel grid; float32 ``C x (h*w)``.

        Grid pixel ``(x, y)`` reads the texture at ``(a x + b y + c, d x + e y + f)`` with
        ``coeffs = (a, b, c, d, e, f)``. Same result as :meth:`sample` on those coordinates,
        but they are generated a few rows at a time instead of as two frame-sized arrays.
        """
        if border not in BORDERS:
            raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
        if out is None:
            out = np.empty((self.channels, height * width), dtype=np.float32)
        a, b, c, d, e, f = (float(v) for v in coeffs)
        xs = np.arange(width, dtype=np.float32)
        ax, dx = a * xs, d * xs
        rows = max(1, CHUNK // max(width, 1))
        for y0 in range(0, height, rows):
            ys = np.arange(y0, min(y0 + rows, height), dtype=np.float32)[:, None]
            tx = (ax + (b * ys + c)).ravel()
            ty = (dx + (e * ys + f)).ravel()
            self._block(tx, ty, border, out[:, y0 * width : y0 * width + tx.shape[0]])
        if gain is not None:
            out *= np.asarray(gain, np.float32)[:, None]
        return out

    def _block(self, x, y, border, out) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class PackedTexture(Texture):
    """uint8 image (``HxW`` or ``HxWxC``, ``C <= 4``) packed as 2x2 RGBA neighbourhoods."""

    def __init__(self, image: np.ndarray):
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise TypeError(f"PackedTexture needs uint8 data, got {image.dtype}")
        if image.ndim == 2:
            image = image[:, :, None]
        h, w, c = image.shape
        if c > 4:
            raise ValueError(f"at most 4 channels, got {c}")
        rgba = np.zeros((h, w, 4), np.uint8)
        rgba[:, :, :c] = image
        texel = rgba.view(np.uint32)[:, :, 0]
        right = np.concatenate([texel[:, 1:], texel[:, -1:]], axis=1)
        below = np.concatenate([texel[1:], texel[-1:]], axis=0)
        below_right = np.concatenate([right[1:], right[-1:]], axis=0)
        # Row i*w + j: texels (i, j), (i, j+1), (i+1, j), (i+1, j+1); edges replicated (only
        # reached when the fractional weight of the missing neighbour is zero).
        self.quads = np.stack([texel, right, below, below_right], axis=-1).reshape(h * w, 4)
        self.height, self.width, self.channels = h, w, c

    def _block(self, x, y, border, out) -> None:
        h, w = self.height, self.width
        x0, y0, fx, fy, inside = _corners(x, y, h, w)
        if inside:
            index = y0
            index *= w
            index += x0
            # One 16-byte gather per sample; axis=0 on an (N, 4) uint32 array is numpy's fast
            # fixed-size-chunk path.
            taps = np.take(self.quads, index, axis=0).view(np.uint8)  # (n, 16): 4 taps x RGBA
        else:
            texel = self.quads[:, 0]
            taps = np.stack([np.take(texel, i) for i in _border_indices(x0, y0, h, w, border)], axis=1)
            taps = taps.view(np.uint8)
        gx = 1.0 - fx
        gy = 1.0 - fy
        weights = (gx * gy, fx * gy, gx * fy, fx * fy)
        term = np.empty_like(fx)
        for c in range(self.channels):
            o = out[c]
            np.multiply(taps[:, c], weights[0], out=o)
            for k in (1, 2, 3):
                np.multiply(taps[:, 4 * k + c], weights[k], out=term)
                o += term


class PlanarTexture(Texture):
    """Float image (``HxW`` or ``HxWxC``) kept as float32 planes; any value range."""

    def __init__(self, image: np.ndarray):
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[:, :, None]
        h, w, c = image.shape
        self.planes = np.ascontiguousarray(image.reshape(h * w, c).T, dtype=np.float32)
        self.height, self.width, self.channels = h, w, c

    def _block(self, x, y, border, out) -> None:
        h, w = self.height, self.width
        x0, y0, fx, fy, inside = _corners(x, y, h, w)
        if inside:
            i00 = y0 * w + x0
            i01, i10, i11 = i00 + 1, i00 + w, i00 + w + 1
        else:
            i00, i01, i10, i11 = _border_indices(x0, y0, h, w, border)
        for c, plane in enumerate(self.planes):
            a = np.take(plane, i00)
            top = a + (np.take(plane, i01) - a) * fx
            b = np.take(plane, i10)
            bottom = b + (np.take(plane, i11) - b) * fx
            np.add(top, (bottom - top) * fy, out=out[c])


def sample_bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray, border: str = "clamp") -> np.ndarray:
    """Sample an ``HxW`` or ``HxWxC`` image at float coordinates ``x``, ``y`` (any equal shapes).

    Returns float32 of shape ``x.shape + (C,)``.
    """
    x = np.asarray(x, dtype=np.float32)
    values = PlanarTexture(image).sample(x, y, border)
    return np.ascontiguousarray(values.T).reshape(x.shape + (values.shape[0],))


def warp_backward(frame2: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pull ``frame2`` back onto ``frame1``'s grid: ``out[p] = frame2(p + flow[p])``.

    With a correct flow, ``out`` reproduces ``frame1`` wherever the point is visible in both
    frames. Returns ``(warped float32 HxWxC, inside bool HxW)`` where ``inside`` says that
    ``p + flow[p]`` fell within frame2 (outside, the edge pixel was repeated).
    """
    h, w = flow.shape[:2]
    xs = np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]
    ys = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
    inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    return sample_bilinear(frame2, xs, ys, border="clamp"), inside
