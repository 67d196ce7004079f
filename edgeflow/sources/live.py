"""Shared machinery of live sources: the device seam and reconnection, nothing else.

A live source has no thread of its own: ``read()`` blocks on the device in the caller's thread.
In a :class:`~edgeflow.stream.Stream` that caller is the stream's one capture thread, which reads
as fast as the camera delivers and hands frames over through the one bounded hand-off that
decides which frames are dropped (``newest``: the oldest waiting frame goes). One thread and
one drop point, so every dropped frame is counted once, with one reason.

Why reconnect here: cables get pulled and RTSP servers restart. Every camera module is only a
thin seam over its library (``_device_open``, ``_device_read``, ``_device_close``, ``_to_rgb``);
this module owns the policy: after a failed read the handle is closed and re-opened with
exponential back-off (``backoff_initial`` doubling up to ``backoff_max`` seconds), at most
``max_retries`` attempts in a row (negative = forever); when they are used up the stream ends
with ``end_reason == "disconnected"``. A good frame resets the count. The first open happens in
``open()``, so a missing device is an immediate :class:`SourceError`, not a silent retry loop.

A frame the library hands over but that cannot be converted to RGB is delivered with
``image=None`` (``extras["invalid"]`` says why): the stream records it as a dropped frame
(``invalid_frame``) instead of ending, like a glitch on a real camera.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import abstractmethod
from typing import Any, Optional, Tuple

import numpy as np

from edgeflow.errors import SourceError, SourceTimeout
from edgeflow.sources.base import Frame, Source, as_rgb_frame

log = logging.getLogger("edgeflow.sources")

#: _device_read(handle) -> (raw image, sensor time in seconds or None), or None / raise = lost.
ReadResult = Optional[Tuple[Any, Optional[float]]]


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:200]


class LiveSource(Source):
    """Base of camera/stream sources: subclasses only implement the device seam
    (``_device_open``, ``_device_read``, ``_device_close``, optionally ``_to_rgb``).

    Counters: ``disconnects``, ``reconnects``; ``last_error`` is the latest failure as one line.
    ``read(timeout)`` honours ``timeout`` while waiting to reconnect; a read inside the device
    library blocks until the library returns (``close()`` from another thread releases the device
    as soon as that read comes back).
    """

    is_live = True
    #: Options every live source accepts (subclasses merge their own).
    LIVE_OPTIONS = {"backoff_initial": float, "backoff_max": float, "max_retries": int}

    def __init__(self, uri: str, *, backoff_initial: float = 0.1, backoff_max: float = 5.0, max_retries: int = 10):
        super().__init__(uri)
        if backoff_initial <= 0 or backoff_max < backoff_initial:
            raise SourceError(f"need 0 < backoff_initial <= backoff_max, got {backoff_initial} and {backoff_max}")
        self.backoff_initial, self.backoff_max = float(backoff_initial), float(backoff_max)
        self.max_retries = int(max_retries)
        self.disconnects = 0
        self.reconnects = 0
        self.last_error: Optional[str] = None
        self._handle: Any = None
        self._attempts = 0
        self._delay = self.backoff_initial
        self._next_attempt = 0.0
        self._device_lock = threading.Lock()
        self._reading = False

    # ------------------------------------------------------------------ Source
    def _open(self) -> None:
        try:
            self._handle = self._device_open()
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - device libraries raise anything
            raise SourceError(f"cannot open {self.uri}: {_one_line(exc)}") from None

    def _read(self, timeout: Optional[float]) -> Optional[Frame]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closing.is_set():
            if self._handle is None and not self._reconnect(deadline, timeout):
                return None
            if self._handle is None:
                continue
            with self._device_lock:
                if self._closing.is_set():
                    return None
                self._reading, handle = True, self._handle
            try:
                result = self._device_read(handle)
            except Exception as exc:  # noqa: BLE001 - a failed read is a lost device
                self.last_error, result = _one_line(exc), None
            finally:
                with self._device_lock:
                    self._reading = False
                    closing = self._closing.is_set()
            if closing:  # closed under the read: the release was left to this thread
                self._release()
                return None
            if result is None:
                self._lost()
                continue
            self._attempts, self._delay = 0, self.backoff_initial
            return self._frame(*result)
        return None

    def _close(self) -> None:
        with self._device_lock:
            if self._reading:
                return  # the reading thread releases the device when its read returns
        self._release()

    # ---------------------------------------------------------------- helpers
    def _frame(self, raw: Any, sensor_ts: Optional[float]) -> Frame:
        timestamp = time.monotonic()
        extras = {}
        try:
            image = as_rgb_frame(np.asarray(self._to_rgb(raw)))
        except Exception as exc:  # noqa: BLE001 - one bad frame is a drop, not the end
            image, extras["invalid"] = None, _one_line(exc)
        return Frame(image=image, index=-1, timestamp=timestamp, sensor_ts=sensor_ts, extras=extras)

    def _lost(self) -> None:
        if self._attempts == 0:
            self.disconnects += 1
            log.warning("%s: device lost (%s); reconnecting", self.uri, self.last_error or "no frame")
        self._release()
        self._delay = self.backoff_initial
        self._next_attempt = time.monotonic() + self._delay

    def _reconnect(self, deadline: Optional[float], timeout: Optional[float]) -> bool:
        """One reconnect attempt when it is due; False when the source is finished."""
        if 0 <= self.max_retries <= self._attempts:
            self._finish("disconnected")
            return False
        now = time.monotonic()
        if deadline is not None and deadline < self._next_attempt:
            if self._wait(deadline - now):
                return False
            raise SourceTimeout(f"{self.uri}: no frame within {timeout:g} s (reconnecting)")
        if self._wait(self._next_attempt - now):
            return False
        self._attempts += 1
        try:
            handle = self._device_open()
        except Exception as exc:  # noqa: BLE001 - any failure is a retry
            self.last_error = _one_line(exc)
            log.info("%s: reconnect attempt %d failed: %s", self.uri, self._attempts, self.last_error)
            self._delay = min(self._delay * 2.0, self.backoff_max)
            self._next_attempt = time.monotonic() + self._delay
            return True
        with self._device_lock:
            self._handle = handle
        self.reconnects += 1
        return True

    def _release(self) -> None:
        with self._device_lock:
            handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            self._device_close(handle)
        except Exception as exc:  # noqa: BLE001 - a failing release must not mask the real error
            log.debug("%s: release failed: %s", self.uri, _one_line(exc))

    # ------------------------------------------------------------- device seam
    @abstractmethod
    def _device_open(self) -> Any:
        """Open the device; raise (anything) when it is not there."""

    @abstractmethod
    def _device_read(self, handle: Any) -> ReadResult:
        """Block for the next frame: ``(raw, sensor_ts seconds | None)``, or None/raise when lost."""

    def _device_close(self, handle: Any) -> None:
        """Release the device handle."""

    def _to_rgb(self, raw: Any) -> np.ndarray:
        """Convert a delivered frame to RGB (runs in the reading thread)."""
        return raw
