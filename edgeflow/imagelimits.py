"""Pixel limits for every image and flow reader, checked on the header before anything is decoded.

Why: a few hundred kB of PNG (deflate reaches ~1032:1) or JPEG can claim 16384 x 8192 pixels;
decoding it first and looking afterwards costs seconds and gigabytes. The size is read from the
header (Pillow's ``Image.open`` parses only the header; without Pillow a PNG's fixed IHDR is
read) and compared with a limit far above any flow or camera frame: 2**25 pixels (8192 x 4096)
by default, ``EDGEFLOW_MAX_IMAGE_PIXELS`` to change it.
"""

from __future__ import annotations

import io
import os
import struct
import warnings

from edgeflow.errors import InputError

DEFAULT_MAX_PIXELS = 1 << 25
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def max_pixels() -> int:
    """The pixel limit in force (``EDGEFLOW_MAX_IMAGE_PIXELS`` or the default)."""
    text = os.environ.get("EDGEFLOW_MAX_IMAGE_PIXELS", "")
    try:
        value = int(text) if text else DEFAULT_MAX_PIXELS
    except ValueError:
        raise InputError(f"EDGEFLOW_MAX_IMAGE_PIXELS must be a whole number of pixels, got {text!r}") from None
    return value if value > 0 else DEFAULT_MAX_PIXELS


def png_header(data: bytes) -> tuple[int, int, int, int, int] | None:
    """(width, height, bit depth, colour type, interlace) from a PNG's IHDR, or None if absent."""
    if len(data) < 33 or bytes(data[:8]) != PNG_SIGNATURE or bytes(data[12:16]) != b"IHDR":
        return None
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", bytes(data[16:29]))
    return width, height, depth, color, interlace


def image_size(data) -> tuple[int, int] | None:
    """(width, height) the header of ``data`` (bytes, or a path) claims, without decoding pixels;
    None when unknown."""
    if isinstance(data, (str, os.PathLike)):
        try:
            with open(data, "rb") as fh:
                head = fh.read(64)
        except OSError:
            return None
        source = data
    else:
        head, source = bytes(data[:64]), io.BytesIO(bytes(data))
    header = png_header(head)
    if header is not None:
        return header[0], header[1]
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(source) as img:
                return img.size
    except Image.DecompressionBombError:
        return (1 << 31, 1 << 31)  # Pillow's own limit (2x ours or more): certainly over
    except Exception:  # not an image Pillow knows: let the decoder say so
        return None


def check_pixels(width: int, height: int, name: str, limit: int | None = None) -> None:
    limit = max_pixels() if limit is None else limit
    if width * height > limit:
        raise InputError(
            f"{name}: image is {width}x{height}, larger than the {limit}-pixel limit "
            "(set EDGEFLOW_MAX_IMAGE_PIXELS to raise it if the file is genuine)"
        )


def check_image_bytes(data, name: str, limit: int | None = None) -> None:
    """Raise InputError when the encoded image (bytes, or a file path) claims more than ``limit``
    pixels."""
    size = image_size(data)
    if size is not None:
        check_pixels(size[0], size[1], name, limit)
