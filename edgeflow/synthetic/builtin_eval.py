"""The built-in evaluation set: real images with known motion, available offline.

``edgeflow eval`` without a dataset, and quick accuracy checks after a conversion, need flow
ground truth that ships with the tools. Everything here is built from images inside the
scikit-image wheel:

* six photos / textures moved by a known global motion (integer and sub-pixel translation,
  rotation + zoom, shear), rendered symmetrically (frame 1 at scene time -1/2, frame 2 at +1/2)
  so both frames are resampled the same way and neither is sharper than the other;
* two layered multi-object scenes from :class:`SyntheticFlowGenerator` (photo textures, no
  augmentation);
* the Middlebury 2014 *motorcycle* stereo pair (Scharstein et al., GCPR 2014) that scikit-image
  ships with its ground-truth disparity. A rectified stereo pair is a flow pair with purely
  horizontal motion: the left pixel ``(x, y)`` appears at ``(x - d, y)`` in the right image, so
  ``u = -d``, ``v = 0`` (the test suite checks this sign by warping). It is downscaled 2x (to
  250x370) with the disparity halved; pixels without disparity, on depth edges or occluded in
  the right view are invalid.

The set is deterministic: the same arrays on every call (rebuilt each time, so callers may
modify them).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from edgeflow.errors import EdgeflowError

EVAL_HEIGHT, EVAL_WIDTH = 240, 320
LAYERED_SEED = 20260


class EvalPair(NamedTuple):
    """One evaluation pair; ``flow``/``valid`` follow the :class:`FlowSample` conventions."""

    name: str
    frame1: np.ndarray
    frame2: np.ndarray
    flow: np.ndarray
    valid: np.ndarray


class GlobalMotion(NamedTuple):
    """A whole-image affine motion: translation (px), rotation (deg), zoom factor, x-shear."""

    name: str
    image: str  # TextureBank / skimage.data name
    translation: tuple[float, float] = (0.0, 0.0)
    rotation: float = 0.0
    zoom: float = 1.0
    shear: float = 0.0


GLOBAL_MOTIONS = (
    GlobalMotion("astronaut_translate", "astronaut", translation=(6.0, -4.0)),
    GlobalMotion("coffee_subpixel", "coffee", translation=(2.5, 1.25)),
    GlobalMotion("chelsea_large_translate", "chelsea", translation=(-14.5, 7.25)),
    GlobalMotion("rocket_rotate_zoom", "rocket", translation=(1.5, 0.0), rotation=4.0, zoom=1.06),
    GlobalMotion("camera_rotate_zoom_out", "camera", translation=(0.0, -2.0), rotation=-3.0, zoom=0.95),
    GlobalMotion("brick_shear", "brick", translation=(3.3, -2.6), rotation=2.0, shear=0.04),
)
LAYERED_INDICES = (0, 1)


def _require_skimage():
    try:
        import skimage.data  # noqa: F401
    except ImportError:
        raise EdgeflowError(
            "the built-in evaluation set is made from scikit-image's sample photos: pip install scikit-image"
        ) from None


def global_motion_pair(
    motion: GlobalMotion, image: np.ndarray, height: int = EVAL_HEIGHT, width: int = EVAL_WIDTH
) -> EvalPair:
    """Render ``image`` (RGB uint8) moved by ``motion`` as a pair with exact flow."""
    from edgeflow.synthetic.photometric import to_uint8
    from edgeflow.synthetic.sampling import PackedTexture
    from edgeflow.synthetic.scene import Layer, Motion, Scene, affine

    th, tw = image.shape[:2]
    layer = Layer(
        texture=PackedTexture(image),
        texture_from_local=affine((tw - 1) / 2, (th - 1) / 2),  # frame centre on image centre
        motion=Motion(
            center=((width - 1) / 2, (height - 1) / 2),
            velocity=motion.translation,
            spin=math.radians(motion.rotation),
            zoom=math.log(motion.zoom),
            shear_rate=motion.shear,
        ),
    )
    scene = Scene(height, width, [layer])
    image1, ids1 = scene.render_planar(-0.5)
    image2, _ = scene.render_planar(0.5)
    flow, valid = scene.flow(-0.5, 0.5, ids1)
    return EvalPair(motion.name, to_uint8(image1), to_uint8(image2), flow, valid)


def _downscale2(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    blocks = image[:h, :w].astype(np.float32).reshape(h // 2, 2, w // 2, 2, -1)
    return np.clip(np.rint(blocks.mean(axis=(1, 3))), 0, 255).astype(np.uint8)


def stereo_flow(disparity: np.ndarray, max_spread: float = 1.0, occlusion_tolerance: float = 1.0):
    """Half-resolution flow and valid mask from a full-resolution left disparity map.

    A half-resolution pixel is the mean of a 2x2 block; its disparity is the block mean halved,
    kept only where all four are finite and positive and differ by at most ``max_spread``
    (depth edges would average two surfaces). A pixel is also invalid when it leaves the right
    image or when a nearer pixel of the same row lands on (within a pixel of) its destination,
    i.e. it is occluded in the right view.
    """
    h, w = disparity.shape[0] // 2 * 2, disparity.shape[1] // 2 * 2
    blocks = disparity[:h, :w].astype(np.float64).reshape(h // 2, 2, w // 2, 2).transpose(0, 2, 1, 3)
    blocks = blocks.reshape(h // 2, w // 2, 4)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(blocks).all(-1) & (blocks > 0).all(-1)
        ok &= (blocks.max(-1) - blocks.min(-1)) <= max_spread
    d = np.where(ok, blocks.mean(-1) / 2.0, 0.0)
    hh, ww = d.shape
    xs = np.arange(ww)[None, :]
    target = xs - d
    ok &= (target >= 0) & (target <= ww - 1)
    # z-buffer per row: the largest disparity (nearest surface) landing on each column.
    rows = np.broadcast_to(np.arange(hh)[:, None], d.shape)[ok]
    dest = np.floor(target[ok]).astype(np.intp)
    zbuf = np.zeros((hh, ww + 1))
    np.maximum.at(zbuf, (rows, dest), d[ok])
    np.maximum.at(zbuf, (rows, dest + 1), d[ok])
    nearest = np.clip(np.rint(target), 0, ww - 1).astype(np.intp)
    occluded = zbuf[np.arange(hh)[:, None], nearest] > d + occlusion_tolerance
    valid = ok & ~occluded
    flow = np.zeros((hh, ww, 2), np.float32)
    flow[..., 0] = np.where(ok, -d, 0.0)
    return flow, valid


def motorcycle_pair() -> EvalPair:
    """The Middlebury motorcycle stereo pair as a flow pair at half resolution (250x370)."""
    _require_skimage()
    import skimage.data

    left, right, disparity = skimage.data.stereo_motorcycle()
    flow, valid = stereo_flow(disparity)
    return EvalPair("motorcycle_stereo", _downscale2(left), _downscale2(right), flow, valid)


def builtin_eval_set() -> list[EvalPair]:
    """All built-in pairs as ``EvalPair(name, frame1, frame2, flow, valid)`` tuples.

    Raises :class:`~edgeflow.errors.EdgeflowError` when scikit-image is not installed.
    """
    _require_skimage()
    from edgeflow.synthetic.generator import SyntheticFlowGenerator
    from edgeflow.synthetic.textures import TextureBank, default_bank, load_skimage_images

    photos = dict(load_skimage_images())
    bank = default_bank() if default_bank().source == "skimage" else TextureBank("skimage")
    pairs = [global_motion_pair(m, photos[m.image]) for m in GLOBAL_MOTIONS if m.image in photos]
    generator = SyntheticFlowGenerator(
        EVAL_HEIGHT, EVAL_WIDTH, LAYERED_SEED, max_objects=6, augment=False, textures=bank
    )
    for i, index in enumerate(LAYERED_INDICES):
        sample = generator.sample(index)
        pairs.append(EvalPair(f"layered_{'abcdefgh'[i]}", *sample))
    pairs.append(motorcycle_pair())
    return pairs
