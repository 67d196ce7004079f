"""Read and write optical-flow files: Middlebury ``.flo`` and KITTI 16-bit ``.png``.

Flow convention (whole SDK): HxWx2 float32 (u, v) in pixels; frame-1 pixel (x, y) moves to
(x + u, y + v) in frame 2. Every reader returns a validity mask alongside the flow because ground
truth is usually sparse (KITTI) or marks unknown pixels (Middlebury uses values > 1e9).

Readers treat files as untrusted: anything malformed raises :class:`InputError` naming the file and
the problem, and sizes are checked against the file length and the pixel limit of
:mod:`edgeflow.imagelimits` (read from the header) before any large read, allocation or decode.
"""

from __future__ import annotations

import os
import stat
import struct

import numpy as np

from edgeflow.errors import InputError
from edgeflow.flow.png16 import check_png16_header, decode_png16, encode_png16
from edgeflow.imagelimits import check_pixels

FLO_MAGIC = b"PIEH"  # float32 202021.25, little endian
FLO_HEADER_BYTES = 12
# Middlebury marks unknown flow with 1e10 and treats anything above 1e9 as unknown.
UNKNOWN_FLOW = 1e10
UNKNOWN_FLOW_THRESHOLD = 1e9
KITTI_OFFSET = 2**15
KITTI_SCALE = 64.0


def _os_error(action: str, path, err: OSError) -> InputError:
    return InputError(f"cannot {action} flow file {os.fspath(path)}: {err.strerror or err}")


def _require_file(path) -> None:
    """Refuse directories, FIFOs and devices up front: opening a FIFO would block forever."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        raise _os_error("read", path, err) from None
    if not stat.S_ISREG(mode):
        raise InputError(f"cannot read flow file {os.fspath(path)}: not a regular file")


def _read_bytes(path) -> bytes:
    _require_file(path)
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as err:
        raise _os_error("read", path, err) from None


def _write_bytes(path, data: bytes) -> None:
    try:
        with open(path, "wb") as fh:
            fh.write(data)
    except OSError as err:
        raise _os_error("write", path, err) from None


def _check_flow(flow, what: str = "flow") -> np.ndarray:
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.shape[0] == 0 or flow.shape[1] == 0:
        hint = " (transpose 2xHxW to HxWx2)" if flow.ndim == 3 and flow.shape[0] == 2 else ""
        raise InputError(f"{what} must be an HxWx2 array of (u, v), got shape {flow.shape}{hint}")
    if not np.issubdtype(flow.dtype, np.number) or np.iscomplexobj(flow):
        raise InputError(f"{what} must be a real numeric array, got dtype {flow.dtype}")
    return flow


def _check_valid(valid, shape, what: str = "valid") -> np.ndarray:
    valid = np.asarray(valid)
    if valid.shape != tuple(shape):
        raise InputError(f"{what} mask must have shape {tuple(shape)}, got {valid.shape}")
    return valid != 0


def _parse_flo_header(header: bytes, total_bytes: int, name: str):
    """Validate a .flo header against the total file length; returns (width, height)."""
    if total_bytes < FLO_HEADER_BYTES or len(header) < FLO_HEADER_BYTES:
        raise InputError(f"{name}: not a .flo file: only {total_bytes} bytes, header needs 12")
    if bytes(header[:4]) != FLO_MAGIC:
        magic = bytes(header[:4])
        raise InputError(f"{name}: not a .flo file: bad magic {magic!r} (expected 202021.25)")
    width, height = struct.unpack_from("<ii", header, 4)
    if width <= 0 or height <= 0:
        raise InputError(f"{name}: corrupt .flo header: invalid size {width}x{height}")
    expected = FLO_HEADER_BYTES + width * height * 8  # Python ints: no overflow
    if total_bytes != expected:
        problem = "truncated" if total_bytes < expected else "has trailing bytes"
        raise InputError(
            f"{name}: corrupt .flo file: {problem} ({total_bytes} bytes, a {width}x{height} flow "
            f"needs {expected})"
        )
    check_pixels(width, height, name)
    return width, height


def decode_flo(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of a Middlebury ``.flo`` file to an HxWx2 float32 array."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"{name}: expected .flo bytes, got {type(data).__name__}")
    data = bytes(data)
    width, height = _parse_flo_header(data[:FLO_HEADER_BYTES], len(data), name)
    flow = np.frombuffer(data, dtype="<f4", count=width * height * 2, offset=FLO_HEADER_BYTES)
    return flow.reshape(height, width, 2).astype(np.float32)


def encode_flo(flow) -> bytes:
    """Encode an HxWx2 flow as ``.flo`` bytes (float32, little endian)."""
    flow = _check_flow(flow)
    height, width = flow.shape[:2]
    header = FLO_MAGIC + struct.pack("<ii", width, height)
    return header + np.ascontiguousarray(flow, dtype="<f4").tobytes()


def read_flo(path) -> np.ndarray:
    """Read a Middlebury ``.flo`` file; unknown pixels keep their stored (> 1e9) values.

    The header is checked against the file length before the body is read, so a corrupt or
    hostile header never triggers a large read or allocation.
    """
    name = os.fspath(path)
    _require_file(path)
    try:
        with open(path, "rb") as fh:
            total = os.fstat(fh.fileno()).st_size
            header = fh.read(FLO_HEADER_BYTES)
            _parse_flo_header(header, total, name)
            data = header + fh.read(total - FLO_HEADER_BYTES)
    except OSError as err:
        raise _os_error("read", path, err) from None
    return decode_flo(data, name)  # re-checks: the file may have changed while we read it


def write_flo(path, flow, valid=None) -> None:
    """Write ``flow`` as ``.flo``; pixels where ``valid`` is False are stored as 1e10 (unknown)."""
    flow = _check_flow(flow).astype(np.float32)
    if valid is not None:
        flow = flow.copy()
        flow[~_check_valid(valid, flow.shape[:2])] = UNKNOWN_FLOW
    _write_bytes(path, encode_flo(flow))


def flo_valid(flow: np.ndarray) -> np.ndarray:
    """Middlebury validity: finite and not marked unknown (|component| <= 1e9)."""
    return np.all(np.isfinite(flow) & (np.abs(flow) <= UNKNOWN_FLOW_THRESHOLD), axis=2)


def decode_kitti_png(data: bytes, name: str = "<bytes>"):
    """Decode KITTI flow PNG bytes to ``(flow HxWx2 float32, valid HxW bool)``.

    u = (R - 2^15) / 64, v = (G - 2^15) / 64, valid = B > 0; invalid pixels read as (0, 0).
    """
    img = decode_png16(data, name=name)
    flow = (img[:, :, :2].astype(np.float32) - KITTI_OFFSET) / KITTI_SCALE
    valid = img[:, :, 2] > 0
    flow[~valid] = 0.0
    return flow, valid


def encode_kitti_png(flow, valid=None) -> bytes:
    """Encode flow as KITTI PNG bytes.

    Values are rounded to the nearest 1/64 px and clipped to the representable [-512, 511.98];
    non-finite pixels and pixels where ``valid`` is False are written as invalid (0, 0, 0).
    """
    flow = _check_flow(flow).astype(np.float64)
    ok = np.all(np.isfinite(flow), axis=2)
    if valid is not None:
        ok &= _check_valid(valid, flow.shape[:2])
    encoded = np.rint(np.where(ok[:, :, None], flow, 0.0) * KITTI_SCALE + KITTI_OFFSET)
    img = np.zeros(flow.shape[:2] + (3,), dtype=np.uint16)
    img[:, :, :2] = np.clip(encoded, 0, 65535).astype(np.uint16)
    img[:, :, 2] = ok
    img[~ok] = 0
    return encode_png16(img)


def read_kitti_png(path):
    """Read a KITTI flow PNG; returns ``(flow, valid)``. The header is checked (size, pixel limit,
    deflate ratio) from the first bytes before the rest of the file is read or decoded."""
    name = os.fspath(path)
    _require_file(path)
    try:
        with open(path, "rb") as fh:
            total = os.fstat(fh.fileno()).st_size
            head = fh.read(64)
            if len(head) >= 33:
                check_png16_header(head, name, total_bytes=total)
            data = head + fh.read()
    except OSError as err:
        raise _os_error("read", path, err) from None
    return decode_kitti_png(data, name=name)


def write_kitti_png(path, flow, valid=None) -> None:
    """Write a KITTI flow PNG (see :func:`encode_kitti_png` for rounding and validity)."""
    _write_bytes(path, encode_kitti_png(flow, valid))


def _kind(path) -> str:
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext in (".flo", ".png"):
        return ext
    raise InputError(
        f"{os.fspath(path)}: unsupported flow file extension {ext or '(none)'!r}; use .flo or .png"
    )


def read_flow(path):
    """Read a ``.flo`` or KITTI ``.png`` flow file as ``(flow HxWx2 float32, valid HxW bool)``.

    For ``.flo``, ``valid`` is False where the stored flow is non-finite or > 1e9 (Middlebury's
    unknown marker); those pixels are returned as (0, 0) so downstream arithmetic stays finite.
    """
    if _kind(path) == ".png":
        return read_kitti_png(path)
    flow = read_flo(path)
    valid = flo_valid(flow)
    flow[~valid] = 0.0
    return flow, valid


def write_flow(path, flow, valid=None) -> None:
    """Write flow to ``.flo`` or KITTI ``.png`` chosen by extension, with an optional valid mask."""
    if _kind(path) == ".png":
        write_kitti_png(path, flow, valid)
    else:
        write_flo(path, flow, valid)
