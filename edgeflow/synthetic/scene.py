"""A layered 2-D scene whose frames and optical flow are both computed from the same poses.

The scene is a stack of layers, bottom (index 0, the background) to top. Each layer is a
texture, an analytic silhouette (none for the background, which covers the whole plane) and a
:class:`Motion`: an affine *pose* ``P(t)`` that maps the layer's local coordinates to frame
coordinates at time ``t``.

* **Rendering** frame ``t`` inverse-maps every pixel ``q`` into each layer
  (``P(t)^-1 q``), tests the silhouette there and bilinearly samples the texture of the
  top-most layer that covers ``q`` (depth order = layer order).
* **Flow** from ``t0`` to ``t1`` for a pixel ``p`` whose top layer is ``k`` is exactly
  ``T_k(p) - p`` with ``T_k = P_k(t1) P_k(t0)^-1``: the same point of the same layer.
* **Valid** means that point is still the visible one: ``T_k(p)`` lies inside frame ``t1``
  and no layer above ``k`` covers it there. Silhouettes are analytic, so this test is made at the
  exact continuous point, not at a rounded pixel.

Because frames and flow come from one set of poses, ground truth is exact by construction (up
to float32 rounding); only the texture resampling carries interpolation error.

Small transforms are handled as 6-tuples ``(a, b, c, d, e, f)`` meaning
``x' = a x + b y + c, y' = d x + e y + f`` in plain Python floats: a scene does dozens of them
per frame, and numpy's per-call overhead on 3x3 arrays would cost more than the arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from edgeflow.synthetic.sampling import Texture

Affine = tuple[float, float, float, float, float, float]


def affine6(tx: float = 0.0, ty: float = 0.0, angle: float = 0.0, scale: float = 1.0, shear: float = 0.0) -> Affine:
    """``translate(tx, ty) . rotate(angle) . shear_x(shear) . scale(scale)`` (radians) as a 6-tuple."""
    c, s = math.cos(angle), math.sin(angle)
    return (c * scale, (c * shear - s) * scale, float(tx), s * scale, (s * shear + c) * scale, float(ty))


def affine(tx: float = 0.0, ty: float = 0.0, angle: float = 0.0, scale: float = 1.0, shear: float = 0.0) -> np.ndarray:
    """The same transform as :func:`affine6`, as a 3x3 float64 matrix."""
    return to_matrix(affine6(tx, ty, angle, scale, shear))


def to_matrix(m: Affine) -> np.ndarray:
    return np.array([[m[0], m[1], m[2]], [m[3], m[4], m[5]], [0.0, 0.0, 1.0]])


def to_affine(m) -> Affine:
    """3x3 (or 2x3) matrix -> 6-tuple of Python floats (which keep float32 arrays float32)."""
    m = np.asarray(m, dtype=np.float64)
    return tuple(float(v) for v in m[:2].ravel())  # type: ignore[return-value]


def compose(p: Affine, q: Affine) -> Affine:
    """``p . q``: apply ``q`` first."""
    a, b, c, d, e, f = p
    qa, qb, qc, qd, qe, qf = q
    return (a * qa + b * qd, a * qb + b * qe, a * qc + b * qf + c, d * qa + e * qd, d * qb + e * qe, d * qc + e * qf + f)


def invert(p: Affine) -> Affine:
    a, b, c, d, e, f = p
    det = a * e - b * d
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
    return (ia, ib, -(ia * c + ib * f), id_, ie, -(id_ * c + ie * f))


def box_image(m: Affine, x0: float, x1: float, y0: float, y1: float) -> tuple[float, float, float, float]:
    """Bounding box ``(x0, x1, y0, y1)`` of the image of an axis-aligned box under ``m``."""
    a, b, c, d, e, f = m
    cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    mx, my = a * cx + b * cy + c, d * cx + e * cy + f
    rx, ry = abs(a) * hx + abs(b) * hy, abs(d) * hx + abs(e) * hy
    return mx - rx, mx + rx, my - ry, my + ry


@dataclass(frozen=True)
class Motion:
    """A pose that changes at a constant rate: every parameter is ``value + rate * t``.

    ``center`` (frame pixels) is where the layer's local origin sits at ``t = 0``; ``angle`` in
    radians, ``log_scale`` natural-log zoom, ``shear`` the x-shear factor. Rates are per unit of
    ``t`` (one frame in a sequence, the whole step in a pair).
    """

    center: tuple[float, float]
    velocity: tuple[float, float] = (0.0, 0.0)
    angle: float = 0.0
    spin: float = 0.0
    log_scale: float = 0.0
    zoom: float = 0.0
    shear: float = 0.0
    shear_rate: float = 0.0

    def pose6(self, t: float) -> Affine:
        """Local -> frame coordinates at time ``t`` as a 6-tuple."""
        return affine6(
            self.center[0] + self.velocity[0] * t,
            self.center[1] + self.velocity[1] * t,
            self.angle + self.spin * t,
            math.exp(self.log_scale + self.zoom * t),
            self.shear + self.shear_rate * t,
        )

    def pose(self, t: float) -> np.ndarray:
        """Local -> frame coordinates at time ``t`` (3x3, float64)."""
        return to_matrix(self.pose6(t))


@dataclass(frozen=True)
class Layer:
    """One textured layer.

    ``texture`` is what the layer shows (a :class:`~edgeflow.synthetic.sampling.Texture`);
    ``texture_from_local`` (3x3) places the layer's local coordinates on the texture; ``shape``
    is the silhouette in local coordinates (``None``: covers everything); ``gain`` is an
    optional per-channel colour multiplier (tints grayscale textures).
    """

    texture: Texture
    texture_from_local: np.ndarray
    motion: Motion
    shape: Optional[object] = None
    gain: Optional[np.ndarray] = None


class Scene:
    """A stack of :class:`Layer` (bottom first) seen through a ``height x width`` frame.

    Layer 0 is the background and has no silhouette; every layer above has one.
    """

    def __init__(self, height: int, width: int, layers: Sequence[Layer]):
        if not layers:
            raise ValueError("a scene needs at least one layer")
        if len(layers) > 255:
            raise ValueError("at most 255 layers (layer ids are uint8)")
        if layers[0].shape is not None or any(layer.shape is None for layer in layers[1:]):
            raise ValueError("layer 0 is the background (shape=None); every layer above needs a shape")
        self.height, self.width = int(height), int(width)
        self.layers = tuple(layers)
        self._texture_from_local = [to_affine(layer.texture_from_local) for layer in self.layers]
        self._xs = np.arange(self.width, dtype=np.float32)
        self._ys = np.arange(self.height, dtype=np.float32)

    # ------------------------------------------------------------------ geometry helpers

    def _bounds(self, k: int, pose: Affine) -> tuple[float, float, float, float]:
        """Frame-space box ``(x0, x1, y0, y1)`` containing object ``k``'s silhouette at ``pose``."""
        r = self.layers[k].shape.radius + 1.0
        return box_image(pose, -r, r, -r, r)

    def _pixel_window(self, bounds) -> Optional[tuple[int, int, int, int]]:
        """Pixel slice bounds ``(x0, x1, y0, y1)`` covering a float box (None: the whole frame),
        clipped to the frame; None when nothing is left."""
        if bounds is None:
            return 0, self.width, 0, self.height
        x0 = max(int(math.floor(bounds[0])), 0)
        x1 = min(int(math.ceil(bounds[1])) + 1, self.width)
        y0 = max(int(math.floor(bounds[2])), 0)
        y1 = min(int(math.ceil(bounds[3])) + 1, self.height)
        if x0 >= x1 or y0 >= y1:
            return None
        return x0, x1, y0, y1

    # ------------------------------------------------------------------ rendering

    def render_planar(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Frame at time ``t`` as float32 ``C x H x W`` plus the uint8 ``H x W`` top-layer ids.

        The background is drawn over the whole frame in one pass (no masks); objects are then
        visited top to bottom and each samples only pixels no object above it covers, so
        overlapping objects cost no more than one.
        """
        channels = self.layers[0].texture.channels
        image = np.empty((channels, self.height, self.width), np.float32)
        ids = np.zeros((self.height, self.width), np.uint8)
        background = self.layers[0]
        background.texture.sample_grid(
            compose(self._texture_from_local[0], invert(background.motion.pose6(t))),
            self.height,
            self.width,
            "mirror",
            background.gain,
            image.reshape(channels, -1),
        )
        covered = np.zeros((self.height, self.width), bool)
        for k in range(len(self.layers) - 1, 0, -1):
            layer = self.layers[k]
            pose = layer.motion.pose6(t)
            window = self._pixel_window(self._bounds(k, pose))
            if window is None:
                continue
            x0, x1, y0, y1 = window
            xs, ys = self._xs[None, x0:x1], self._ys[y0:y1, None]
            a, b, c, d, e, f = invert(pose)
            lx = a * xs + (b * ys + c)
            ly = d * xs + (e * ys + f)
            mask = layer.shape.contains(lx, ly)
            mask &= ~covered[y0:y1, x0:x1]
            if not mask.any():
                continue
            lx, ly = lx[mask], ly[mask]
            a, b, c, d, e, f = self._texture_from_local[k]
            values = layer.texture.sample(a * lx + (b * ly + c), d * lx + (e * ly + f), "mirror", layer.gain)
            window_image = image[:, y0:y1, x0:x1]
            for ch in range(channels):
                window_image[ch][mask] = values[ch]
            ids[y0:y1, x0:x1][mask] = k
            covered[y0:y1, x0:x1] |= mask
        return image, ids

    def render(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Frame at time ``t`` as float32 ``H x W x C`` (unclipped) plus ``H x W`` layer ids."""
        image, ids = self.render_planar(t)
        return np.ascontiguousarray(image.transpose(1, 2, 0)), ids

    # ------------------------------------------------------------------ ground truth

    def motion_between(self, k: int, t0: float, t1: float) -> np.ndarray:
        """``T_k = P_k(t1) P_k(t0)^-1``: where layer ``k`` carries a frame-``t0`` point at ``t1``."""
        return to_matrix(self._between(k, t0, t1))

    def _between(self, k: int, t0: float, t1: float) -> Affine:
        motion = self.layers[k].motion
        return compose(motion.pose6(t1), invert(motion.pose6(t0)))

    def flow(self, t0: float, t1: float, ids0: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact flow ``H x W x 2`` float32 from frame ``t0`` to ``t1`` and its valid mask.

        ``ids0`` are the top-layer ids of frame ``t0`` (from :meth:`render_planar`); pass them
        when you already rendered that frame, otherwise the frame is rendered again.
        """
        if ids0 is None:
            ids0 = self.render_planar(t0)[1]
        # The background's affine flow over the whole frame, then each object's over the pixels
        # it owns inside its own window (cheaper than gathering per-pixel coefficients).
        flow = np.empty(ids0.shape + (2,), np.float32)
        u, v = flow[..., 0], flow[..., 1]
        for k in range(len(self.layers)):
            if k == 0:
                x0, x1, y0, y1 = 0, self.width, 0, self.height
                mask = None
            else:
                window = self._pixel_window(self._bounds(k, self.layers[k].motion.pose6(t0)))
                if window is None:
                    continue
                x0, x1, y0, y1 = window
                mask = ids0[y0:y1, x0:x1] == k
                if not mask.any():
                    continue
            a, b, c, d, e, f = self._between(k, t0, t1)
            a, e = a - 1.0, e - 1.0  # displacement T(p) - p
            xs, ys = self._xs[None, x0:x1], self._ys[y0:y1, None]
            for out, expr in ((u, a * xs + (b * ys + c)), (v, d * xs + (e * ys + f))):
                if mask is None:
                    out[...] = expr
                else:
                    np.copyto(out[y0:y1, x0:x1], expr, where=mask)
        valid = self._visible(t0, t1, ids0, u, v)
        return flow, valid

    def _visible(self, t0: float, t1: float, ids0: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Frame-``t0`` pixels whose destination ``p + (u, v)`` is in the frame and not covered by
        a higher layer at ``t1``."""
        qx = self._xs[None, :] + u
        qy = self._ys[:, None] + v
        valid = (qx >= 0) & (qx <= self.width - 1) & (qy >= 0) & (qy <= self.height - 1)
        if len(self.layers) == 1:
            return valid
        # Source windows: where each layer's frame-t0 pixels are, and its motion T_k.
        sources = []
        for k, layer in enumerate(self.layers):
            window = self._pixel_window(None if k == 0 else self._bounds(k, layer.motion.pose6(t0)))
            if window is not None:
                sources.append((k, window, invert(self._between(k, t0, t1))))
        for j in range(1, len(self.layers)):
            layer = self.layers[j]
            pose = layer.motion.pose6(t1)
            bx0, bx1, by0, by1 = self._bounds(j, pose)
            # Only source pixels whose layer carries them into the occluder's box can be hidden
            # by it: the union over lower layers k of T_k^-1(box), clipped to k's own window.
            window = None
            for k, (sx0, sx1, sy0, sy1), back in sources:
                if k >= j:
                    break
                box = self._pixel_window(box_image(back, bx0, bx1, by0, by1))
                if box is None:
                    continue
                box = (max(box[0], sx0), min(box[1], sx1), max(box[2], sy0), min(box[3], sy1))
                if box[0] >= box[1] or box[2] >= box[3]:
                    continue
                window = box if window is None else (
                    min(window[0], box[0]), max(window[1], box[1]), min(window[2], box[2]), max(window[3], box[3])
                )
            if window is None:
                continue
            x0, x1, y0, y1 = window
            sub_valid = valid[y0:y1, x0:x1]
            wx, wy = qx[y0:y1, x0:x1], qy[y0:y1, x0:x1]
            cand = sub_valid & (ids0[y0:y1, x0:x1] < j) & (wx >= bx0) & (wx <= bx1) & (wy >= by0) & (wy <= by1)
            if not cand.any():
                continue
            px, py = wx[cand], wy[cand]
            a, b, c, d, e, f = invert(pose)
            covered = layer.shape.contains(a * px + (b * py + c), d * px + (e * py + f))
            cand[cand] = covered
            sub_valid &= ~cand
        return valid
