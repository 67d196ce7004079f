"""The stream's one capture thread: read, check and prepare each frame, then hand it over.

Everything a frame needs before the model runs happens here, off the inference thread's critical
path: the source's own decoding and colour conversion (inside ``source.read``), the frame check,
and the network tensor (pad or resize, HWC uint8 -> NCHW float32) written into a buffer reused
from frame to frame. The inference thread then only runs the model.

It never calls sinks: frames it cannot use (invalid, or dropped by the hand-off's policy) are
noted in the hand-off and written as records by the delivery side, in frame order.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from time import perf_counter
from typing import Callable, Optional

import numpy as np

from edgeflow.errors import SourceError, SourceTimeout
from edgeflow.preprocess import frame_problem
from edgeflow.stream.handoff import Handoff

#: How long one ``source.read`` may block before the thread re-checks ``stop``.
READ_TIMEOUT_S = 0.25


class Prepared:
    """A frame with its network tensor, ready for the model."""

    __slots__ = ("frame", "tensor", "geometry", "preprocess_s")

    def __init__(self, frame, tensor, geometry, preprocess_s: float):
        self.frame, self.tensor, self.geometry, self.preprocess_s = frame, tensor, geometry, preprocess_s


class BufferPool:
    """Network-input buffers reused from frame to frame (no 1 MB allocation per frame).

    The inference side gives a buffer back once no pair needs it any more; buffers of another
    shape (the frame size changed) are let go. Never blocks: an empty pool allocates.
    """

    def __init__(self, keep: int = 8):
        self.keep = keep
        self._free: deque = deque()
        self.allocated = 0

    def take(self, shape: tuple) -> np.ndarray:
        while self._free:
            buf = self._free.pop()
            if buf.shape == shape:
                return buf
        self.allocated += 1
        return np.empty(shape, np.float32)

    def give(self, buf) -> None:
        if isinstance(buf, np.ndarray) and len(self._free) < self.keep:
            self._free.append(buf)


def network_input(model, pool: BufferPool) -> Callable:
    """``prepare(image) -> (tensor, geometry)`` for :class:`CaptureThread`: the model's geometry
    for the frame (its public :meth:`~edgeflow.model.FlowModel.geometry`) writes the network
    tensor into a pooled buffer."""

    def prepare(image):
        geometry = model.geometry(image)
        return geometry.to_network(image, out=pool.take((1, 3) + tuple(geometry.net_hw))), geometry

    return prepare


class CaptureThread(threading.Thread):
    """``prepare(image) -> (tensor, geometry)`` builds the network input (:func:`network_input`)."""

    def __init__(self, source, handoff: Handoff, stop: threading.Event, prepare: Callable, *,
                 max_frames: Optional[int] = None, deadline: Optional[float] = None):
        super().__init__(name="edgeflow-capture", daemon=True)
        self.source = source
        self.handoff = handoff
        self.stop_event = stop
        self.prepare = prepare
        self.max_frames = max_frames
        self.deadline = deadline
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
            if frame_problem(frame.image) is not None:  # the runtime's one frame rule
                self.handoff.note(frame, "invalid_frame")
                continue
            t0 = perf_counter()
            tensor, geometry = self.prepare(frame.image)
            item = Prepared(frame, tensor, geometry, perf_counter() - t0)
            if not self.handoff.put(item, self.stop_event):
                self.handoff.note(item, "stopped")
