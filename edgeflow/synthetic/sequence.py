"""Synthetic *video*: a layered scene animated over time, with exact flow between frames.

This is what the ``synthetic://`` frame source and the demos play: the same kind of scene as
the training pairs (:mod:`edgeflow.synthetic.layout`), but every layer moves with a constant
per-frame affine velocity (translation, rotation, zoom, shear; the background's gentler motion
acts as a moving camera). Frame ``t`` is rendered directly from the layers' poses at ``t``, so
the ground-truth flow between any two consecutive frames is exact, not accumulated.

An endless stream must keep its objects in view and its zoom bounded, so scene time runs
forward and back: ``tau(t)`` rises for ``bounce`` frames, then falls for ``bounce`` frames
(a triangle wave). Within each leg every velocity is constant; at a turning point the motion
reverses, and the flow there is still exact because it is always computed from the two poses.
"""

from __future__ import annotations

import itertools
from typing import Iterator, Optional, Union

import numpy as np

from edgeflow.synthetic import photometric
from edgeflow.synthetic.generator import FlowSample, _augment_config, check_size, pixels, whole_number
from edgeflow.synthetic.layout import MotionRange, random_scene
from edgeflow.synthetic.photometric import PhotometricAugment
from edgeflow.synthetic.scene import Scene
from edgeflow.synthetic.textures import TextureBank, default_bank

_GEOMETRY, _PHOTOMETRIC, _NOISE = 0, 1, 2


class SyntheticSequence:
    """A deterministic synthetic video of ``length`` frames (``None``: endless).

    ``max_speed``: largest object translation per frame in pixels (default
    ``0.012 * max(height, width)``, about 4 px at 320x240); objects also turn up to 1 deg and
    zoom up to 0.5 % per frame, the camera (background) at most half as fast. ``bounce``: frames
    per leg of the back-and-forth scene time. ``augment``: ``False`` (default, clean frames),
    ``True`` or a :class:`PhotometricAugment`; the tone settings are fixed per sequence, noise
    and blur are redrawn per frame.

    Frames are cached two at a time, so reading frames and flows in order renders each frame
    once. Not thread-safe: give each thread its own instance.
    """

    def __init__(
        self,
        height: int = 240,
        width: int = 320,
        seed: int = 0,
        *,
        length: Optional[int] = None,
        max_objects: int = 6,
        max_speed: Optional[float] = None,
        bounce: int = 60,
        augment: Union[bool, PhotometricAugment] = False,
        textures: Optional[TextureBank] = None,
    ):
        self.height, self.width = check_size(height, width)
        self.seed = whole_number(seed, "seed")
        self.length = None if length is None else whole_number(length, "sequence length", 1)
        self.bounce = whole_number(bounce, "bounce (frames)", 1)
        max_objects = whole_number(max_objects, "max_objects", 0, 254)
        speed = pixels(0.012 * max(self.height, self.width) if max_speed is None else max_speed, "max_speed")
        self.max_speed = speed
        self.augment = _augment_config(augment)
        rng = np.random.default_rng([self.seed, _GEOMETRY])
        count = int(rng.integers(min(1, max_objects), max_objects + 1))
        self.scene: Scene = random_scene(
            rng,
            self.height,
            self.width,
            textures if textures is not None else default_bank(),
            count,
            MotionRange(translation=speed, rotation=1.0, zoom=0.005, shear=0.003),
            MotionRange(translation=speed / 2, rotation=0.2, zoom=0.0025, shear=0.001),
        )
        if self.augment is not None:
            # One tone curve for the whole clip; blur switched per frame would flicker, so keep
            # the drawn blur too, and only redraw noise.
            self._params = self.augment.sample(np.random.default_rng([self.seed, _PHOTOMETRIC]))
        self._cache: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def time(self, t: int) -> float:
        """Scene time of frame ``t``: a triangle wave rising 1 per frame for ``bounce`` frames."""
        phase = int(t) % (2 * self.bounce)
        return float(phase if phase <= self.bounce else 2 * self.bounce - phase)

    def _check(self, t, last: int) -> int:
        return whole_number(t, "frame index", 0, None if self.length is None else last)

    def _render(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        tau = self.time(t)
        hit = self._cache.get(tau)
        if hit is None:
            hit = self.scene.render_planar(tau)
            if len(self._cache) >= 2:
                self._cache.pop(next(iter(self._cache)))
            self._cache[tau] = hit
        return hit

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as ``HxWx3`` uint8 RGB."""
        t = self._check(t, (self.length or 0) - 1)
        image = self._render(t)[0].copy()  # the cached render stays intact for flow() and reuse
        if self.augment is None:
            return photometric.to_uint8(image)
        return photometric.apply(image, self._params, np.random.default_rng([self.seed, _NOISE, t]))

    def flow(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact flow from frame ``t`` to ``t + 1`` (``HxWx2`` float32) and its valid mask."""
        t = self._check(t, (self.length or 0) - 2)
        ids = self._render(t)[1]
        return self.scene.flow(self.time(t), self.time(t + 1), ids)

    def pair(self, t: int) -> FlowSample:
        """Frames ``t`` and ``t + 1`` with the flow between them."""
        flow, valid = self.flow(t)
        return FlowSample(self.frame(t), self.frame(t + 1), flow, valid)

    def __iter__(self) -> Iterator[np.ndarray]:
        """The frames in order (forever when ``length`` is None)."""
        indices = itertools.count() if self.length is None else range(self.length)
        return (self.frame(t) for t in indices)
