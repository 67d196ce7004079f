"""Foreground object silhouettes, defined analytically in the object's own coordinates.

A shape is a point-membership test ``contains(x, y)`` around the origin plus a bounding
``radius``. Because the test is analytic (not a rasterised mask) the renderer can evaluate it at
any continuous point: at pixel centres when drawing a frame, and at the exact destination
``T(p)`` of a frame-1 pixel when deciding whether that pixel is occluded in frame 2. That is
what makes the occlusion mask exact rather than rounded to the pixel grid.

Polygons and blobs are *star-shaped*: a point is inside when its distance to the origin is at
most ``R(direction)``, with ``R`` tabulated at ``TABLE_SIZE`` directions and linearly
interpolated. Directions are measured with the "diamond angle" ``y / (|x| + |y|)`` (folded to
``[-1, 3)``), which is monotonic in the true angle and about six times cheaper than ``arctan2``.
"""

from __future__ import annotations

import functools

import numpy as np

TABLE_SIZE = 1024
KINDS = ("ellipse", "polygon", "blob")


class Ellipse:
    """Axis-aligned ellipse with semi-axes ``rx``, ``ry`` (the layer pose rotates it)."""

    def __init__(self, rx: float, ry: float):
        self.rx, self.ry = float(rx), float(ry)
        self.radius = max(self.rx, self.ry)
        self._ix2 = np.float32(1.0 / (self.rx * self.rx))
        self._iy2 = np.float32(1.0 / (self.ry * self.ry))

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return x * x * self._ix2 + y * y * self._iy2 <= 1.0


class StarShape:
    """Region ``|p| <= R(direction(p))`` for a tabulated, periodic radius function ``R``.

    ``radii[k]`` is the radius in the direction :func:`table_angles` ``[k]``.
    """

    def __init__(self, radii: np.ndarray):
        self.radii = np.asarray(radii, dtype=np.float32)
        self.radius = float(self.radii.max())
        self._inner2 = np.float32(float(self.radii.min()) ** 2)
        self._scale = np.float32(len(self.radii) / 4.0)

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        n = len(self.radii)
        r2 = x * x + y * y
        q = y / (np.abs(x) + np.abs(y) + np.float32(1e-20))
        t = np.where(x >= 0, q, np.float32(2.0) - q)  # diamond angle in [-1, 3)
        t += np.float32(1.0)
        t *= self._scale  # table position in [0, n]
        i0 = t.astype(np.intp)
        frac = t - i0
        i0 %= n
        r0 = self.radii[i0]
        radius = r0 + (self.radii[(i0 + 1) % n] - r0) * frac
        return r2 <= radius * radius


@functools.lru_cache(maxsize=4)
def table_angles(n: int = TABLE_SIZE) -> np.ndarray:
    """True angles (radians) of the ``n`` table directions: diamond angles ``-1 + 4k/n``.

    Cached and shared: do not modify the returned array."""
    t = -1.0 + 4.0 * np.arange(n) / n
    q = np.where(t <= 1.0, t, 2.0 - t)
    x = np.where(t <= 1.0, 1.0 - np.abs(q), np.abs(q) - 1.0)
    return np.arctan2(q, x)


def polygon(rng: np.random.Generator, radius: float, vertices: int) -> StarShape:
    """Random star-shaped polygon: jittered vertex angles, radii in ``[0.45, 1] * radius``.

    Angle gaps stay below pi so every ray from the origin crosses exactly one edge; the table
    holds that exact crossing distance.
    """
    base = rng.uniform(0, 2 * np.pi)
    # Gaps are at most (1 + 2 * amount) * 2pi / n, which must stay below pi.
    amount = min(0.35, 0.45 * (vertices / 2 - 1))
    jitter = rng.uniform(-amount, amount, vertices) * (2 * np.pi / vertices)
    angles = np.sort((base + np.arange(vertices) * (2 * np.pi / vertices) + jitter) % (2 * np.pi))
    radii = rng.uniform(0.45, 1.0, vertices) * radius
    px, py = radii * np.cos(angles), radii * np.sin(angles)
    theta = table_angles()
    # Edge k joins vertex k and k+1 (cyclic) and covers angles [angles[k], angles[k+1]).
    k = (np.searchsorted(angles, theta % (2 * np.pi), side="right") - 1) % vertices
    k1 = (k + 1) % vertices
    ex, ey = px[k1] - px[k], py[k1] - py[k]
    dx, dy = np.cos(theta), np.sin(theta)
    # Ray r*d meets the edge where cross(r*d, e) = cross(v_k, e).
    table = (px[k] * ey - py[k] * ex) / (dx * ey - dy * ex)
    return StarShape(table)


def blob(rng: np.random.Generator, radius: float) -> StarShape:
    """Smooth random blob: a few random Fourier harmonics on a circle, scaled to ``radius``."""
    theta = table_angles()
    r = np.ones_like(theta)
    for harmonic in range(2, 6):
        r += rng.uniform(0, 0.35 / harmonic**0.5) * np.cos(harmonic * theta + rng.uniform(0, 2 * np.pi))
    r = np.maximum(r, 0.25)
    return StarShape(r * (radius / r.max()))


def random_shape(rng: np.random.Generator, radius: float):
    """An ellipse, polygon or blob of about ``radius`` pixels (its largest extent)."""
    kind = KINDS[int(rng.integers(len(KINDS)))]
    if kind == "ellipse":
        return Ellipse(radius, radius * rng.uniform(0.35, 1.0))
    if kind == "polygon":
        return polygon(rng, radius, int(rng.integers(3, 9)))
    return blob(rng, radius)
