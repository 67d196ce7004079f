"""Random FlyingChairs-style scene layouts.

A layout is a textured background plane plus ``N`` foreground objects (ellipses, polygons,
blobs), each cut from a *different* texture than the background, placed at a random position,
orientation and shear, and given its own random affine motion. Following FlyingChairs
(Dosovitskiy et al., 2015), the background moves too, but more gently, which plays the part of
camera motion.

Both :class:`~edgeflow.synthetic.generator.SyntheticFlowGenerator` (two frames, ``t = 0, 1``)
and :class:`~edgeflow.synthetic.sequence.SyntheticSequence` (many frames, rates per frame) build
their scenes here; they differ only in the motion ranges they ask for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgeflow.synthetic.scene import Layer, Motion, Scene, affine
from edgeflow.synthetic.shapes import random_shape
from edgeflow.synthetic.textures import TextureBank


@dataclass(frozen=True)
class MotionRange:
    """Largest motion per unit of time: translation in pixels, rotation in degrees, zoom as a
    log-scale change, shear as a change of the x-shear factor. Each parameter is drawn
    uniformly in ``[-max, max]`` (translation: uniform magnitude, uniform direction, so small
    motions are as common as large ones)."""

    translation: float
    rotation: float
    zoom: float
    shear: float

    def sample(self, rng: np.random.Generator) -> dict:
        magnitude = rng.uniform(0, self.translation)
        direction = rng.uniform(0, 2 * math.pi)
        return {
            "velocity": (magnitude * math.cos(direction), magnitude * math.sin(direction)),
            "spin": math.radians(rng.uniform(-self.rotation, self.rotation)),
            "zoom": rng.uniform(-self.zoom, self.zoom),
            "shear_rate": rng.uniform(-self.shear, self.shear),
        }


def _gain(rng: np.random.Generator, gray: bool) -> np.ndarray:
    """Per-channel colour gain: a strong random tint for grayscale textures, a mild one otherwise."""
    spread = 0.35 if gray else 0.08
    return (1.0 + rng.uniform(-spread, spread, 3)).astype(np.float32)


def _background(rng, height, width, bank: TextureBank, index: int, motion: MotionRange) -> Layer:
    """The background plane: the frame (plus room for its motion) fits on the texture when the
    texture is large enough; where it is not, the renderer mirrors the texture."""
    th, tw = bank[index].shape[:2]
    angle = rng.integers(4) * (math.pi / 2) + math.radians(rng.uniform(-10, 10))
    c, s = abs(math.cos(angle)), abs(math.sin(angle))
    margin = 2 * motion.translation + 8
    extent_x = (width + margin) * c + (height + margin) * s
    extent_y = (width + margin) * s + (height + margin) * c
    fit = min(tw / extent_x, th / extent_y)
    scale = min(fit, 1.4) * rng.uniform(0.6, 1.0)  # texture pixels per frame pixel
    slack_x = max(tw - scale * extent_x, 0) / 2
    slack_y = max(th - scale * extent_y, 0) / 2
    center = ((tw - 1) / 2 + rng.uniform(-slack_x, slack_x), (th - 1) / 2 + rng.uniform(-slack_y, slack_y))
    return Layer(
        texture=bank.texture(index),
        texture_from_local=affine(center[0], center[1], angle, scale),
        motion=Motion(center=((width - 1) / 2, (height - 1) / 2), **motion.sample(rng)),
        shape=None,
        gain=_gain(rng, bank.is_gray(index)),
    )


def _object(rng, height, width, bank: TextureBank, index: int, motion: MotionRange, size: tuple[float, float]) -> Layer:
    th, tw = bank[index].shape[:2]
    radius = min(height, width) * rng.uniform(*size)
    shape = random_shape(rng, radius)
    scale = rng.uniform(0.5, 1.5)  # texture pixels per object pixel
    reach = shape.radius * scale
    cx = rng.uniform(reach, tw - 1 - reach) if tw - 1 > 2 * reach else (tw - 1) / 2
    cy = rng.uniform(reach, th - 1 - reach) if th - 1 > 2 * reach else (th - 1) / 2
    center = (rng.uniform(-0.1, 1.1) * width, rng.uniform(-0.1, 1.1) * height)
    return Layer(
        texture=bank.texture(index),
        texture_from_local=affine(cx, cy, rng.uniform(0, 2 * math.pi), scale),
        motion=Motion(
            center=center, angle=rng.uniform(0, 2 * math.pi), shear=rng.uniform(-0.15, 0.15), **motion.sample(rng)
        ),
        shape=shape,
        gain=_gain(rng, bank.is_gray(index)),
    )


def random_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    bank: TextureBank,
    num_objects: int,
    object_motion: MotionRange,
    background_motion: MotionRange,
    object_size: tuple[float, float] = (0.08, 0.3),
) -> Scene:
    """A background plus ``num_objects`` objects (radius ``object_size`` x the short side)."""
    order = rng.permutation(len(bank))
    layers = [_background(rng, height, width, bank, int(order[0]), background_motion)]
    others = order[1:] if len(order) > 1 else order
    for i in range(num_objects):
        index = int(others[i % len(others)])
        layers.append(_object(rng, height, width, bank, index, object_motion, object_size))
    return Scene(height, width, layers)
