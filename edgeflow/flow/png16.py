"""A small, strict PNG codec for 16-bit RGB images (the KITTI flow format), numpy + zlib only.

Why not just ``cv2.imread``: OpenCV is optional on a device (and on a Jetson it is the system
build), and libpng happily returns a partially decoded image with a warning on stderr when a file
is truncated. Ground truth must never be silently wrong, so every byte is checked here: the
signature, each chunk's CRC, the IHDR fields, the zlib stream and the exact decompressed size.
Sizes are validated against the file length *before* anything large is allocated, so a 100-byte
file claiming to be 2^31 x 2^31 pixels costs nothing.

Only what KITTI needs is supported: bit depth 16, colour type 2 (RGB), no interlacing. The reader
handles all five PNG row filters. None/Sub/Up are numpy-vectorised; Average and Paeth are
inherently sequential within a row and run as plain Python loops. When such rows are present and
OpenCV imports, the (already fully validated) image is handed to libpng purely as an accelerator;
libpng implements the same arithmetic, so the result is identical (the tests check this).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from edgeflow.errors import InputError
from edgeflow.optional import cv2_or_none as _cv2

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = 3
BYTES_PER_PIXEL = 2 * CHANNELS  # bit depth 16, RGB
# Deflate cannot compress better than ~1032:1; a claimed image larger than that multiple of its
# compressed data is a lie, and we refuse it before allocating anything.
_MAX_DEFLATE_RATIO = 1032
# Sanity cap on decoded size (134 M pixels, ~800 MB raw); flow maps are orders of magnitude smaller.
DEFAULT_MAX_PIXELS = 1 << 27
_MAX_CHUNK = (1 << 31) - 1
_COLOR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}



def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _ihdr(width: int, height: int) -> bytes:
    return _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))


def assemble_png(width: int, height: int, idat: bytes) -> bytes:
    """A minimal PNG (IHDR, one IDAT, IEND) around an already compressed, filtered stream."""
    return SIGNATURE + _ihdr(width, height) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def encode_png16(image: np.ndarray, compress_level: int = 6) -> bytes:
    """Encode an HxWx3 uint16 array (channel 0 = R) as a 16-bit RGB PNG, filter type 0 on every row.

    Filter 0 keeps the writer trivially correct; zlib still compresses flow maps well.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != CHANNELS or image.dtype != np.uint16:
        raise InputError(
            f"PNG encoder needs an HxWx3 uint16 array, got shape {image.shape} dtype {image.dtype}"
        )
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise InputError(f"cannot write an empty {height}x{width} PNG")
    raw = np.zeros((height, 1 + width * BYTES_PER_PIXEL), dtype=np.uint8)
    raw[:, 1:] = image.astype(">u2").view(np.uint8).reshape(height, width * BYTES_PER_PIXEL)
    return assemble_png(width, height, zlib.compress(raw.tobytes(), compress_level))


def _fail(name: str, what: str) -> InputError:
    return InputError(f"{name}: not a valid 16-bit RGB PNG flow file: {what}")


def _read_chunks(data: bytes, name: str):
    """Split the file into (type, payload) pairs, verifying structure and every CRC."""
    if len(data) < len(SIGNATURE) or bytes(data[:8]) != SIGNATURE:
        raise _fail(name, "missing PNG signature (is this really a PNG?)")
    pos, end = len(SIGNATURE), len(data)
    chunks = []
    while True:
        if end - pos < 12:
            raise _fail(name, f"truncated at byte {pos} (no IEND chunk)")
        (length,) = struct.unpack_from(">I", data, pos)
        kind = bytes(data[pos + 4 : pos + 8])
        if length > _MAX_CHUNK or length > end - pos - 12:
            raise _fail(name, f"chunk at byte {pos} claims {length} bytes; the file is truncated")
        if not kind.isalpha() or not kind.isascii():
            raise _fail(name, f"corrupt chunk type {kind!r} at byte {pos}")
        payload = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(payload, zlib.crc32(kind)) & 0xFFFFFFFF != crc:
            raise _fail(name, f"CRC mismatch in {kind.decode()} chunk at byte {pos} (corrupted)")
        chunks.append((kind, payload))
        pos += 12 + length
        if kind == b"IEND":
            return chunks  # trailing bytes after IEND are ignored, as libpng does


def _parse_header(chunks, name: str):
    kind, payload = chunks[0]
    if kind != b"IHDR" or len(payload) != 13:
        raise _fail(name, "first chunk is not a 13-byte IHDR")
    width, height, depth, color, compression, filter_method, interlace = struct.unpack(
        ">IIBBBBB", payload
    )
    if not (1 <= width <= _MAX_CHUNK and 1 <= height <= _MAX_CHUNK):
        raise _fail(name, f"invalid image size {width}x{height}")
    if color != 2:
        kind_name = _COLOR_TYPES.get(color, f"unknown colour type {color}")
        raise _fail(name, f"image is {kind_name}, expected 3-channel RGB (KITTI flow layout)")
    if depth != 16:
        raise _fail(name, f"bit depth is {depth}, expected 16 (KITTI flow PNGs are 16-bit)")
    if compression != 0 or filter_method != 0:
        raise _fail(name, f"unknown compression/filter method {compression}/{filter_method}")
    if interlace != 0:
        raise _fail(name, "Adam7-interlaced PNGs are not supported; re-save without interlacing")
    return width, height


def _collect_idat(chunks, name: str) -> bytes:
    parts, state = [], "before"  # IDAT chunks must be consecutive (PNG spec 5.6)
    for kind, payload in chunks[1:]:
        if kind == b"IHDR":
            raise _fail(name, "more than one IHDR chunk")
        if kind == b"IDAT":
            if state == "after":
                raise _fail(name, "IDAT chunks are not consecutive")
            state = "inside"
            parts.append(payload)
        elif state == "inside":
            state = "after"
        if kind[0:1].isupper() and kind not in (b"IDAT", b"IEND", b"PLTE", b"IHDR"):
            raise _fail(name, f"unknown critical chunk {kind.decode()}")
    if not parts:
        raise _fail(name, "no image data (IDAT chunk)")
    return b"".join(parts)


def _inflate(idat: bytes, expected: int, name: str) -> bytes:
    """Decompress exactly ``expected`` bytes; never more (zip bombs), never fewer (truncation)."""
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(idat, expected + 1)
    except zlib.error as err:
        raise _fail(name, f"corrupt compressed image data ({err})") from None
    if len(raw) > expected or (len(raw) == expected and inflater.unconsumed_tail):
        raise _fail(name, "more image data than the header's size allows")
    if len(raw) < expected or not inflater.eof:
        raise _fail(name, f"image data is truncated ({len(raw)} of {expected} bytes)")
    return raw


def _unfilter_average(cur: bytearray, prior: bytes, bpp: int) -> None:
    for i in range(bpp):
        cur[i] = (cur[i] + (prior[i] >> 1)) & 0xFF
    for i in range(bpp, len(cur)):
        cur[i] = (cur[i] + ((cur[i - bpp] + prior[i]) >> 1)) & 0xFF


def _unfilter_paeth(cur: bytearray, prior: bytes, bpp: int) -> None:
    for i in range(bpp):
        cur[i] = (cur[i] + prior[i]) & 0xFF  # a = c = 0, so the predictor is b
    for i in range(bpp, len(cur)):
        a, b, c = cur[i - bpp], prior[i], prior[i - bpp]
        pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - c - c)
        if pa <= pb and pa <= pc:
            pred = a
        elif pb <= pc:
            pred = b
        else:
            pred = c
        cur[i] = (cur[i] + pred) & 0xFF


def unfilter(raw: bytes, height: int, stride: int, bpp: int, name: str = "<bytes>") -> np.ndarray:
    """Undo PNG row filters; ``raw`` is height rows of (filter byte + stride bytes)."""
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, stride + 1)
    filters = rows[:, 0]
    bad = np.flatnonzero(filters > 4)
    if bad.size:
        raise _fail(name, f"invalid filter type {int(filters[bad[0]])} on row {int(bad[0])}")
    out = rows[:, 1:].copy()
    zero = np.zeros(stride, dtype=np.uint8)
    for y, ftype in enumerate(filters.tolist()):
        prior = out[y - 1] if y else zero
        if ftype == 1:  # Sub: running sum per byte lane, modulo 256
            out[y] = np.cumsum(out[y].reshape(-1, bpp), axis=0, dtype=np.uint8).ravel()
        elif ftype == 2:  # Up
            out[y] += prior
        elif ftype in (3, 4):
            cur = bytearray(out[y].tobytes())
            (_unfilter_average if ftype == 3 else _unfilter_paeth)(cur, prior.tobytes(), bpp)
            out[y] = np.frombuffer(bytes(cur), dtype=np.uint8)
    return out


def _decode_with_cv2(width: int, height: int, idat: bytes):
    """Let libpng unfilter a stream we have already fully validated; None if it declines."""
    cv2 = _cv2()
    if cv2 is None:
        return None
    try:
        buf = np.frombuffer(assemble_png(width, height, idat), dtype=np.uint8)
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except Exception:
        return None
    if img is None or img.dtype != np.uint16 or img.shape != (height, width, CHANNELS):
        return None
    return np.ascontiguousarray(img[:, :, ::-1])  # OpenCV returns BGR


def decode_png16(
    data: bytes,
    name: str = "<bytes>",
    use_cv2: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode a 16-bit RGB PNG to an HxWx3 uint16 array (channel 0 = R).

    Any malformed input raises :class:`InputError` naming ``name``. ``use_cv2=False`` forces the
    pure numpy path (OpenCV is only ever used for files with Average/Paeth rows).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"{name}: expected PNG bytes, got {type(data).__name__}")
    data = bytes(data)
    chunks = _read_chunks(data, name)
    width, height = _parse_header(chunks, name)
    idat = _collect_idat(chunks, name)
    if width * height > max_pixels:
        raise _fail(name, f"image is {width}x{height}, larger than the {max_pixels}-pixel limit")
    stride = width * BYTES_PER_PIXEL
    expected = height * (stride + 1)
    if expected > len(idat) * _MAX_DEFLATE_RATIO + 1024:
        raise _fail(name, f"header claims {width}x{height} pixels but holds far too little data")
    raw = _inflate(idat, expected, name)
    filters = np.frombuffer(raw, dtype=np.uint8)[:: stride + 1]
    if use_cv2 and filters.max() >= 3 and filters.max() <= 4:
        img = _decode_with_cv2(width, height, idat)
        if img is not None:
            return img
    pixels = unfilter(raw, height, stride, BYTES_PER_PIXEL, name)
    return pixels.view(">u2").reshape(height, width, CHANNELS).astype(np.uint16)
