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
_GEOMETRY, _PHOTOMETRIC = 0, 1


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
    ):
        self.height, self.width = check_size(height, width)
        self.seed = whole_number(seed, "seed")
        self.max_objects = whole_number(max_objects, "max_objects", 0, 254)
        default_motion = 0.075 * max(self.height, self.width)
        self.max_motion = pixels(default_motion if max_motion is None else max_motion, "max_motion")
        self.augment = _augment_config(augment)
        self.textures = textures if textures is not None else default_bank()
        self.object_motion = MotionRange(translation=self.max_motion, rotation=10.0, zoom=0.1, shear=0.1)
        self.background_motion = MotionRange(translation=self.max_motion / 2, rotation=2.0, zoom=0.03, shear=0.02)

    def _rng(self, index: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, whole_number(index, "sample index"), stream])

    def scene(self, index: int) -> Scene:
        """The layered scene behind ``sample(index)``, frame 1 at ``t = 0``, frame 2 at ``t = 1``."""
        rng = self._rng(index, _GEOMETRY)
        count = int(rng.integers(min(1, self.max_objects), self.max_objects + 1))
        return random_scene(
            rng, self.height, self.width, self.textures, count, self.object_motion, self.background_motion
        )

    def sample(self, index: int) -> FlowSample:
        """Sample ``index``; the same ``(seed, index)`` always gives the same arrays."""
        scene = self.scene(index)
        image1, ids1 = scene.render_planar(0.0)
        image2, _ = scene.render_planar(1.0)
        flow, valid = scene.flow(0.0, 1.0, ids1)
        if self.augment is None:
            frame1, frame2 = photometric.to_uint8(image1), photometric.to_uint8(image2)
        else:
            frame1, frame2 = photometric.augment_pair(self.augment, image1, image2, self._rng(index, _PHOTOMETRIC))
        return FlowSample(frame1, frame2, flow, valid)

    def __iter__(self) -> Iterator[FlowSample]:
        """Samples 0, 1, 2, ... forever."""
        return (self.sample(i) for i in itertools.count())


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
