"""The frame-source contract every camera, file and generator implements.

The pipeline only ever sees :class:`Source` and :class:`Frame`: it calls ``read()`` until
``None`` and never needs to know whether frames come from a Pi camera or an ``.mp4``. The
bookkeeping every source needs (open/close state, frame indices, the end reason, counters,
waking a blocked reader from another thread) lives here once, so each concrete source only
writes ``_open`` / ``_read`` / ``_close`` over its own library.

Timestamps: ``Frame.timestamp`` is ``time.monotonic()`` on this host when the frame was captured
(live) or decoded (files), so capture-to-result latency is one subtraction on one clock.
``Frame.sensor_ts`` is the source's own clock (sensor time for cameras, PTS seconds for files)
and is only comparable with other frames of the same source.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np

from edgeflow.errors import SourceError, SourceTimeout
from edgeflow.preprocess import frame_problem

__all__ = ["Frame", "Source", "SourceError", "SourceTimeout"]


@dataclass
class Frame:
    """One frame as delivered by a :class:`Source`.

    ``image``: ``HxWx3`` uint8 RGB, C-contiguous. ``index``: 0-based count of frames this source
    has delivered (gaps are visible in ``dropped_before``, not in ``index``). ``timestamp``:
    ``time.monotonic()`` seconds at capture/decode on this host. ``sensor_ts``: the source's own
    time in seconds (sensor clock, file PTS) or ``None``. ``dropped_before``: frames the source
    discarded since the previous delivered frame (a damaged file's lost frames, a source's own skips).
    ``extras``: per-source data, e.g. ``extras["flow"]`` = exact ``HxWx2`` ground truth from
    the previous frame to this one for ``synthetic://`` (absent on the first frame).
    """

    image: np.ndarray
    index: int
    timestamp: float
    sensor_ts: Optional[float] = None
    dropped_before: int = 0
    extras: dict = field(default_factory=dict)


class Source(ABC):
    """A stream of :class:`Frame` objects chosen by URI (see :func:`edgeflow.sources.open_source`).

    Life cycle: ``open()`` (idempotent; ``read()`` and ``with`` open implicitly) -> ``read()``
    until it returns ``None`` -> ``close()`` (idempotent, safe from another thread: a blocked
    ``read()`` then returns ``None``). After the end, ``end_reason`` says why: ``"eof"``,
    ``"corrupt: <detail>"``, ``"disconnected"``, ``"closed"``, ``"frame limit"``.

    ``read(timeout)``: ``None`` waits as long as needed; a number of seconds raises
    :class:`SourceTimeout` when no frame arrived in time (the source stays usable). Files decode
    on demand and only honour ``timeout`` loosely (decoding one frame is not interrupted).

    Counters: ``frames_delivered``, ``frames_dropped`` (overwritten by a newer frame before
    anyone read them), ``frames_skipped`` (unreadable inputs passed over, e.g. a broken image).
    ``fps``: the nominal rate when the source knows it, else ``None``.
    """

    #: True for cameras and network streams (the stream then drops the oldest waiting frame, `newest`).
    is_live: bool = False

    def __init__(self, uri: str):
        self.uri = uri
        self.end_reason: Optional[str] = None
        self.frames_delivered = 0
        self.frames_dropped = 0
        self.frames_skipped = 0
        self.fps: Optional[float] = None
        self._state = "new"  # new -> open -> ended/closed
        self._lock = threading.Lock()
        # Set by close(); implementations wait on it instead of sleeping so close() wakes them.
        self._closing = threading.Event()

    # ----------------------------------------------------------------- public API
    def open(self) -> "Source":
        with self._lock:
            if self._state == "closed":
                raise SourceError(f"{self.uri}: source is closed; create a new one with open_source()")
            if self._state != "new":
                return self
            self._open()
            self._state = "open"
        return self

    def read(self, timeout: Optional[float] = None) -> Optional[Frame]:
        """The next frame, or ``None`` at the end of the stream (see ``end_reason``)."""
        if self._state == "new":
            self.open()
        if self._state != "open" or self._closing.is_set():
            self._finish("closed")
            return None
        frame = self._read(timeout)
        if frame is None:
            self._finish("closed" if self._closing.is_set() else "eof")
            if self._state == "open":
                self._state = "ended"
            return None
        frame.index = self.frames_delivered
        self.frames_delivered += 1
        return frame

    def close(self) -> None:
        """Release the device/file and stop threads; wakes a ``read()`` blocked in another thread."""
        self._closing.set()
        with self._lock:
            if self._state == "closed":
                return
            was_open = self._state in ("open", "ended")
            self._state = "closed"
        self._finish("closed")
        if was_open:
            self._close()

    @property
    def closed(self) -> bool:
        return self._state == "closed"

    def __enter__(self) -> "Source":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r}, state={self._state}, delivered={self.frames_delivered})"

    # ----------------------------------------------------------- for subclasses
    def _finish(self, reason: str) -> None:
        """Record why the stream ended; the first reason wins (a corrupt file stays corrupt)."""
        if self.end_reason is None:
            self.end_reason = reason

    def _wait(self, seconds: float) -> bool:
        """Sleep that ``close()`` interrupts; True when interrupted."""
        return self._closing.wait(max(0.0, seconds))

    @abstractmethod
    def _open(self) -> None:
        """Acquire the file/device; raise :class:`SourceError` with one actionable line."""

    @abstractmethod
    def _read(self, timeout: Optional[float]) -> Optional[Frame]:
        """Next frame (``index`` is filled in by :meth:`read`), or ``None`` at the end after
        calling ``self._finish(reason)`` when the reason is not plain ``"eof"``."""

    @abstractmethod
    def _close(self) -> None:
        """Release everything ``_open`` acquired and join threads. Called at most once."""


def as_rgb_frame(image: np.ndarray) -> np.ndarray:
    """Normalise a decoded image to ``HxWx3`` uint8 C-contiguous (grey and RGBA made RGB), checked
    by the runtime's one frame rule (:func:`edgeflow.preprocess.frame_problem`; the size limit is
    the stream's to apply: a tiny frame is a dropped frame, not a broken source)."""
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    problem = frame_problem(image, "decoded frame", min_side=0)
    if problem is not None:
        raise SourceError(problem)
    return np.ascontiguousarray(image)
