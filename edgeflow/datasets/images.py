"""Read and write 8-bit image files for evaluation: frames in, visualisation panels out.

OpenCV is preferred (fast, and on a Jetson it is the system build); Pillow is the fallback. Frames
are always returned as ``HxWx3`` uint8 RGB whatever the file holds (grayscale is stacked, alpha is
dropped, 16-bit is scaled down), because that is what every model and baseline takes. Writing a
PNG needs neither library: the project's own PNG codec (16-bit RGB) is the last resort.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

from edgeflow.imagelimits import check_image_bytes
from edgeflow.errors import InputError, first_line
from edgeflow.optional import cv2_or_none as _cv2

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")



def _pil():
    try:
        from PIL import Image

        return Image
    except Exception:
        return None


def _require_file(path: Path) -> None:
    """Refuse directories, FIFOs and devices before opening: a FIFO would block forever."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        raise InputError(f"cannot read image {path}: {err.strerror or err}") from None
    if not stat.S_ISREG(mode):
        raise InputError(f"cannot read image {path}: not a regular file")


def _to_rgb8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise InputError(f"unsupported image sample type {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def read_image(path) -> np.ndarray:
    """Read an image file as ``HxWx3`` uint8 RGB; ``InputError`` with one line on any failure."""
    path = Path(path)
    _require_file(path)
    cv2 = _cv2()
    if cv2 is not None:
        # imdecode on the bytes, not imread: imread cannot open non-ASCII paths on some platforms.
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except OSError as err:
            raise InputError(f"cannot read image {path}: {err.strerror or err}") from None
        check_image_bytes(data, str(path))  # the header's size against the pixel limit, before decoding
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            raise InputError(f"cannot decode image {path}: not an image file OpenCV can read")
        return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    pil = _pil()
    if pil is None:
        raise InputError(
            f"cannot read image {path}: install OpenCV (pip install opencv-python-headless) or Pillow"
        )
    try:
        check_image_bytes(path, str(path))  # the header's size against the pixel limit, before decoding
        with pil.open(path) as img:
            image = np.asarray(img.convert("RGB"))
    except Exception as err:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ...
        reason = first_line(err)
        raise InputError(f"cannot decode image {path}: {reason}") from None
    return _to_rgb8(image)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an ``HxWx3`` uint8 RGB image (OpenCV, else Pillow, else our 16-bit codec)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"PNG writer needs HxWx3 uint8 RGB, got shape {image.shape} dtype {image.dtype}")
    cv2 = _cv2()
    if cv2 is not None:
        ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if ok:
            return buf.tobytes()
    pil = _pil()
    if pil is not None:
        import io

        out = io.BytesIO()
        pil.fromarray(image, "RGB").save(out, format="PNG")
        return out.getvalue()
    from edgeflow.flow.png16 import encode_png16

    return encode_png16(image.astype(np.uint16) * 257)  # exact: 8-bit v -> 16-bit v * 257


def write_png(path, image: np.ndarray) -> Path:
    """Write ``image`` (``HxWx3`` uint8 RGB) as a PNG file, creating parent folders."""
    path = Path(path)
    data = encode_png(image)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as err:
        raise InputError(f"cannot write {path}: {err.strerror or err}") from None
    return path
