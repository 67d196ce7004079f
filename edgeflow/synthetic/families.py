"""Procedural texture families and the train / held-out split of every texture source.

Why: a flow network trained on eleven photos learns those photos (issue 14: built-in EPE 1.35 on
the photos it trained on, 2.29 on unseen material). Training needs many kinds of texture, and an
honest evaluation needs kinds the model never saw. So textures come in *families*, and every
family and every scikit-image photo is assigned once, here, to either training or evaluation:

* training families (:data:`TRAIN_FAMILIES`): ``fractal`` (multi-octave value noise, 1/f),
  ``simplex`` (fractal OpenSimplex noise, the ``opensimplex`` package), ``dead_leaves``
  (occluding discs with power-law radii, the classic natural-image model), ``stripes``,
  ``checkers``, ``gradients`` (linear and radial colour ramps) and ``polygons`` (random filled
  polygons, ``skimage.draw``);
* held-out families (:data:`HELDOUT_FAMILIES`), never used for training: ``worley`` (cellular
  noise), ``rings`` (interfering concentric waves) and ``scribbles`` (anti-aliased random lines);
* training photos (:data:`TRAIN_PHOTOS`) and held-out photos (:data:`HELDOUT_PHOTOS`) partition
  the scikit-image photos of :mod:`edgeflow.synthetic.textures`; the Middlebury motorcycle pair
  is never a texture for training (only the unseen evaluation set shows its left image, moved by a
  known motion, beside the real stereo pair).

:func:`training_bank` and :func:`heldout_bank` build the two :class:`TextureBank` objects. Every
texture is a pure function of ``(family, seed, index)``; a texture is modulated by fine value
noise so that no region is perfectly flat (flat regions carry no flow signal).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from edgeflow.synthetic.textures import TextureBank, load_skimage_images, value_noise

TRAIN_FAMILIES = ("fractal", "simplex", "dead_leaves", "stripes", "checkers", "gradients", "polygons")
HELDOUT_FAMILIES = ("worley", "rings", "scribbles")
FAMILIES = TRAIN_FAMILIES + HELDOUT_FAMILIES
TRAIN_PHOTOS = ("astronaut", "rocket", "immunohistochemistry", "camera", "coins", "moon", "brick", "grass")
HELDOUT_PHOTOS = ("chelsea", "coffee", "gravel")
TEXTURE_SIZE = 384


def _colors(rng: np.random.Generator, count: int) -> np.ndarray:
    return rng.uniform(10, 245, size=(count, 3)).astype(np.float32)


def _mix(t: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
    return c0 * t[..., None] + c1 * (1.0 - t[..., None])


def _rotated(rng: np.random.Generator, size: int):
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return xx * math.cos(angle) + yy * math.sin(angle), -xx * math.sin(angle) + yy * math.cos(angle)


def _resize(plane: np.ndarray, size: int) -> np.ndarray:
    from skimage.transform import resize

    return resize(plane, (size, size), order=1, mode="reflect", anti_aliasing=False).astype(np.float32)


def simplex_fractal(rng: np.random.Generator, size: int, octaves: int = 4) -> np.ndarray:
    """Fractal OpenSimplex noise in [0, 1]: octave ``i`` sampled on a grid that grows with its
    frequency, then bilinearly resized (cheap: the pure-Python noise costs ~25 us a point)."""
    import opensimplex

    noise = opensimplex.OpenSimplex(int(rng.integers(2**31)))
    out = np.zeros((size, size), np.float32)
    base = rng.uniform(3.0, 8.0)
    for octave in range(octaves):
        freq = base * 2**octave
        grid = int(min(size, 96, max(16, 4 * freq)))
        coords = np.arange(grid) * (freq / grid)
        out += 0.55**octave * _resize(noise.noise2array(coords, coords + 17.0 * octave), size)
    lo, hi = out.min(), out.max()
    return (out - lo) / max(hi - lo, 1e-6)


def _dead_leaves(rng, size):
    from skimage.draw import disk

    rgb = np.broadcast_to(_colors(rng, 1)[0], (size, size, 3)).copy()
    # Radii with density ~ r^-3 between r_min and r_max (scale invariance of natural images).
    r_min, r_max = 3.0, size / 4
    u = rng.random(1500)
    radii = 1.0 / np.sqrt(u / r_max**2 + (1 - u) / r_min**2)
    for radius, color in zip(radii, _colors(rng, len(radii))):
        rr, cc = disk(tuple(rng.uniform(0, size, 2)), radius, shape=(size, size))
        rgb[rr, cc] = color * rng.uniform(0.8, 1.2)
    return rgb


def _polygons(rng, size):
    from skimage.draw import polygon as fill

    rgb = _mix(value_noise(rng, size, octaves=3), *_colors(rng, 2))
    for color in _colors(rng, 45):
        n = int(rng.integers(3, 8))
        center = rng.uniform(0, size, 2)
        radius = rng.uniform(6, size / 6)
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        rr, cc = fill(center[0] + radius * np.sin(angles), center[1] + radius * np.cos(angles), shape=(size, size))
        rgb[rr, cc] = color
    return rgb


def _worley(rng, size):
    points = rng.uniform(0, size, (int(rng.integers(24, 90)), 2)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    best = np.full((size, size), np.inf, np.float32)
    second = best.copy()
    owner = np.zeros((size, size), np.intp)
    for i, (py, px) in enumerate(points):
        d = np.hypot(yy - py, xx - px)
        closer = d < best
        second = np.where(closer, best, np.minimum(second, d))
        owner = np.where(closer, i, owner)
        best = np.minimum(best, d)
    edge = np.clip((second - best) / 6.0, 0, 1)
    palette = _colors(rng, len(points))
    return palette[owner] * (0.35 + 0.65 * edge[..., None])


def _rings(rng, size):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    t = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(2, 4))):
        cy, cx = rng.uniform(-0.2, 1.2, 2) * size
        t += np.sin(np.hypot(yy - cy, xx - cx) * (2 * np.pi / rng.uniform(7, 30)) + rng.uniform(0, 6.3))
    t = 0.5 + t / (2 * np.abs(t).max())
    return _mix(t, *_colors(rng, 2))


def _scribbles(rng, size):
    from skimage.draw import line_aa

    rgb = np.broadcast_to(_colors(rng, 1)[0], (size, size, 3)).copy()
    for color in _colors(rng, 160):
        r0, c0, r1, c1 = (int(v) for v in rng.integers(0, size, 4))
        rr, cc, val = line_aa(r0, c0, r1, c1)
        keep = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
        rr, cc, val = rr[keep], cc[keep], val[keep, None].astype(np.float32)
        rgb[rr, cc] = rgb[rr, cc] * (1 - val) + color * val
    return rgb


def family_texture(family: str, rng: np.random.Generator, size: int = TEXTURE_SIZE) -> np.ndarray:
    """One ``size x size`` RGB uint8 texture of ``family`` (one of :data:`FAMILIES`)."""
    detail = value_noise(rng, size, octaves=6, base_cells=8)
    if family == "fractal":
        rgb = _mix(value_noise(rng, size, octaves=int(rng.integers(4, 7)), base_cells=int(rng.integers(4, 17))),
                   *_colors(rng, 2))
    elif family == "simplex":
        a, b = simplex_fractal(rng, size, octaves=4), value_noise(rng, size, octaves=4, base_cells=8)
        c = _colors(rng, 3)
        rgb = _mix(a, c[0], c[1]) * (0.6 + 0.4 * b[..., None])
    elif family == "dead_leaves":
        rgb = _dead_leaves(rng, size)
    elif family == "stripes":
        u, _ = _rotated(rng, size)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * u / rng.uniform(5, 40))
        if rng.random() < 0.5:
            t = (t > 0.5).astype(np.float32)  # hard edges half of the time
        rgb = _mix(t, *_colors(rng, 2))
    elif family == "checkers":
        u, v = _rotated(rng, size)
        cell = rng.uniform(6, 48)
        rgb = _mix(((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32), *_colors(rng, 2))
    elif family == "gradients":
        u, _ = _rotated(rng, size)
        if rng.random() < 0.5:
            yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
            cy, cx = rng.uniform(0, size, 2)
            u = np.hypot(yy - cy, xx - cx)
        t = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
        rgb = _mix(t, *_colors(rng, 2))
    elif family == "polygons":
        rgb = _polygons(rng, size)
    elif family == "worley":
        rgb = _worley(rng, size)
    elif family == "rings":
        rgb = _rings(rng, size)
    elif family == "scribbles":
        rgb = _scribbles(rng, size)
    else:
        raise ValueError(f"unknown texture family {family!r}; choose from {FAMILIES}")
    rgb = rgb * (0.75 + 0.5 * detail[..., None])
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def family_images(families: tuple[str, ...], per_family: int, seed: int) -> tuple[tuple[str, np.ndarray], ...]:
    """``per_family`` textures of each family; deterministic per ``(families, per_family, seed)``."""
    images = []
    for family in families:
        for i in range(per_family):
            rng = np.random.default_rng([seed, FAMILIES.index(family), i, 0xFA111])
            images.append((f"{family}{i}", family_texture(family, rng)))
    return tuple(images)


def _photos(names) -> list[tuple[str, np.ndarray]]:
    photos = dict(load_skimage_images())
    return [(name, photos[name]) for name in names if name in photos]


@functools.lru_cache(maxsize=2)
def training_bank(per_family: int = 6, seed: int = 0) -> TextureBank:
    """The training textures: :data:`TRAIN_PHOTOS` plus ``per_family`` textures of every
    training family. Never contains a held-out family, a held-out photo or the motorcycle pair."""
    items = _photos(TRAIN_PHOTOS) + list(family_images(TRAIN_FAMILIES, per_family, seed))
    names, images = zip(*items)
    bank = TextureBank.from_images(images, names)
    bank.source = "train-split"
    return bank


@functools.lru_cache(maxsize=2)
def heldout_bank(per_family: int = 3, seed: int = 7) -> TextureBank:
    """The evaluation-only textures: :data:`HELDOUT_PHOTOS` and the held-out families."""
    items = _photos(HELDOUT_PHOTOS) + list(family_images(HELDOUT_FAMILIES, per_family, seed))
    names, images = zip(*items)
    bank = TextureBank.from_images(images, names)
    bank.source = "heldout-split"
    return bank
