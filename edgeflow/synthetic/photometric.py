"""Photometric augmentation: make rendered frames look like they came from a camera.

Geometry is untouched (flow stays exact); only pixel values change: blur (optics / defocus),
brightness, contrast and per-channel gain (exposure, white balance), gamma (tone curve) and
Gaussian sensor noise. Both frames of a pair get the same parameters except for a small
independent brightness jitter and independent noise, because a real camera is nearly, but not
exactly, constant between frames; a flow network must not depend on perfect brightness
constancy.

Cost matters (samples are drawn on the fly during training), hence:

* brightness, contrast, gain and gamma are folded into one 256-entry lookup table per channel;
* noise is a random window into one cached buffer of Gaussian samples instead of fresh draws
  per pixel (drawing normals is the most expensive step otherwise). Within a frame the values
  are still independent samples.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

_NOISE_SEED = 0x5EED
CHUNK_PIXELS = 8192  # rows per block in apply(): about this many pixels


@dataclass(frozen=True)
class PhotometricAugment:
    """Ranges of the photometric augmentation (set a field to 0 to switch that effect off).

    brightness: gain factor in ``[1 - b, 1 + b]``; contrast: factor in ``[1 - c, 1 + c]`` about
    mid-gray; gamma: exponent ``exp(U(-g, g))``; color: extra per-channel gain ``1 +- color``;
    noise: max Gaussian sigma in gray levels, applied with probability ``noise_prob``; blur: max
    Gaussian sigma in pixels, applied with probability ``blur_prob``; frame_jitter: max extra
    brightness change of frame 2 relative to frame 1.
    """

    brightness: float = 0.2
    contrast: float = 0.2
    gamma: float = 0.25
    color: float = 0.08
    noise: float = 5.0
    noise_prob: float = 0.5
    blur: float = 1.0
    blur_prob: float = 0.25
    frame_jitter: float = 0.02
    #: Photometric change *between* the frames (lighting, exposure, auto white balance, a second
    #: camera, compression), applied with probability ``change_prob`` (all 0: off, the default):
    #: frame 2 gets an extra gain ``1 +- change_gain``, gamma ``exp(+- change_gamma)``, offset
    #: ``+- change_offset`` gray levels, per-channel gain ``1 +- change_color``, its own blur up to
    #: ``change_blur`` px and noise up to ``change_noise``; each frame is JPEG-compressed
    #: (quality 25..90, Pillow) with probability ``jpeg_prob``.
    change_prob: float = 0.0
    change_gain: float = 0.0
    change_gamma: float = 0.0
    change_offset: float = 0.0
    change_color: float = 0.0
    change_blur: float = 0.0
    change_noise: float = 0.0
    jpeg_prob: float = 0.0

    def sample(self, rng: np.random.Generator) -> "PhotometricParams":
        """Draw one set of parameters (shared by the frames of a pair or a sequence)."""
        gains = (1.0 + rng.uniform(-self.brightness, self.brightness)) * (
            1.0 + rng.uniform(-self.color, self.color, 3)
        )
        contrast = 1.0 + rng.uniform(-self.contrast, self.contrast)
        gamma = math.exp(rng.uniform(-self.gamma, self.gamma))
        noise = rng.uniform(0, self.noise) if rng.random() < self.noise_prob else 0.0
        blur = rng.uniform(0.3, max(self.blur, 0.3)) if self.blur > 0 and rng.random() < self.blur_prob else 0.0
        return PhotometricParams(gains, contrast, gamma, float(noise), float(blur))

    def frame2_params(self, params: "PhotometricParams", rng: np.random.Generator) -> "PhotometricParams":
        """Frame 2's parameters: ``params`` plus, with probability ``change_prob``, a change."""
        if self.change_prob <= 0 or rng.random() >= self.change_prob:
            return params
        gains = params.gains * (1.0 + rng.uniform(-self.change_gain, self.change_gain)) * (
            1.0 + rng.uniform(-self.change_color, self.change_color, 3))
        gamma = params.gamma * math.exp(rng.uniform(-self.change_gamma, self.change_gamma))
        offset = params.offset + rng.uniform(-self.change_offset, self.change_offset)
        blur = rng.uniform(0.3, self.change_blur) if self.change_blur > 0.3 and rng.random() < 0.5 else params.blur
        noise = max(params.noise, rng.uniform(0, self.change_noise)) if self.change_noise > 0 else params.noise
        return PhotometricParams(gains, params.contrast, gamma, float(noise), float(blur), float(offset))

    def frame_gain(self, rng: np.random.Generator) -> float:
        return 1.0 + rng.uniform(-self.frame_jitter, self.frame_jitter) if self.frame_jitter > 0 else 1.0


class PhotometricParams(NamedTuple):
    gains: np.ndarray  # (3,) per-channel multipliers
    contrast: float
    gamma: float
    noise: float  # Gaussian sigma, gray levels (0: off)
    blur: float  # Gaussian sigma, pixels (0: off)
    offset: float = 0.0  # added gray levels (before gamma, in 0..1 units x 255)


def to_uint8(planar: np.ndarray) -> np.ndarray:
    """float ``C x H x W`` -> uint8 ``H x W x C`` (rounded, clipped). Overwrites ``planar``."""
    np.clip(planar, 0.0, 255.0, out=planar)
    planar += 0.5
    out = np.empty(planar.shape[1:] + planar.shape[:1], np.uint8)
    np.copyto(out, planar.transpose(1, 2, 0), casting="unsafe")  # truncation of x + 0.5 rounds
    return out


def gaussian_taps(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian kernel of radius ``ceil(2 sigma)`` (at least 1)."""
    radius = max(1, int(math.ceil(2.0 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def _blur_rows(planar: np.ndarray, y0: int, y1: int, taps: np.ndarray) -> np.ndarray:
    """Rows ``y0:y1`` of the separable Gaussian blur of ``C x H x W`` (edges replicated)."""
    r = len(taps) // 2
    _, h, w = planar.shape
    rows = np.clip(np.arange(y0 - r, y1 + r), 0, h - 1)
    cols = np.clip(np.arange(-r, w + r), 0, w - 1)
    src = planar[:, rows[:, None], cols[None, :]]  # block with an edge-replicated halo
    across = src[..., r : r + w] * taps[r]
    for i in range(1, r + 1):
        across += taps[r + i] * (src[..., r - i : r - i + w] + src[..., r + i : r + i + w])
    n = y1 - y0
    out = across[:, r : r + n] * taps[r]
    for i in range(1, r + 1):
        out += taps[r + i] * (across[:, r - i : r - i + n] + across[:, r + i : r + i + n])
    return out


def gaussian_blur(planar: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of ``C x H x W`` float32 with edge replication."""
    taps = gaussian_taps(sigma)
    _, h, w = planar.shape
    rows = max(1, CHUNK_PIXELS // w)
    return np.concatenate([_blur_rows(planar, y0, min(y0 + rows, h), taps) for y0 in range(0, h, rows)], axis=1)


def tone_table(params: PhotometricParams, frame_gain: float = 1.0) -> np.ndarray:
    """``3 x 256`` float32 table: gray level -> gain, contrast about mid-gray, then gamma."""
    levels = np.arange(256, dtype=np.float64) / 255.0
    gains = np.asarray(params.gains, np.float64)[:, None] * frame_gain
    v = np.clip((levels[None, :] * gains - 0.5) * params.contrast + 0.5 + params.offset / 255.0, 0.0, 1.0)
    return (255.0 * v**params.gamma).astype(np.float32)


@functools.lru_cache(maxsize=2)
def _noise_buffer(size: int) -> np.ndarray:
    return np.random.default_rng(_NOISE_SEED).standard_normal(size, dtype=np.float32)


def gaussian_noise(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` standard-normal float32 values: a random window of a cached buffer."""
    size = max(1 << 21, 1 << int(math.ceil(math.log2(2 * count))))
    buffer = _noise_buffer(size)
    start = int(rng.integers(0, size - count + 1))
    return buffer[start : start + count]


def apply(
    planar: np.ndarray, params: PhotometricParams, rng: np.random.Generator, frame_gain: float = 1.0
) -> np.ndarray:
    """Augment one rendered float ``3 x H x W`` frame; returns uint8 ``H x W x 3``.

    ``rng`` only draws the noise window, so frames that share ``params`` differ only by noise
    and ``frame_gain``. The frame is processed a few rows at a time: every temporary stays
    small, which on this workload is worth more than the extra loop iterations.
    """
    channels, h, w = planar.shape
    table = tone_table(params, frame_gain)
    if params.noise <= 0:
        table = (table + 0.5).astype(np.uint8)
    else:
        noise = gaussian_noise(rng, h * w * channels).reshape(h, w, channels)
    taps = gaussian_taps(params.blur) if params.blur > 0 else None
    out = np.empty((h, w, channels), np.uint8)
    rows = max(1, CHUNK_PIXELS // w)
    for y0 in range(0, h, rows):
        y1 = min(y0 + rows, h)
        block = _blur_rows(planar, y0, y1, taps) if taps is not None else planar[:, y0:y1]
        block = np.clip(block, 0.0, 255.0)
        block += 0.5
        levels = block.astype(np.intp)
        toned = np.empty((y1 - y0, w, channels), table.dtype)
        for c in range(channels):
            np.take(table[c], levels[c], out=toned[:, :, c], mode="clip")
        if params.noise <= 0:
            out[y0:y1] = toned
            continue
        toned += params.noise * noise[y0:y1]
        np.clip(toned, 0.0, 255.0, out=toned)
        toned += 0.5
        out[y0:y1] = toned  # float -> uint8 truncates: rounds
    return out


def augment_pair(
    config: PhotometricAugment, frame1: np.ndarray, frame2: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Augment two rendered float ``3 x H x W`` frames with shared parameters; uint8 ``HxWx3``."""
    params = config.sample(rng)
    gain2 = config.frame_gain(rng)
    params2 = config.frame2_params(params, rng)
    out1, out2 = apply(frame1, params, rng), apply(frame2, params2, rng, gain2)
    if config.jpeg_prob > 0:
        out1, out2 = (jpeg(out, int(rng.integers(25, 91))) if rng.random() < config.jpeg_prob else out
                      for out in (out1, out2))
    return out1, out2


def jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    """``frame`` (HxWx3 uint8) after a JPEG round trip at ``quality`` (Pillow, in memory)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB")).copy()
