"""Shared machinery of live sources: a capture thread, a one-slot mailbox, reconnection.

Why one slot: a camera produces frames whether or not anyone is ready. A queue in between only
adds latency (the reader gets a frame that is already N frames old), so the capture thread
overwrites the slot and counts every overwritten frame; the reader always gets the newest one,
with ``dropped_before`` saying how many it never saw.

Why reconnect here: cables get pulled and RTSP servers restart. Every camera module is only a
thin seam over its library (``open_fn``, ``read_fn``, ``close_fn``); this module owns the
policy: after a failed read the handle is closed and re-opened with exponential back-off
(``backoff_initial`` doubling up to ``backoff_max`` seconds), at most ``max_retries`` attempts
in a row (negative = forever); when they are used up the stream ends with ``end_reason ==
"disconnected"``. A good frame resets the count. The first open happens in the caller's thread,
so a missing device is an immediate :class:`SourceError`, not a silent retry loop.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import abstractmethod
from typing import Any, Callable, NamedTuple, Optional, Tuple

import numpy as np

from edgeflow.errors import SourceError, SourceTimeout
from edgeflow.sources.base import Frame, Source, as_rgb_frame

log = logging.getLogger("edgeflow.sources")

#: read_fn(handle) -> (raw image, sensor time in seconds or None), or None / raise = lost.
ReadResult = Optional[Tuple[Any, Optional[float]]]


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:200]


class Captured(NamedTuple):
    raw: Any  # whatever read_fn returned; converted to RGB by the reader, so drops cost nothing
    timestamp: float  # time.monotonic() right after read_fn returned
    sensor_ts: Optional[float]
    dropped_before: int


class LatestFrameGrabber:
    """Capture thread keeping only the newest frame, with reconnect and back-off.

    ``open_fn() -> handle`` and ``read_fn(handle) -> (raw, sensor_ts) | None`` may raise
    anything; ``close_fn(handle)`` is optional. Counters: ``frames_captured``,
    ``frames_dropped``, ``disconnects``, ``reconnects``; ``last_error`` is the latest failure
    as one line; ``end_reason`` is ``"disconnected"`` once the retries are used up.
    """

    def __init__(
        self,
        open_fn: Callable[[], Any],
        read_fn: Callable[[Any], ReadResult],
        close_fn: Optional[Callable[[Any], None]] = None,
        *,
        name: str = "edgeflow-capture",
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        max_retries: int = 10,
        join_timeout: float = 5.0,
    ):
        if backoff_initial <= 0 or backoff_max < backoff_initial:
            raise SourceError(f"need 0 < backoff_initial <= backoff_max, got {backoff_initial} and {backoff_max}")
        self._open_fn, self._read_fn, self._close_fn = open_fn, read_fn, close_fn
        self.name = name
        self.backoff_initial, self.backoff_max = float(backoff_initial), float(backoff_max)
        self.max_retries = int(max_retries)
        self.join_timeout = join_timeout
        self.frames_captured = 0
        self.frames_dropped = 0
        self.disconnects = 0
        self.reconnects = 0
        self.last_error: Optional[str] = None
        self.end_reason: Optional[str] = None
        self._cond = threading.Condition()
        self._slot: Optional[Tuple[Any, float, Optional[float]]] = None
        self._pending_drops = 0
        self._closing = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._handle: Any = None

    # ----------------------------------------------------------------- caller side
    def start(self) -> "LatestFrameGrabber":
        """Open the device in this thread (exceptions propagate) and start capturing."""
        self._handle = self._open_fn()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def get(self, timeout: Optional[float] = None) -> Optional[Captured]:
        """The newest frame not yet returned; ``None`` once ended or closed; SourceTimeout when
        ``timeout`` seconds pass without a frame. A final frame is still returned after the end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._slot is None and self.end_reason is None and not self._closing.is_set():
                if deadline is None:
                    self._cond.wait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise SourceTimeout(f"{self.name}: no frame within {timeout:g} s")
                    self._cond.wait(remaining)
            if self._slot is None:
                return None
            raw, timestamp, sensor_ts = self._slot
            dropped, self._slot, self._pending_drops = self._pending_drops, None, 0
        return Captured(raw, timestamp, sensor_ts, dropped)

    def close(self) -> None:
        """Stop the thread (waits up to ``join_timeout``; a read stuck in a driver is left to its
        daemon thread with a warning) and release the device."""
        self._closing.set()
        with self._cond:
            self._cond.notify_all()
        thread = self._thread
        if thread is None:
            handle, self._handle = self._handle, None
            self._release(handle)
            return
        if thread is not threading.current_thread():
            thread.join(self.join_timeout)
            if thread.is_alive():
                log.warning("%s: capture thread still blocked in the driver after %.1f s", self.name, self.join_timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------ capture thread
    def _run(self) -> None:
        handle, self._handle = self._handle, None
        attempts, delay = 0, self.backoff_initial
        try:
            while not self._closing.is_set():
                if handle is None:
                    if 0 <= self.max_retries <= attempts:
                        self._end("disconnected")
                        return
                    if self._closing.wait(delay):
                        return
                    delay = min(delay * 2.0, self.backoff_max)
                    attempts += 1
                    try:
                        handle = self._open_fn()
                    except Exception as exc:  # noqa: BLE001 - any failure is a retry
                        self.last_error = _one_line(exc)
                        log.info("%s: reconnect attempt %d failed: %s", self.name, attempts, self.last_error)
                        continue
                    self.reconnects += 1
                try:
                    result = self._read_fn(handle)
                except Exception as exc:  # noqa: BLE001
                    self.last_error, result = _one_line(exc), None
                if result is None:
                    if attempts == 0:
                        self.disconnects += 1
                        log.warning("%s: device lost (%s); reconnecting", self.name, self.last_error or "no frame")
                    self._release(handle)
                    handle = None
                    continue
                attempts, delay = 0, self.backoff_initial
                self._publish(result, time.monotonic())
        finally:
            self._release(handle)
            with self._cond:
                self._cond.notify_all()

    def _publish(self, result: Tuple[Any, Optional[float]], timestamp: float) -> None:
        raw, sensor_ts = result
        with self._cond:
            if self._slot is not None:
                self._pending_drops += 1
                self.frames_dropped += 1
            self._slot = (raw, timestamp, sensor_ts)
            self.frames_captured += 1
            self._cond.notify_all()

    def _end(self, reason: str) -> None:
        with self._cond:
            self.end_reason = reason
            self._cond.notify_all()

    def _release(self, handle: Any) -> None:
        if handle is None or self._close_fn is None:
            return
        try:
            self._close_fn(handle)
        except Exception as exc:  # noqa: BLE001 - a failing release must not mask the real error
            log.debug("%s: release failed: %s", self.name, _one_line(exc))


class LiveSource(Source):
    """Base of camera/stream sources: subclasses only implement the device seam
    (``_device_open``, ``_device_read``, ``_device_close``, optionally ``_to_rgb``)."""

    is_live = True
    #: Options every live source accepts (subclasses merge their own).
    LIVE_OPTIONS = {"backoff_initial": float, "backoff_max": float, "max_retries": int}

    def __init__(self, uri: str, *, backoff_initial: float = 0.1, backoff_max: float = 5.0, max_retries: int = 10):
        super().__init__(uri)
        self._grabber = LatestFrameGrabber(
            self._device_open,
            self._device_read,
            self._device_close,
            name=f"edgeflow-capture[{uri}]",
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            max_retries=max_retries,
        )

    @property
    def grabber(self) -> LatestFrameGrabber:
        return self._grabber

    def _open(self) -> None:
        try:
            self._grabber.start()
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - device libraries raise anything
            raise SourceError(f"cannot open {self.uri}: {_one_line(exc)}") from None

    def _read(self, timeout: Optional[float]) -> Optional[Frame]:
        try:
            captured = self._grabber.get(timeout)
        except SourceTimeout:
            raise SourceTimeout(f"{self.uri}: no frame within {timeout:g} s") from None
        finally:
            self.frames_dropped = self._grabber.frames_dropped
        if captured is None:
            if self._grabber.end_reason:
                self._finish(self._grabber.end_reason)
            return None
        return Frame(
            image=as_rgb_frame(self._to_rgb(captured.raw)),
            index=-1,
            timestamp=captured.timestamp,
            sensor_ts=captured.sensor_ts,
            dropped_before=captured.dropped_before,
        )

    def _close(self) -> None:
        self._grabber.close()
        self.frames_dropped = self._grabber.frames_dropped

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
        """Convert a delivered frame to RGB (runs in the reader's thread, only for delivered frames)."""
        return raw
