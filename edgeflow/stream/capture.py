"""The capture thread: reads the source as fast as it delivers and feeds the hand-off queue.

It never calls sinks or touches the model: anything it has to report (frames it could not hand
over, why it stopped) goes into thread-safe fields the consumer reads, so all records are
written from one thread, in order.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Optional

from edgeflow.errors import SourceError, SourceTimeout
from edgeflow.stream.handoff import Handoff

#: How long one ``source.read`` may block before the thread re-checks ``stop`` (live sources).
READ_TIMEOUT_S = 0.25


class Captured:
    """A frame plus when it entered the hand-off queue."""

    __slots__ = ("frame", "queued_at")

    def __init__(self, frame, queued_at: float):
        self.frame = frame
        self.queued_at = queued_at


class CaptureThread(threading.Thread):
    def __init__(self, source, handoff: Handoff, stop: threading.Event, *, max_frames: Optional[int] = None,
                 deadline: Optional[float] = None):
        super().__init__(name="edgeflow-capture", daemon=True)
        self.source = source
        self.handoff = handoff
        self.stop_event = stop
        self.max_frames = max_frames
        self.deadline = deadline
        self.rejected: deque = deque()  # (frame, reason) the consumer turns into drop records
        self.read = 0
        self.end_reason: Optional[str] = None
        self.error: Optional[str] = None

    def run(self) -> None:
        try:
            self._loop()
        except SourceError as err:
            self.end_reason, self.error = "source_error", str(err)
        except BaseException as err:  # noqa: BLE001 - reported, never swallowed silently
            self.end_reason, self.error = "capture_error", f"{type(err).__name__}: {err}"
        finally:
            self.handoff.close()

    def _loop(self) -> None:
        while True:
            if self.stop_event.is_set():
                self.end_reason = "stopped"
                return
            if self.max_frames is not None and self.read >= self.max_frames:
                self.end_reason = "frame_limit"
                return
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self.end_reason = "duration"
                return
            try:
                frame = self.source.read(timeout=READ_TIMEOUT_S)
            except SourceTimeout:
                continue
            if frame is None:
                reason = getattr(self.source, "end_reason", None) or "eof"
                self.end_reason = "eof" if reason == "eof" else reason
                return
            self.read += 1
            item = Captured(frame, time.monotonic())
            for lost in self.handoff.put(item, self.stop_event):
                self.rejected.append((lost.frame, "stopped" if lost is item else "queue_full"))
