"""16-bit RGB PNG (the KITTI flow format) through OpenCV's libpng, with limits checked first.

Decoding and encoding are libpng's (``cv2.imdecode`` / ``cv2.imencode``): it verifies every
chunk CRC, the zlib stream and the row filters, and refuses truncated image data. What libpng
does not do cheaply is refuse a hostile *size*: a few hundred kB can claim 16384 x 8192 pixels
and cost seconds and gigabytes to decode. So before libpng sees the bytes, the fixed IHDR header
is read and checked: bit depth 16, colour type RGB, no interlacing (KITTI's layout), the pixel
limit of :mod:`edgeflow.imagelimits`, and no more pixels than deflate's best ratio (~1032:1)
allows for the file's size.

OpenCV is an optional dependency of the device runtime (``video`` extra); reading or writing a
KITTI flow PNG without it is a one-line error saying what to install.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from edgeflow.errors import InputError
from edgeflow.imagelimits import PNG_SIGNATURE, check_pixels, png_header
from edgeflow.optional import cv2_or_none as _cv2

SIGNATURE = PNG_SIGNATURE
CHANNELS = 3
BYTES_PER_PIXEL = 2 * CHANNELS  # bit depth 16, RGB
# Deflate cannot compress better than ~1032:1; a claimed image larger than that multiple of the
# file is a lie, refused before anything is decoded.
_MAX_DEFLATE_RATIO = 1032
_COLOR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}


def _fail(name: str, what: str) -> InputError:
    return InputError(f"{name}: not a valid 16-bit RGB PNG flow file: {what}")


def _need_cv2(name: str):
    cv2 = _cv2()
    if cv2 is None:
        raise InputError(f"{name}: KITTI flow PNGs are read and written with OpenCV: pip install opencv-python-headless")
    return cv2


def encode_png16(image: np.ndarray, compress_level: int = 6) -> bytes:
    """Encode an HxWx3 uint16 array (channel 0 = R) as a 16-bit RGB PNG."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != CHANNELS or image.dtype != np.uint16:
        raise InputError(f"PNG encoder needs an HxWx3 uint16 array, got shape {image.shape} dtype {image.dtype}")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise InputError(f"cannot write an empty {height}x{width} PNG")
    cv2 = _need_cv2("<PNG encoder>")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, compress_level])
    if not ok:
        raise InputError(f"OpenCV could not encode a {height}x{width} 16-bit PNG")
    return buf.tobytes()


def check_png16_header(data: bytes, name: str = "<bytes>", max_pixels: int | None = None,
                       total_bytes: int | None = None) -> tuple[int, int]:
    """(width, height) of a 16-bit RGB PNG after the cheap checks; InputError otherwise.

    ``data`` may be just the first bytes of a file whose size is ``total_bytes``."""
    if len(data) < len(SIGNATURE) or bytes(data[:8]) != SIGNATURE:
        raise _fail(name, "missing PNG signature (is this really a PNG?)")
    header = png_header(data)
    if header is None:
        what = "truncated (no IHDR)" if len(data) < 33 else "first chunk is not a 13-byte IHDR"
        raise _fail(name, what)
    if zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF != struct.unpack(">I", bytes(data[29:33]))[0]:
        raise _fail(name, "CRC mismatch in IHDR chunk at byte 8 (corrupted header)")
    width, height, depth, color, interlace = header
    if not (1 <= width < 1 << 31 and 1 <= height < 1 << 31):
        raise _fail(name, f"invalid image size {width}x{height}")
    if color != 2:
        raise _fail(name, f"image is {_COLOR_TYPES.get(color, f'unknown colour type {color}')}, "
                          "expected 3-channel RGB (KITTI flow layout)")
    if depth != 16:
        raise _fail(name, f"bit depth is {depth}, expected 16 (KITTI flow PNGs are 16-bit)")
    if interlace != 0:
        raise _fail(name, "Adam7-interlaced PNGs are not supported; re-save without interlacing")
    check_pixels(width, height, name, max_pixels)
    total = len(data) if total_bytes is None else total_bytes
    if height * (1 + width * BYTES_PER_PIXEL) > total * _MAX_DEFLATE_RATIO + 1024:
        raise _fail(name, f"header claims {width}x{height} pixels but holds far too little data")
    return width, height


def decode_png16(data: bytes, name: str = "<bytes>", max_pixels: int | None = None) -> np.ndarray:
    """Decode a 16-bit RGB PNG to an HxWx3 uint16 array (channel 0 = R).

    Any malformed input raises :class:`InputError` naming ``name``; sizes are checked on the
    header before libpng decodes anything.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"{name}: expected PNG bytes, got {type(data).__name__}")
    data = bytes(data)
    width, height = check_png16_header(data, name, max_pixels)
    cv2 = _need_cv2(name)
    try:
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except Exception:  # cv2.error on some builds instead of None
        img = None
    if img is None:
        raise _fail(name, "corrupt compressed image data, truncated data, a bad chunk or a CRC mismatch (libpng refused it)")
    if img.dtype != np.uint16 or img.shape != (height, width, CHANNELS):
        raise _fail(name, f"decoded to {img.shape} {img.dtype}, expected {height}x{width}x3 uint16")
    return np.ascontiguousarray(img[:, :, ::-1])  # OpenCV returns BGR
