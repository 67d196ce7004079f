"""Pixel limits on every image reader: a header that claims too many pixels is refused before decoding.

The files are real encodings (OpenCV writes them); the limit is lowered with
EDGEFLOW_MAX_IMAGE_PIXELS so that small files exercise it, and one genuine decompression bomb
(a PNG of 30000 x 30000 zero pixels, ~3 MB) checks the default limit on every reader.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from edgeflow.errors import InputError

cv2 = pytest.importorskip("cv2")


def _png_bomb(width: int, height: int) -> bytes:
    """A genuine 8-bit RGB PNG of zero pixels, deflated row by row (never held in memory)."""
    import struct

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    deflate = zlib.compressobj(9)
    row = bytes(1 + width * 3)
    body = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    path.write_bytes(_png_bomb(30000, 30000))  # 900 M pixels, 2.7 GB decoded
    return path


def test_dataset_image_reader_refuses_bomb(bomb):
    from edgeflow.datasets.images import read_image

    with pytest.raises(InputError, match="30000x30000, larger than the 33554432-pixel limit"):
        read_image(bomb)


def test_image_source_skips_bomb(bomb, tmp_path):
    from edgeflow.sources.images import image_reader

    for backend in ("opencv", "pil"):
        try:
            read = image_reader(backend)
        except Exception:
            continue
        with pytest.raises(InputError, match="pixel limit"):
            read(str(bomb))


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp"])
def test_limit_covers_every_format(ext, tmp_path, monkeypatch):
    from edgeflow.datasets.images import read_image

    path = tmp_path / f"frame{ext}"
    assert cv2.imwrite(str(path), np.full((20, 30, 3), 128, np.uint8))
    assert read_image(path).shape == (20, 30, 3)
    monkeypatch.setenv("EDGEFLOW_MAX_IMAGE_PIXELS", "500")
    with pytest.raises(InputError, match="30x20, larger than the 500-pixel limit"):
        read_image(path)
