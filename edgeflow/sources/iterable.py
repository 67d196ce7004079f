"""Frames you already have (your own camera library, a list in memory) as a :class:`Source`.

    stream = edgeflow.Stream(model, IterableSource(my_camera_frames(), live=True))

Each image is stamped with ``time.monotonic()`` when the pipeline pulls it, exactly as the
built-in sources stamp capture/decode time, so latency accounting is the same. Yield
:class:`~edgeflow.sources.Frame` objects with ``timestamp`` set (``time.monotonic()`` at capture)
to have end-to-end latency start at your own capture time instead.

Items are passed on as they come: one that is not an HxWx3 uint8 image (a ``None`` from a
flaky camera library, a float array) becomes a dropped frame (``invalid_frame``) in a stream,
counted in the report, instead of ending it.
"""

from __future__ import annotations

import time
from typing import Iterable, Optional

import numpy as np

from edgeflow.errors import SourceError
from edgeflow.sources.base import Frame, Source, as_rgb_frame


class IterableSource(Source):
    """``images``: an iterable of HxWx3 uint8 RGB arrays (or :class:`Frame` objects).

    ``live=True`` makes the stream treat it like a camera (``newest`` drop policy by default);
    ``fps`` with ``realtime=True`` paces delivery at that rate, like a file played at native speed.
    """

    def __init__(self, images: Iterable, *, live: bool = False, fps: Optional[float] = None, realtime: bool = False,
                 uri: str = "iterable://"):
        super().__init__(uri)
        self.is_live = bool(live)
        self.fps = fps
        self._images = images
        self._iter = None
        self._realtime = bool(realtime and fps)
        self._next_due: Optional[float] = None

    def _open(self) -> None:
        self._iter = iter(self._images)

    def _read(self, timeout: Optional[float]) -> Optional[Frame]:
        if self._realtime:
            now = time.monotonic()
            if self._next_due is None:
                self._next_due = now
            if self._next_due > now and self._wait(self._next_due - now):
                return None
            self._next_due += 1.0 / self.fps
        try:
            item = next(self._iter)
        except StopIteration:
            return None
        if isinstance(item, Frame):
            if not item.timestamp:  # keep a capture time the caller stamped (time.monotonic())
                item.timestamp = time.monotonic()
            return item
        return Frame(image=_image(item), index=0, timestamp=time.monotonic())

    def _close(self) -> None:
        close = getattr(self._iter, "close", None)
        if callable(close):  # a generator: run its finally blocks now
            try:
                close()
            except Exception:
                pass
        self._iter = None


def _image(item):
    """Greyscale/RGBA normalised to RGB; anything unusable passed on for the stream to drop."""
    if not isinstance(item, np.ndarray):
        try:
            item = np.asarray(item)
        except Exception:  # noqa: BLE001 - not array-like: the stream records it as invalid
            return item
    try:
        return as_rgb_frame(item)
    except SourceError:
        return item
