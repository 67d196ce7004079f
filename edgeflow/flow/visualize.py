"""Flow and error images: the Middlebury colour wheel, a KITTI-style error map and panel layout.

The colour coding follows Baker et al., "A Database and Evaluation Methodology for Optical Flow"
(the ``flow-code`` C++ of the Middlebury benchmark, as also used by RAFT's ``flow_viz``), so images
look the same as in papers: hue is direction, saturation is magnitude relative to ``max_flow``,
zero motion is white. In image coordinates (y down) motion to the right is red, down is
yellow/orange, left is cyan-blue and up is blue-violet.
"""

from __future__ import annotations

import numpy as np

from edgeflow.errors import EdgeflowError, InputError

# Number of hue steps between the six primary/secondary colours of the wheel.
RY, YG, GC, CB, BM, MR = 15, 6, 4, 11, 13, 6
UNKNOWN_FLOW_THRESHOLD = 1e9

# KITTI devkit error colour map: [lo, hi) in units of ``tau`` -> RGB (cold = small error).
_KITTI_ERROR_BANDS = (
    (0.0, 0.0625, (49, 54, 149)),
    (0.0625, 0.125, (69, 117, 180)),
    (0.125, 0.25, (116, 173, 209)),
    (0.25, 0.5, (171, 217, 233)),
    (0.5, 1.0, (224, 243, 248)),
    (1.0, 2.0, (254, 224, 144)),
    (2.0, 4.0, (253, 174, 97)),
    (4.0, 8.0, (244, 109, 67)),
    (8.0, 16.0, (215, 48, 39)),
    (16.0, np.inf, (165, 0, 38)),
)


def make_colorwheel() -> np.ndarray:
    """The 55x3 Middlebury colour wheel (float64 in [0, 255]), starting at red."""
    ncols = RY + YG + GC + CB + BM + MR
    wheel = np.zeros((ncols, 3))
    col = 0
    ramps = ((RY, 0, 1, True), (YG, 1, 0, False), (GC, 1, 2, True), (CB, 2, 1, False),
             (BM, 2, 0, True), (MR, 0, 2, False))
    # Each segment holds one channel at 255 and ramps another up (True) or down (False).
    for n, full, ramp, up in ramps:
        steps = np.floor(255 * np.arange(n) / n)
        wheel[col : col + n, full] = 255
        wheel[col : col + n, ramp] = steps if up else 255 - steps
        col += n
    return wheel


_WHEEL = make_colorwheel()


def _flow_and_mask(flow, valid):
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise InputError(f"flow must be an HxWx2 array of (u, v), got shape {flow.shape}")
    if not np.issubdtype(flow.dtype, np.number) or np.iscomplexobj(flow):
        raise InputError(f"flow must be a real numeric array, got dtype {flow.dtype}")
    flow = flow.astype(np.float64)
    ok = np.all(np.isfinite(flow) & (np.abs(flow) <= UNKNOWN_FLOW_THRESHOLD), axis=2)
    if valid is not None:
        valid = np.asarray(valid)
        if valid.shape != flow.shape[:2]:
            raise InputError(f"valid mask must have shape {flow.shape[:2]}, got {valid.shape}")
        ok &= valid != 0
    flow[~ok] = 0.0
    return flow, ok


def flow_to_color(flow, max_flow=None, valid=None) -> np.ndarray:
    """Colour-code an HxWx2 flow as an HxWx3 uint8 RGB image (Middlebury convention).

    ``max_flow`` is the magnitude that maps to full saturation; by default the largest valid
    magnitude in this flow, so fix it when comparing frames. Magnitudes beyond it are darkened
    (x0.75) as in the reference code. Invalid, NaN/inf and unknown (> 1e9) pixels are black.
    """
    flow, ok = _flow_and_mask(flow, valid)
    u, v = flow[:, :, 0], flow[:, :, 1]
    rad = np.hypot(u, v)
    if max_flow is None:
        max_flow = float(rad[ok].max()) if ok.any() else 0.0
        scale = max_flow + 1e-5  # as in the reference code: never divide by zero
    else:
        if not np.isfinite(max_flow) or max_flow <= 0:
            raise InputError(f"max_flow must be a positive finite number, got {max_flow}")
        scale = float(max_flow)
    u, v, rad = u / scale, v / scale, rad / scale

    ncols = _WHEEL.shape[0]
    angle = np.arctan2(-v, -u) / np.pi  # in [-1, 1]; -1 (and +1) is motion to the right
    fk = (angle + 1) / 2 * (ncols - 1)
    k0 = np.floor(fk).astype(np.int64)
    k1 = k0 + 1
    k1[k1 == ncols] = 0
    f = (fk - k0)[:, :, None]
    col = (1 - f) * _WHEEL[k0] / 255 + f * _WHEEL[k1] / 255
    inside = (rad <= 1)[:, :, None]
    col = np.where(inside, 1 - rad[:, :, None] * (1 - col), col * 0.75)
    image = np.floor(255 * col).astype(np.uint8)
    image[~ok] = 0
    return image


def error_to_color(epe, valid=None, tau: float = 3.0) -> np.ndarray:
    """Colour an HxW end-point-error map with the KITTI devkit's log-scale error palette.

    Bands double in width: blues below ``tau`` (default 3 px, the KITTI outlier threshold), then
    yellow, orange and reds up to ``16 * tau`` and beyond. A fixed absolute scale, unlike a
    per-image normalised heat map, so images from different frames or models are comparable.
    Invalid and NaN pixels are black.
    """
    epe = np.asarray(epe)
    if epe.ndim != 2 or not np.issubdtype(epe.dtype, np.number):
        raise InputError(
            f"epe must be an HxW numeric error map, got shape {epe.shape} dtype {epe.dtype}"
        )
    if not np.isfinite(tau) or tau <= 0:
        raise InputError(f"tau must be a positive finite number, got {tau}")
    ratio = epe.astype(np.float64) / tau
    ok = ~np.isnan(ratio)
    if valid is not None:
        valid = np.asarray(valid)
        if valid.shape != epe.shape:
            raise InputError(f"valid mask must have shape {epe.shape}, got {valid.shape}")
        ok &= valid != 0
    image = np.zeros(epe.shape + (3,), dtype=np.uint8)
    for lo, hi, rgb in _KITTI_ERROR_BANDS:
        image[ok & (ratio >= lo) & (ratio < hi)] = rgb
    image[ok & (ratio == np.inf)] = _KITTI_ERROR_BANDS[-1][2]
    image[ok & (ratio < 0)] = _KITTI_ERROR_BANDS[0][2]
    return image


def _as_rgb(image, index: int) -> np.ndarray:
    """Accept RGB uint8, grayscale uint8/bool, or an HxWx2 flow (colour-coded) as a panel."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 2:
        return flow_to_color(image)
    if image.dtype == bool and image.ndim == 2:
        image = image.astype(np.uint8) * 255
    if image.dtype != np.uint8:
        raise InputError(f"panel {index}: expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise InputError(
        f"panel {index}: expected HxW, HxWx3 or an HxWx2 flow, got shape {image.shape}"
    )


LABELS_HINT = "panel labels are drawn by Pillow or OpenCV: pip install pillow (or pass no labels)"


def _pillow_or_none():
    try:
        from PIL import Image, ImageDraw, ImageFont
    except Exception:
        return None
    return Image, ImageDraw, ImageFont


def labels_available() -> bool:
    """Whether :func:`side_by_side` can draw labels here (OpenCV or Pillow importable)."""
    from edgeflow.optional import cv2_or_none

    return cv2_or_none() is not None or _pillow_or_none() is not None


def label_mask(text: str, scale: int = 2) -> np.ndarray:
    """``text`` as a boolean ink mask about ``6 * scale`` pixels tall: ``cv2.putText`` (Hershey
    simplex, no anti-aliasing) when OpenCV imports, else Pillow's ``ImageDraw`` with its default
    font; neither: one EdgeflowError line saying what to install (no font of our own)."""
    from edgeflow.optional import cv2_or_none

    cv2 = cv2_or_none()
    if cv2 is not None:
        font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.3 * scale
        (w, h), base = cv2.getTextSize(text, font, size, 1)
        canvas = np.zeros((h + base + 1, max(1, w + 1)), np.uint8)
        cv2.putText(canvas, text, (0, h), font, size, 255, 1, cv2.LINE_8)
        return canvas > 127
    pillow = _pillow_or_none()
    if pillow is None:
        raise EdgeflowError(LABELS_HINT)
    Image, ImageDraw, ImageFont = pillow
    try:
        font = ImageFont.load_default(size=5 * scale + 1)  # Pillow >= 10.1 (FreeType)
    except (TypeError, OSError):
        font = ImageFont.load_default()
    _, _, right, bottom = font.getbbox(text)
    image = Image.new("L", (max(1, right), max(1, bottom)))
    ImageDraw.Draw(image).text((0, 0), text, fill=255, font=font)
    return np.asarray(image) > 127


def side_by_side(images, labels=None, gap: int = 4, scale: int = 2) -> np.ndarray:
    """Place images left to right on a black canvas, each with an optional label strip above it.

    Panels may differ in size (they are top-aligned); HxWx2 flows are colour-coded automatically.
    Labels are drawn by OpenCV or Pillow (:func:`label_mask`, about ``6 * scale`` px tall) and are
    clipped to the panel width.
    """
    panels = [_as_rgb(img, i) for i, img in enumerate(images)]
    if not panels:
        raise InputError("side_by_side needs at least one image")
    if labels is not None and len(labels) != len(panels):
        raise InputError(f"got {len(labels)} labels for {len(panels)} images")
    gap, scale = max(0, int(gap)), max(1, int(scale))
    pad = scale
    masks = [label_mask(str(text), scale) for text in labels] if labels is not None else None
    strip = max(m.shape[0] for m in masks) + 2 * pad if masks else 0
    height = strip + max(p.shape[0] for p in panels)
    width = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    x = 0
    for i, panel in enumerate(panels):
        h, w = panel.shape[:2]
        canvas[strip : strip + h, x : x + w] = panel
        if labels is not None:
            text = masks[i][:, : max(0, w - pad)]
            th, tw = text.shape
            canvas[pad : pad + th, x + pad : x + pad + tw][text] = 255
        x += w + gap
    return canvas
