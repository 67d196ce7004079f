"""Flow file formats: round trips, every PNG row filter, malformed files and fuzzing.

The PNG tests build files with an encoder written here, independently of edgeflow's own writer
(which only ever emits filter 0), so the reader's Sub/Up/Average/Paeth paths are really exercised.
"""

from __future__ import annotations

import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeflow.errors import InputError
from edgeflow.flow import (
    decode_flo,
    decode_kitti_png,
    encode_flo,
    encode_kitti_png,
    read_flo,
    read_flow,
    read_kitti_png,
    write_flo,
    write_flow,
    write_kitti_png,
)
from edgeflow.flow.png16 import decode_png16, encode_png16

try:
    import cv2
except Exception:  # optional dependency
    cv2 = None

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW_LIMIT_S = 2.0


# ---------------------------------------------------------------- an independent PNG encoder


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def ihdr(width, height, depth=16, color=2, compression=0, filter_method=0, interlace=0) -> bytes:
    fields = struct.pack(
        ">IIBBBBB", width, height, depth, color, compression, filter_method, interlace
    )
    return chunk(b"IHDR", fields)


def make_png(header: bytes, idat: bytes, extra: bytes = b"") -> bytes:
    return b"\x89PNG\r\n\x1a\n" + header + extra + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def filter_rows(img: np.ndarray, filters) -> bytes:
    """Filter an HxWx3 uint16 image row by row with the given PNG filter types (vectorised)."""
    height, width, _ = img.shape
    bpp = 6
    rows = img.astype(">u2").view(np.uint8).reshape(height, width * bpp).astype(np.int32)
    zero = np.zeros(width * bpp, dtype=np.int32)
    out = []
    for y in range(height):
        ftype = filters[y % len(filters)]
        x, b = rows[y], rows[y - 1] if y else zero
        a = np.concatenate([np.zeros(bpp, np.int32), x[:-bpp]])
        c = np.concatenate([np.zeros(bpp, np.int32), b[:-bpp]])
        pred = {0: 0, 1: a, 2: b, 3: (a + b) // 2, 4: _paeth(a, b, c)}[ftype]
        out.append(bytes([ftype]) + ((x - pred) % 256).astype(np.uint8).tobytes())
    return b"".join(out)


def png_with_filters(img: np.ndarray, filters) -> bytes:
    height, width, _ = img.shape
    return make_png(ihdr(width, height), zlib.compress(filter_rows(img, filters)))


def random_image(rng, height=7, width=9) -> np.ndarray:
    return rng.integers(0, 65536, size=(height, width, 3), dtype=np.uint16)


# ---------------------------------------------------------------- .flo


def test_flo_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    flow = (rng.normal(0, 30, size=(5, 11, 2))).astype(np.float32)
    flow[0, 0] = (-0.125, 1e-7)
    path = tmp_path / "a.flo"
    write_flo(path, flow)
    assert path.stat().st_size == 12 + 5 * 11 * 8
    back = read_flo(path)
    assert back.dtype == np.float32 and back.shape == (5, 11, 2)
    np.testing.assert_array_equal(back, flow)


def test_flo_header_layout_is_little_endian_middlebury():
    data = encode_flo(np.zeros((2, 3, 2), np.float32))
    assert struct.unpack("<f", data[:4])[0] == 202021.25
    assert struct.unpack("<ii", data[4:12]) == (3, 2)  # width first, then height


def test_flo_valid_mask_uses_middlebury_unknown_marker(tmp_path):
    flow = np.arange(24, dtype=np.float32).reshape(3, 4, 2) - 10.5
    valid = np.ones((3, 4), bool)
    valid[1, 2] = valid[0, 0] = False
    write_flow(tmp_path / "m.flo", flow, valid)
    assert read_flo(tmp_path / "m.flo")[1, 2, 0] == np.float32(1e10)
    back, back_valid = read_flow(tmp_path / "m.flo")
    np.testing.assert_array_equal(back_valid, valid)
    np.testing.assert_array_equal(back[valid], flow[valid])
    assert np.all(back[~valid] == 0)


def test_read_flow_flo_marks_nan_invalid(tmp_path):
    flow = np.ones((2, 2, 2), np.float32)
    flow[1, 1, 1] = np.nan
    write_flo(tmp_path / "n.flo", flow)
    back, valid = read_flow(tmp_path / "n.flo")
    assert valid.tolist() == [[True, True], [True, False]]
    assert np.isfinite(back).all()


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "header needs 12"),
        (b"PIEH\x01\x00\x00\x00", "header needs 12"),
        (b"PIEX" + struct.pack("<ii", 1, 1) + bytes(8), "bad magic"),
        (b"PIEH" + struct.pack("<ii", -1, 1) + bytes(8), "invalid size"),
        (b"PIEH" + struct.pack("<ii", 0, 5), "invalid size"),
        (b"PIEH" + struct.pack("<ii", 2, 2) + bytes(31), "truncated"),
        (b"PIEH" + struct.pack("<ii", 2, 2) + bytes(33), "trailing"),
        (b"PIEH" + struct.pack("<ii", 2**31 - 1, 2**31 - 1) + bytes(8), "truncated"),
    ],
)
def test_flo_malformed_raises_input_error_naming_file(tmp_path, data, message):
    path = tmp_path / "bad.flo"
    path.write_bytes(data)
    with pytest.raises(InputError, match=message) as err:
        read_flo(path)
    assert "bad.flo" in str(err.value)
    with pytest.raises(InputError, match=message):
        decode_flo(data)


def test_missing_and_non_regular_files_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        read_flow(tmp_path / "missing.flo")
    with pytest.raises(InputError, match="cannot read"):
        read_flow(tmp_path / "missing.png")
    (tmp_path / "dir.flo").mkdir()
    with pytest.raises(InputError, match="not a regular file"):
        read_flow(tmp_path / "dir.flo")
    with pytest.raises(InputError, match="cannot write"):
        write_flow(tmp_path / "no" / "such" / "dir.flo", np.zeros((1, 1, 2)))


def test_dispatch_rejects_unknown_extension(tmp_path):
    with pytest.raises(InputError, match="unsupported flow file extension"):
        write_flow(tmp_path / "x.pfm", np.zeros((1, 1, 2)))
    with pytest.raises(InputError, match="unsupported"):
        read_flow(tmp_path / "x")


@pytest.mark.parametrize("shape", [(4, 4), (2, 4, 4), (4, 4, 3), (0, 3, 2)])
def test_writers_reject_bad_flow_shapes(tmp_path, shape):
    for name in ("a.flo", "a.png"):
        with pytest.raises(InputError, match="HxWx2"):
            write_flow(tmp_path / name, np.zeros(shape, np.float32))


def test_writers_reject_bad_valid_shape(tmp_path):
    for name in ("a.flo", "a.png"):
        with pytest.raises(InputError, match="valid mask"):
            write_flow(tmp_path / name, np.zeros((2, 3, 2)), valid=np.ones((3, 2)))


# ---------------------------------------------------------------- KITTI PNG


def test_kitti_round_trip_exact_on_the_1_64_grid(tmp_path):
    rng = np.random.default_rng(1)
    flow = (rng.integers(-512 * 64, 512 * 64, size=(6, 10, 2)) / 64.0).astype(np.float32)
    flow[0, 0] = (-0.015625, 3.5)
    valid = rng.random((6, 10)) > 0.3
    valid[0, 0] = True
    write_kitti_png(tmp_path / "k.png", flow, valid)
    back, back_valid = read_kitti_png(tmp_path / "k.png")
    assert back.dtype == np.float32 and back_valid.dtype == bool
    np.testing.assert_array_equal(back_valid, valid)
    np.testing.assert_array_equal(back[valid], flow[valid])
    assert np.all(back[~valid] == 0)


def test_kitti_fractional_flow_rounds_to_nearest_1_64(tmp_path):
    rng = np.random.default_rng(2)
    flow = rng.uniform(-300, 300, size=(8, 8, 2)).astype(np.float32)
    write_flow(tmp_path / "f.png", flow)
    back, valid = read_flow(tmp_path / "f.png")
    assert valid.all()
    assert np.abs(back - flow).max() <= 1 / 128 + 1e-6


def test_kitti_encoding_matches_devkit_layout():
    flow = np.array([[[1.0, -2.0], [np.nan, 0.0]]], np.float32)
    img = decode_png16(encode_kitti_png(flow))
    # channel 0 (R) = u, channel 1 (G) = v, channel 2 (B) = valid; invalid pixels all zero.
    assert img[0, 0].tolist() == [32768 + 64, 32768 - 128, 1]
    assert img[0, 1].tolist() == [0, 0, 0]


def test_kitti_clips_out_of_range_flow():
    flow = np.array([[[1000.0, -1000.0]]], np.float32)
    back, valid = decode_kitti_png(encode_kitti_png(flow))
    assert valid.all()
    assert back[0, 0, 0] == pytest.approx(65535 / 64 - 512)
    assert back[0, 0, 1] == -512.0


def test_kitti_all_invalid_reads_zero_flow():
    flow = np.full((3, 3, 2), 7.0)
    back, valid = decode_kitti_png(encode_kitti_png(flow, np.zeros((3, 3))))
    assert not valid.any() and not back.any()


def test_kitti_nonzero_blue_values_are_valid():
    img = np.zeros((1, 3, 3), np.uint16)
    img[0, :, :2] = 32768
    img[0, :, 2] = (0, 1, 65535)
    _, valid = decode_kitti_png(encode_png16(img))
    assert valid.tolist() == [[False, True, True]]


@pytest.mark.parametrize("filters", [[0], [1], [2], [3], [4], [0, 1, 2, 3, 4], [4, 3, 2, 1, 0, 2]])
def test_reader_handles_every_filter_type(filters):
    rng = np.random.default_rng(sum(filters) + len(filters))
    img = random_image(rng, height=11, width=13)
    img[3] = 0  # long zero runs exercise the wrap-around arithmetic differently
    img[5] = 65535
    data = png_with_filters(img, filters)
    np.testing.assert_array_equal(decode_png16(data), img)


def test_reader_handles_split_idat_and_ancillary_chunks():
    rng = np.random.default_rng(3)
    img = random_image(rng)
    stream = zlib.compress(filter_rows(img, [4, 1]))
    third = len(stream) // 3
    idat = b"".join(chunk(b"IDAT", stream[i : i + third]) for i in range(0, len(stream), third))
    data = (
        b"\x89PNG\r\n\x1a\n" + ihdr(9, 7) + chunk(b"gAMA", struct.pack(">I", 45455))
        + chunk(b"tEXt", b"Comment\0edgeflow") + idat + chunk(b"IEND", b"")
    )
    np.testing.assert_array_equal(decode_png16(data), img)


@pytest.mark.skipif(cv2 is None, reason="OpenCV not installed")
def test_agrees_with_opencv_in_both_directions(tmp_path):
    rng = np.random.default_rng(4)
    flow = rng.normal(0, 40, size=(33, 47, 2)).astype(np.float32)
    valid = rng.random((33, 47)) > 0.2
    write_kitti_png(tmp_path / "ours.png", flow, valid)
    bgr = cv2.imread(str(tmp_path / "ours.png"), cv2.IMREAD_UNCHANGED)
    ours = decode_png16((tmp_path / "ours.png").read_bytes())
    np.testing.assert_array_equal(bgr[:, :, ::-1], ours)
    # libpng picks filters adaptively (Sub/Up/Average/Paeth), so this reads real-world encodings.
    smooth = np.cumsum(np.cumsum(rng.integers(0, 40, size=(33, 47, 3)), 0), 1).astype(np.uint16)
    assert cv2.imwrite(str(tmp_path / "cv.png"), smooth[:, :, ::-1])
    data = (tmp_path / "cv.png").read_bytes()
    np.testing.assert_array_equal(decode_png16(data), smooth)


def _valid_png() -> bytes:
    img = random_image(np.random.default_rng(5), height=4, width=5)
    return png_with_filters(img, [0, 1, 2, 3, 4])


def _with_idat(raw_rows: bytes, width=2, height=2) -> bytes:
    return make_png(ihdr(width, height), zlib.compress(raw_rows))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "signature"),
        (b"GIF89a" + bytes(40), "signature"),
        (b"\x89PNG\r\n\x1a\n", "truncated"),
        (make_png(ihdr(2, 2, depth=8), zlib.compress(bytes(2 * 7))), "bit depth is 8"),
        (make_png(ihdr(2, 2, color=6), zlib.compress(bytes(2 * 17))), "RGBA"),
        (make_png(ihdr(2, 2, color=0), zlib.compress(bytes(2 * 5))), "grayscale"),
        (make_png(ihdr(2, 2, interlace=1), b""), "interlaced"),
        (make_png(ihdr(0, 2), b""), "invalid image size"),
        (make_png(ihdr(2, 2), b"not zlib at all"), "corrupt compressed"),
        (_with_idat(bytes(2 * 13)[:-1]), "truncated"),
        (make_png(ihdr(2, 2), zlib.compress(bytes(26))[:-5]), "truncated"),
        (_with_idat(b"\x05" + bytes(12) + b"\x00" + bytes(12)), "libpng refused"),
        (make_png(ihdr(60000, 60000), zlib.compress(bytes(100))), "pixel limit"),
        (make_png(ihdr(5000, 5000), zlib.compress(bytes(100))), "far too little data"),
        (make_png(ihdr(2, 2), zlib.compress(bytes(26)), chunk(b"ABCD", b"")), "bad chunk"),
        (b"\x89PNG\r\n\x1a\n" + chunk(b"IEND", b""), "IHDR"),
        (b"\x89PNG\r\n\x1a\n" + ihdr(2, 2) + chunk(b"IEND", b""), "libpng refused"),
        (_valid_png()[:-12], "truncated"),
        (_valid_png()[:40], "truncated"),
    ],
)
def test_png_malformed_raises_input_error_naming_file(tmp_path, data, message):
    path = tmp_path / "bad.png"
    path.write_bytes(data)
    start = time.perf_counter()
    with pytest.raises(InputError, match=message) as err:
        read_flow(path)
    assert time.perf_counter() - start < SLOW_LIMIT_S
    assert "bad.png" in str(err.value)


def test_png_crc_mismatch_is_detected():
    data = bytearray(_valid_png())
    data[20] ^= 0x01  # a bit of IHDR's width field
    with pytest.raises(InputError, match="CRC mismatch"):  # libpng checks every chunk's CRC
        decode_kitti_png(bytes(data))


def test_zip_bomb_stream_decodes_only_the_image():
    # 64x64 pixels need 64*(1+384) bytes; this stream would inflate to 50 MB of zeros. libpng stops
    # at the image's size (extra data is ignored, as libpng does), so nothing large is allocated.
    bomb = zlib.compress(bytes(50_000_000), 9)
    img = decode_png16(make_png(ihdr(64, 64), bomb))
    assert img.shape == (64, 64, 3) and not img.any()


def _real_bomb(width: int, height: int) -> bytes:
    """A genuine PNG of width x height zero pixels, deflated row by row (never held in memory)."""
    deflate = zlib.compressobj(9)
    row = bytes(1 + width * 6)
    parts = [deflate.compress(row) for _ in range(height)]
    return make_png(ihdr(width, height), b"".join(parts) + deflate.flush())


def test_decompression_bomb_is_refused_from_its_header(tmp_path):
    """Issue 15: a ~780 kB PNG that decodes to 16384 x 8192 (805 MB of pixels; 20 s and 4 GB in the
    old reader) is refused on its header: the pixel limit, before libpng decodes anything."""
    data = _real_bomb(16384, 8192)
    assert len(data) < 1_000_000
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    with pytest.raises(InputError, match="16384x8192, larger than the 33554432-pixel limit") as err:
        read_flow(path)
    assert "bomb.png" in str(err.value) and "\n" not in str(err.value)


def test_pixel_limit_applies_to_flo_and_can_be_raised(tmp_path, monkeypatch):
    path = tmp_path / "big.flo"
    write_flo(path, np.zeros((64, 64, 2), np.float32))
    monkeypatch.setenv("EDGEFLOW_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(InputError, match="1000-pixel limit"):
        read_flo(path)
    monkeypatch.setenv("EDGEFLOW_MAX_IMAGE_PIXELS", "5000")
    assert read_flo(path).shape == (64, 64, 2)


# ---------------------------------------------------------------- fuzzing


def _only_input_error(fn, data: bytes) -> None:
    start = time.perf_counter()
    try:
        fn(data)
    except InputError as err:
        assert str(err) and "\n" not in str(err)
    assert time.perf_counter() - start < SLOW_LIMIT_S


def _mutate(base: bytes, edits) -> bytes:
    data = bytearray(base)
    for kind, pos, value in edits:
        if not data:
            break
        pos %= len(data)
        if kind == 0:
            data[pos] = value
        elif kind == 1:
            del data[pos:]
        elif kind == 2:
            data[pos:pos] = bytes([value]) * (value % 7 + 1)
        else:
            del data[pos : pos + value % 16 + 1]
    return bytes(data)


EDITS = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 10_000), st.integers(0, 255)),
    min_size=1,
    max_size=6,
)
VALID_FLO = encode_flo(np.random.default_rng(6).normal(size=(3, 4, 2)).astype(np.float32))
VALID_PNG = _valid_png()


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_random_bytes_only_raise_input_error(data):
    _only_input_error(decode_flo, data)
    _only_input_error(decode_kitti_png, data)
    _only_input_error(decode_kitti_png, b"\x89PNG\r\n\x1a\n" + data)
    _only_input_error(decode_flo, b"PIEH" + data)


@FUZZ
@given(EDITS)
def test_fuzz_mutated_files_only_raise_input_error(edits):
    _only_input_error(decode_flo, _mutate(VALID_FLO, edits))
    _only_input_error(decode_kitti_png, _mutate(VALID_PNG, edits))


@FUZZ
@given(
    width=st.one_of(st.integers(0, 12), st.integers(0, 2**32 - 1)),
    height=st.one_of(st.integers(0, 12), st.integers(0, 2**32 - 1)),
    depth=st.sampled_from([1, 2, 4, 8, 16, 16, 16, 255]),
    color=st.sampled_from([0, 2, 2, 2, 3, 4, 6, 7]),
    interlace=st.sampled_from([0, 0, 0, 1, 9]),
    rows=st.binary(max_size=400),
    compress=st.booleans(),
)
def test_fuzz_structured_png_with_valid_crcs(
    width, height, depth, color, interlace, rows, compress
):
    """CRCs and chunk framing are correct, so the header/zlib/filter checks are what get hit."""
    idat = zlib.compress(rows) if compress else rows
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace))
    data = b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    _only_input_error(decode_kitti_png, data)


@FUZZ
@given(
    height=st.integers(1, 6),
    width=st.integers(1, 6),
    filters=st.lists(st.integers(0, 4), min_size=1, max_size=6),
    seed=st.integers(0, 2**32 - 1),
)
def test_fuzz_valid_filtered_pngs_decode_exactly(height, width, filters, seed):
    img = random_image(np.random.default_rng(seed), height, width)
    np.testing.assert_array_equal(decode_png16(png_with_filters(img, filters)), img)


@FUZZ
@given(width=st.integers(-(2**31), 2**31 - 1), height=st.integers(-(2**31), 2**31 - 1),
       body=st.binary(max_size=200))
def test_fuzz_flo_headers(width, height, body):
    _only_input_error(decode_flo, b"PIEH" + struct.pack("<ii", width, height) + body)


def test_without_opencv_is_one_line_error(monkeypatch):
    from edgeflow.flow import png16

    monkeypatch.setattr(png16, "_cv2", lambda: None)  # as if `import cv2` had failed
    img = random_image(np.random.default_rng(7), height=5, width=6)
    with pytest.raises(InputError, match="pip install opencv-python-headless"):
        decode_png16(png_with_filters(img, [3, 4]))
