"""Image folders and globs (``frames/``, ``"frames/*.png"``), one image per frame.

Files are ordered naturally (``img2.png`` before ``img10.png``), the way numbered frame dumps are
meant to be read. An image that cannot be decoded is skipped with a logged warning and counted
in ``frames_skipped``: one bad file in a dump of thousands must not stop a run. A folder has no
clock of its own, so ``sensor_ts`` is the nominal position ``n / fps`` (default 30 fps), which is
also the rate ``realtime=True`` paces at.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import time
from typing import Callable, List, Optional

import numpy as np

from edgeflow.imagelimits import check_image_bytes
from edgeflow.errors import SourceError
from edgeflow.sources.base import Frame, Source, as_rgb_frame
from edgeflow.sources.pacing import Pacer
from edgeflow.sources.uri import IMAGE_EXTENSIONS

log = logging.getLogger("edgeflow.sources")


def natural_key(path: str):
    """``frame_2.png`` < ``frame_10.png``: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path)]


def list_images(location: str) -> List[str]:
    """Folder -> its image files (by extension); glob -> every matching file. Naturally sorted."""
    if os.path.isdir(location):
        names = [os.path.join(location, n) for n in os.listdir(location)]
        paths = [p for p in names if os.path.splitext(p)[1].lower() in IMAGE_EXTENSIONS and os.path.isfile(p)]
        what = f"folder {location} (looked for {' '.join(IMAGE_EXTENSIONS)})"
    elif os.path.isfile(location):
        paths, what = [location], location
    else:
        paths = [p for p in glob.glob(location) if os.path.isfile(p)]
        what = f"glob {location!r}"
    if not paths:
        raise SourceError(f"no images found in {what}")
    return sorted(paths, key=natural_key)


def _opencv_reader() -> Callable[[str], Optional[np.ndarray]]:
    import cv2

    def read(path: str) -> Optional[np.ndarray]:
        # imdecode over a byte buffer: imread cannot open non-ASCII paths on every platform.
        data = np.fromfile(path, dtype=np.uint8)
        check_image_bytes(data, path)  # the header's size against the pixel limit, before decoding
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    return read


def _pil_reader() -> Callable[[str], Optional[np.ndarray]]:
    from PIL import Image

    def read(path: str) -> Optional[np.ndarray]:
        check_image_bytes(path, path)  # the header's size against the pixel limit, before decoding
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))

    return read


def image_reader(backend: str = "auto") -> Callable[[str], Optional[np.ndarray]]:
    """A function path -> RGB uint8 image (``None`` or an exception when unreadable)."""
    if backend not in ("auto", "opencv", "pil"):
        raise SourceError(f"image backend must be auto, opencv or pil, got {backend!r}")
    for name, factory in (("opencv", _opencv_reader), ("pil", _pil_reader)):
        if backend in ("auto", name):
            try:
                return factory()
            except ImportError:
                continue
    raise SourceError("reading images needs OpenCV or Pillow: pip install opencv-python-headless")


class ImageSource(Source):
    """Images of a folder or glob, in natural order. Options: ``realtime``, ``loop``, ``fps``
    (nominal rate, default 30), ``backend`` (auto|opencv|pil)."""

    is_live = False
    OPTIONS = {"realtime": bool, "loop": bool, "fps": float, "backend": str}

    def __init__(self, location: str, *, uri: Optional[str] = None, realtime: bool = False, loop: bool = False,
                 fps: Optional[float] = None, backend: str = "auto"):
        super().__init__(uri or location)
        self.location = os.fspath(location)
        self.realtime = realtime
        self.loop = loop
        self.fps = float(fps) if fps else 30.0
        if self.fps <= 0:
            raise SourceError(f"{self.uri}: fps must be > 0, got {fps}")
        self.backend = backend
        self.paths: List[str] = []
        self.skipped_paths: List[str] = []  # unreadable files (first pass)
        self._reader = None
        self._next = 0  # index into paths
        self._position = 0  # frames delivered incl. loops: the nominal clock
        self._skipped_since = 0  # unreadable images since the last delivered frame
        self._pacer = Pacer()

    def _open(self) -> None:
        self._reader = image_reader(self.backend)
        self.paths = list_images(self.location)

    def _read(self, timeout: Optional[float]) -> Optional[Frame]:
        while True:
            if self._next >= len(self.paths):
                if not self.loop or self.frames_delivered == 0 or self._closing.is_set():
                    if self.frames_delivered == 0:
                        self._finish(f"corrupt: none of the {len(self.paths)} images could be read")
                    return None
                self._next = 0
            path = self.paths[self._next]
            self._next += 1
            image = self._load(path)
            if image is None:
                self._skipped_since += 1  # reported on the next frame: a stream counts it as a drop
                continue
            sensor_ts = self._position / self.fps
            self._position += 1
            if self.realtime and self._pacer.wait(sensor_ts, self._wait):
                return None
            skipped, self._skipped_since = self._skipped_since, 0
            return Frame(image=image, index=-1, timestamp=time.monotonic(), sensor_ts=sensor_ts, dropped_before=skipped)

    def _load(self, path: str) -> Optional[np.ndarray]:
        try:
            image = self._reader(path)
            if image is not None:
                return as_rgb_frame(image)
            reason = "not a decodable image"
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a skipped file
            reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        self.frames_skipped += 1
        if path not in self.skipped_paths:
            self.skipped_paths.append(path)
        log.warning("skipping unreadable image %s (%s); %d skipped so far", path, reason, self.frames_skipped)
        return None

    def _close(self) -> None:
        self._reader = None
