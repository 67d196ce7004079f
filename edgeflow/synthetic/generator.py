"""FlyingChairs-style training pairs with exact optical flow, in numpy.

Each sample is a random layered scene (:mod:`edgeflow.synthetic.layout`) rendered at ``t = 0``
(frame 1) and ``t = 1`` (frame 2); flow and the valid mask come from the same layer poses
(:mod:`edgeflow.synthetic.scene`), then both frames get the same photometric augmentation
(:mod:`edgeflow.synthetic.photometric`).

``sample(index)`` is a pure function of ``(seed, index)``: any worker can produce any sample,
which is what a training loop with several data-loader workers, INT8 calibration and a fixed
evaluation subset all need. Geometry and augmentation use separate random streams, so switching
augmentation off leaves frames' geometry, flow and valid mask unchanged.

Run ``python -m edgeflow.synthetic`` to measure generation speed.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Iterator, NamedTuple, Optional, Union

import numpy as np

from edgeflow.errors import InputError
from edgeflow.synthetic import photometric
from edgeflow.synthetic.layout import MotionRange, random_scene
from edgeflow.synthetic.photometric import PhotometricAugment
from edgeflow.synthetic.scene import Scene
from edgeflow.synthetic.textures import TextureBank, default_bank

# Random-stream tags, so the same (seed, index) gives independent streams per purpose.
_GEOMETRY, _PHOTOMETRIC, _REGIME, _WARP = 0, 1, 2, 3


class FlowSample(NamedTuple):
    """One training pair. ``frame1``/``frame2``: ``HxWx3`` uint8 RGB; ``flow``: ``HxWx2``
    float32 ``(u, v)`` in pixels, frame-1 pixel ``(x, y)`` moves to ``(x + u, y + v)``;
    ``valid``: ``HxW`` bool, the point is visible in frame 2 (not occluded, not out of view)."""

    frame1: np.ndarray
    frame2: np.ndarray
    flow: np.ndarray
    valid: np.ndarray


def check_size(height, width, minimum: int = 8) -> tuple[int, int]:
    """Validate a frame size given by a user (``InputError`` on nonsense)."""
    try:
        h, w = int(height), int(width)
    except (TypeError, ValueError):
        raise InputError(f"frame size must be integers, got height={height!r} width={width!r}") from None
    if h != height or w != width or h < minimum or w < minimum:
        raise InputError(f"frame size must be whole numbers >= {minimum}, got {height}x{width} (height x width)")
    return h, w


def whole_number(value, name: str, minimum: int = 0, maximum: Optional[int] = None) -> int:
    """``value`` as an int in ``[minimum, maximum]``, else an ``InputError`` naming ``name``."""
    try:
        number = int(value)
        ok = number == value and number >= minimum and (maximum is None or number <= maximum)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        upper = "" if maximum is None else f" and <= {maximum}"
        raise InputError(f"{name} must be a whole number >= {minimum}{upper}, got {value!r}")
    return number


def pixels(value, name: str) -> float:
    """A finite, non-negative distance in pixels, else an ``InputError`` naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not 0 <= number < float("inf"):
        raise InputError(f"{name} must be a number of pixels >= 0, got {value!r}")
    return number


def _augment_config(augment) -> Optional[PhotometricAugment]:
    if augment is True:
        return PhotometricAugment()
    if augment is False or augment is None:
        return None
    if isinstance(augment, PhotometricAugment):
        return augment
    raise InputError(f"augment must be True, False or a PhotometricAugment, got {augment!r}")


class SyntheticFlowGenerator:
    """Deterministic, endless source of :class:`FlowSample` pairs.

    ``max_objects``: foreground objects per scene are drawn uniformly from
    ``[min(1, max_objects), max_objects]``. ``max_motion``: largest translation of an object in
    pixels between the two frames (default ``0.075 * max(height, width)``, 24 px at 320x240);
    objects also rotate (up to 10 deg), zoom (up to ~10 %) and shear, the background moves at
    most half as far and rotates up to 2 deg. ``augment``: ``True`` (default ranges), ``False``,
    or a :class:`PhotometricAugment`. ``textures``: a :class:`TextureBank` (default: the
    scikit-image photos, or procedural textures without scikit-image).
    """

    def __init__(
        self,
        height: int = 240,
        width: int = 320,
        seed: int = 0,
        *,
        max_objects: int = 8,
        max_motion: Optional[float] = None,
        augment: Union[bool, PhotometricAugment] = True,
        textures: Optional[TextureBank] = None,
        rotation: float = 10.0,
        zoom: float = 0.1,
        small_prob: float = 0.0,
        large_prob: float = 0.0,
        large_motion: Optional[float] = None,
        nonrigid: float = 0.0,
    ):
        self.height, self.width = check_size(height, width)
        self.seed = whole_number(seed, "seed")
        self.max_objects = whole_number(max_objects, "max_objects", 0, 254)
        default_motion = 0.075 * max(self.height, self.width)
        self.max_motion = pixels(default_motion if max_motion is None else max_motion, "max_motion")
        self.augment = _augment_config(augment)
        self.textures = textures if textures is not None else default_bank()
        self.object_motion = MotionRange(translation=self.max_motion, rotation=float(rotation), zoom=float(zoom), shear=0.1)
        self.background_motion = MotionRange(translation=self.max_motion / 2, rotation=2.0, zoom=0.03, shear=0.02)
        # Motion regimes (issue 14): a share of sub-pixel scenes and one of large-motion scenes
        # (the camera pans fast too), drawn from their own random stream so that with both
        # probabilities at 0 every sample is exactly what it was before these options existed.
        self.small_prob, self.large_prob = float(small_prob), float(large_prob)
        if not (0 <= self.small_prob and 0 <= self.large_prob and self.small_prob + self.large_prob <= 1):
            raise InputError(f"small_prob and large_prob must be >= 0 and sum to <= 1, got {small_prob}, {large_prob}")
        self.large_motion = pixels(2.5 * self.max_motion if large_motion is None else large_motion, "large_motion")
        self.nonrigid = pixels(nonrigid, "nonrigid")

    def _motion_ranges(self, index: int) -> tuple[MotionRange, MotionRange]:
        if self.small_prob <= 0 and self.large_prob <= 0:
            return self.object_motion, self.background_motion
        draw = self._rng(index, _REGIME).random()
        if draw < self.small_prob:  # sub-pixel to a few pixels, everything small
            scale = 2.0 / max(self.max_motion, 1e-6)
            return (dataclasses.replace(self.object_motion, translation=2.0, rotation=1.0, zoom=0.01),
                    dataclasses.replace(self.background_motion, translation=self.background_motion.translation * scale,
                                        rotation=0.5, zoom=0.005))
        if draw < self.small_prob + self.large_prob:  # large: objects and background up to large_motion
            return (dataclasses.replace(self.object_motion, translation=self.large_motion),
                    dataclasses.replace(self.background_motion, translation=self.large_motion * 0.8))
        return self.object_motion, self.background_motion

    def _rng(self, index: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, whole_number(index, "sample index"), stream])

    def scene(self, index: int) -> Scene:
        """The layered scene behind ``sample(index)``, frame 1 at ``t = 0``, frame 2 at ``t = 1``."""
        rng = self._rng(index, _GEOMETRY)
        count = int(rng.integers(min(1, self.max_objects), self.max_objects + 1))
        object_motion, background_motion = self._motion_ranges(index)
        return random_scene(rng, self.height, self.width, self.textures, count, object_motion, background_motion)

    def sample(self, index: int) -> FlowSample:
        """Sample ``index``; the same ``(seed, index)`` always gives the same arrays."""
        scene = self.scene(index)
        image1, ids1 = scene.render_planar(0.0)
        image2, _ = scene.render_planar(1.0)
        flow, valid = scene.flow(0.0, 1.0, ids1)
        if self.nonrigid > 0:
            image2, flow, valid = nonrigid_warp(self._rng(index, _WARP), image2, flow, valid, self.nonrigid)
        if self.augment is None:
            frame1, frame2 = photometric.to_uint8(image1), photometric.to_uint8(image2)
        else:
            frame1, frame2 = photometric.augment_pair(self.augment, image1, image2, self._rng(index, _PHOTOMETRIC))
        return FlowSample(frame1, frame2, flow, valid)

    def __iter__(self) -> Iterator[FlowSample]:
        """Samples 0, 1, 2, ... forever."""
        return (self.sample(i) for i in itertools.count())


def smooth_field(rng: np.random.Generator, height: int, width: int, amplitude: float) -> np.ndarray:
    """A smooth random displacement field ``2 x H x W`` (px): Gaussian values on a coarse grid
    (3..6 cells a side), bicubically interpolated; its largest value is about ``amplitude``."""
    from skimage.transform import resize

    cells = (int(rng.integers(3, 7)), int(rng.integers(3, 7)))
    coarse = rng.normal(0.0, amplitude / 2.0, (2,) + cells)
    return np.stack([resize(c, (height, width), order=3, mode="edge") for c in coarse]).astype(np.float32)


def nonrigid_warp(rng: np.random.Generator, image2: np.ndarray, flow: np.ndarray, valid: np.ndarray,
                  amplitude: float):
    """Bend frame 2 (float ``C x H x W``) by a smooth field ``d`` and keep the flow exact.

    New frame 2 is ``I2'(q) = I2(q + d(q))``. A frame-1 pixel ``p`` went to ``t = p + f(p)`` in
    ``I2``, so in ``I2'`` it sits at the ``q`` with ``q + d(q) = t``, found by the fixed-point
    iteration ``q <- t - d(q)`` (a contraction while ``|grad d| < 1``, true for these smooth
    fields). Pixels whose ``q`` leaves the frame become invalid. Applied to half of the samples.
    """
    if rng.random() < 0.5:
        return image2, flow, valid
    from edgeflow.synthetic.sampling import PlanarTexture

    channels, height, width = image2.shape
    field = smooth_field(rng, height, width, rng.uniform(0.3, 1.0) * amplitude)
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    warped = PlanarTexture(image2.transpose(1, 2, 0)).sample(xs + field[0], ys + field[1], "clamp")
    image2 = warped.reshape(channels, height, width)
    tx, ty = xs + flow[..., 0], ys + flow[..., 1]
    displacement = PlanarTexture(field.transpose(1, 2, 0))
    qx, qy = tx.copy(), ty.copy()
    for _ in range(6):
        d = displacement.sample(qx, qy, "clamp")
        qx, qy = tx - d[0].reshape(height, width), ty - d[1].reshape(height, width)
    flow = np.stack([qx - xs, qy - ys], axis=-1).astype(np.float32)
    valid = valid & (qx >= 0) & (qx <= width - 1) & (qy >= 0) & (qy <= height - 1)
    return image2, flow, valid


def benchmark(height: int = 240, width: int = 320, count: int = 50, clock=time.perf_counter, **kwargs) -> float:
    """Mean milliseconds per ``sample()`` (after one warm-up sample that loads the textures).

    ``clock=time.process_time`` measures this process's CPU time instead of wall time, which is
    the fairer number on a busy machine.
    """
    gen = SyntheticFlowGenerator(height, width, **kwargs)
    gen.sample(count)
    start = clock()
    for i in range(count):
        gen.sample(i)
    return (clock() - start) / count * 1e3
