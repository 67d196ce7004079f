"""The texture bank: the images that synthetic layers are cut from.

Optical flow is learned from texture, so layers should look like the world: when scikit-image
is importable the bank holds real photographs and material textures that ship *inside* the
scikit-image wheel (no pooch download, works offline). Without scikit-image it falls back to
procedural textures generated from a seed, and says so once through the ``edgeflow.synthetic``
logger. ``TextureBank.source`` tells which one you got.

Bundled images (all loaded through ``skimage.data``; origin and licence as documented there):

- ``astronaut``: Eileen Collins, NASA Great Images database (public domain)
- ``coffee``: coffee cup, Pikolo Espresso Bar, photo by Rachel Michetti (CC0)
- ``chelsea``: Chelsea the cat, photo by Stefan van der Walt (CC0)
- ``rocket``: DSCOVR launch on Falcon 9, SpaceX photos (public domain)
- ``immunohistochemistry``: colonic glands, Center for Microscopy And Molecular Imaging
  (no known copyright restrictions)
- ``camera``: photographer with camera, by Lav Varshney (CC0; grayscale)
- ``coins``: Greek coins from Pompeii, Brooklyn Museum collection (no known copyright
  restrictions; grayscale)
- ``moon``: surface of the moon (scikit-image sample data; grayscale)
- ``brick``: brick wall, cc0textures.com "Bricks25" (CC0; grayscale)
- ``grass``: grass, DeviantArt "Grass-01" by linolafett (CC0; grayscale)
- ``gravel``: gravel, cc0textures.com "Gravel04" (CC0; grayscale)

Left out on purpose: images that need a download (``rough_wall``, ``kidney``, ``lily``, ...), mostly
flat or synthetic ones (``hubble_deep_field``, ``retina``, ``cell``, ``colorwheel``, ``page``,
``text``, ``clock``), and the Middlebury motorcycle pair, which is reserved for
:mod:`edgeflow.synthetic.builtin_eval`. Grayscale images are stacked to RGB here; the scene
generator tints them per layer.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import NamedTuple

import numpy as np

from edgeflow.synthetic.sampling import PackedTexture

logger = logging.getLogger("edgeflow.synthetic")


class BundledImage(NamedTuple):
    name: str  # also the skimage.data function name
    filename: str  # file inside skimage/data/ that must exist (guarantees no download)
    origin: str


SKIMAGE_IMAGES: tuple[BundledImage, ...] = (
    BundledImage("astronaut", "astronaut.png", "NASA, Eileen Collins (public domain)"),
    BundledImage("coffee", "coffee.png", "Rachel Michetti / Pikolo Espresso Bar (CC0)"),
    BundledImage("chelsea", "chelsea.png", "Stefan van der Walt (CC0)"),
    BundledImage("rocket", "rocket.jpg", "SpaceX DSCOVR launch (public domain)"),
    BundledImage("immunohistochemistry", "ihc.png", "CMMI microscopy (no known restrictions)"),
    BundledImage("camera", "camera.png", "Lav Varshney (CC0)"),
    BundledImage("coins", "coins.png", "Brooklyn Museum (no known restrictions)"),
    BundledImage("moon", "moon.png", "scikit-image sample data"),
    BundledImage("brick", "brick.png", "cc0textures.com Bricks25 (CC0)"),
    BundledImage("grass", "grass.png", "DeviantArt Grass-01 by linolafett (CC0)"),
    BundledImage("gravel", "gravel.png", "cc0textures.com Gravel04 (CC0)"),
)

PROCEDURAL_KINDS = ("noise", "stripes", "checker", "blobs")
SOURCES = ("auto", "skimage", "procedural")


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Gray, gray+alpha, RGB or RGBA, bool/float/uint8 -> contiguous ``HxWx3`` uint8."""
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    elif image.dtype != np.uint8:
        scale = 255.0 if image.dtype.kind == "f" and image.max() <= 1.0 else 1.0
        image = np.clip(np.rint(image * scale), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] in (2, 4):  # drop alpha
        image = image[:, :, :-1]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image)


def skimage_available() -> bool:
    try:
        import skimage.data  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def load_skimage_images() -> tuple[tuple[str, np.ndarray], ...]:
    """The bundled photos as ``(name, RGB uint8)``; raises ImportError without scikit-image.

    An image whose file is not inside the installed package is skipped rather than fetched, so
    this never touches the network.
    """
    import skimage.data

    data_dir = os.path.dirname(skimage.data.__file__)
    images = []
    for item in SKIMAGE_IMAGES:
        if not os.path.isfile(os.path.join(data_dir, item.filename)):
            continue
        try:
            images.append((item.name, to_rgb_uint8(getattr(skimage.data, item.name)())))
        except Exception as err:  # a broken or changed sample must not break data generation
            logger.debug("skipping skimage.data.%s: %s", item.name, err)
    return tuple(images)


# ----------------------------------------------------------------------------- procedural


def _smoothstep(t: np.ndarray) -> np.ndarray:
    return t * t * (3.0 - 2.0 * t)


def value_noise(rng: np.random.Generator, size: int, octaves: int = 5, base_cells: int = 4) -> np.ndarray:
    """Multi-octave value noise in ``[0, 1]``, ``size x size`` float32.

    Each octave is a random lattice upsampled with smoothstep interpolation (separable, so it is
    a couple of small matrix products); octave ``i`` has ``base_cells * 2**i`` cells and weight
    ``0.5**i``, which gives the 1/f spectrum of natural images.
    """
    out = np.zeros((size, size), np.float32)
    total = 0.0
    for octave in range(octaves):
        cells = base_cells * 2**octave
        lattice = rng.random((cells + 1, cells + 1)).astype(np.float32)
        pos = np.arange(size, dtype=np.float32) * (cells / size)
        i0 = np.minimum(pos.astype(np.intp), cells - 1)
        t = _smoothstep(pos - i0)
        # Interpolation matrix (size x cells+1): row k mixes lattice nodes i0[k] and i0[k]+1.
        m = np.zeros((size, cells + 1), np.float32)
        m[np.arange(size), i0] = 1.0 - t
        m[np.arange(size), i0 + 1] += t
        weight = 0.5**octave
        out += weight * (m @ lattice @ m.T)
        total += weight
    out /= total
    lo, hi = out.min(), out.max()
    return (out - lo) / max(hi - lo, 1e-6)


def _random_colors(rng: np.random.Generator, count: int) -> np.ndarray:
    return rng.uniform(20, 235, size=(count, 3)).astype(np.float32)


def _rotated_coords(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return xx * np.cos(angle) + yy * np.sin(angle), -xx * np.sin(angle) + yy * np.cos(angle)


def procedural_texture(rng: np.random.Generator, kind: str, size: int = 512) -> np.ndarray:
    """One ``size x size`` RGB uint8 texture of ``kind`` (see ``PROCEDURAL_KINDS``).

    Every kind is modulated by value noise so that no region is perfectly flat (flat regions
    carry no flow signal).
    """
    detail = value_noise(rng, size, octaves=6, base_cells=8)
    if kind == "noise":
        colors = _random_colors(rng, 3)
        a, b = value_noise(rng, size), value_noise(rng, size, octaves=4)
        rgb = colors[0] * a[..., None] + colors[1] * (1 - a[..., None]) * b[..., None] + colors[2] * 0.3
    elif kind == "stripes":
        u, _ = _rotated_coords(rng, size)
        period = rng.uniform(8, 40)
        t = (0.5 + 0.5 * np.sin(2 * np.pi * u / period))[..., None]
        c0, c1 = _random_colors(rng, 2)
        rgb = c0 * t + c1 * (1 - t)
    elif kind == "checker":
        u, v = _rotated_coords(rng, size)
        cell = rng.uniform(12, 48)
        t = ((np.floor(u / cell) + np.floor(v / cell)) % 2)[..., None]
        c0, c1 = _random_colors(rng, 2)
        rgb = c0 * t + c1 * (1 - t)
    elif kind == "blobs":
        c = _random_colors(rng, 1)[0]
        rgb = np.broadcast_to(c, (size, size, 3)).copy()
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        for color in _random_colors(rng, 40):
            cx, cy = rng.uniform(0, size, 2)
            r = rng.uniform(6, size / 8)
            inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
            rgb[inside] = color
    else:
        raise ValueError(f"unknown procedural texture kind {kind!r}; choose from {PROCEDURAL_KINDS}")
    rgb = rgb * (0.7 + 0.6 * detail[..., None])
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def procedural_images(seed: int = 0, count: int = 12, size: int = 512) -> tuple[tuple[str, np.ndarray], ...]:
    """``count`` procedural textures cycling through the kinds; deterministic per ``seed``."""
    rng = np.random.default_rng([seed, 0x7E47])
    images = []
    for i in range(count):
        kind = PROCEDURAL_KINDS[i % len(PROCEDURAL_KINDS)]
        images.append((f"{kind}{i // len(PROCEDURAL_KINDS)}", procedural_texture(rng, kind, size)))
    return tuple(images)


# ----------------------------------------------------------------------------- the bank


class TextureBank:
    """An indexable set of RGB uint8 images plus the packed textures the renderer samples.

    ``source="auto"`` uses the scikit-image photos when available and procedural textures
    otherwise; ``"skimage"`` insists on the photos (``ImportError`` without scikit-image);
    ``"procedural"`` always generates (``seed`` picks which textures).
    """

    def __init__(self, source: str = "auto", seed: int = 0):
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        if source == "auto":
            source = "skimage" if skimage_available() else "procedural"
            if source == "procedural":
                _warn_fallback_once()
        items = load_skimage_images() if source == "skimage" else procedural_images(seed)
        if not items:  # scikit-image installed but none of the files present
            source, items = "procedural", procedural_images(seed)
            _warn_fallback_once()
        self.source = source
        self.names: tuple[str, ...] = tuple(name for name, _ in items)
        self.images: tuple[np.ndarray, ...] = tuple(image for _, image in items)
        self._textures: dict[int, PackedTexture] = {}
        self._gray: dict[int, bool] = {}

    @classmethod
    def from_images(cls, images, names=None) -> "TextureBank":
        """A bank over caller-supplied images (any layout :func:`to_rgb_uint8` accepts)."""
        bank = cls.__new__(cls)
        bank.source = "custom"
        bank.images = tuple(to_rgb_uint8(im) for im in images)
        bank.names = tuple(names) if names is not None else tuple(f"image{i}" for i in range(len(bank.images)))
        bank._textures = {}
        bank._gray = {}
        return bank

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.images[index]

    def texture(self, index: int) -> PackedTexture:
        """Image ``index`` in the renderer's sampling layout (built once, then cached)."""
        texture = self._textures.get(index)
        if texture is None:
            texture = self._textures[index] = PackedTexture(self.images[index])
        return texture

    def is_gray(self, index: int) -> bool:
        """Whether image ``index`` has no colour (the generator tints such layers)."""
        gray = self._gray.get(index)
        if gray is None:
            image = self.images[index]
            gray = self._gray[index] = bool(
                np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])
            )
        return gray

    def crop(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """A random ``height x width`` RGB uint8 crop (mirror-tiled where the image is smaller)."""
        image = self.images[int(rng.integers(len(self.images)))]
        h, w = image.shape[:2]
        y0 = int(rng.integers(max(h - height, 0) + 1))
        x0 = int(rng.integers(max(w - width, 0) + 1))
        pad = ((0, max(height - h, 0)), (0, max(width - w, 0)), (0, 0))
        if any(p[1] for p in pad):
            image = np.pad(image, pad, mode="symmetric")
        return np.ascontiguousarray(image[y0 : y0 + height, x0 : x0 + width])


@functools.lru_cache(maxsize=1)
def _warn_fallback_once() -> None:
    logger.warning(
        "scikit-image is not installed: synthetic data uses procedural textures instead of real "
        "photos (pip install scikit-image for more realistic training and calibration data)"
    )


@functools.lru_cache(maxsize=1)
def default_bank() -> TextureBank:
    """The process-wide bank (``source="auto"``); loading the photos once is worth sharing."""
    return TextureBank("auto")
