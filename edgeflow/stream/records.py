"""What the pipeline hands out: a :class:`Result` per flow and a :class:`FrameRecord` per frame.

Every frame the source delivers gets exactly one record, so nothing can go missing silently:

* ``result``: a flow was computed for the pair (``prev_index``, ``index``);
* ``reference``: the frame starts a pair chain (the first frame, or the first after a size
  change); it has no flow of its own but its tensor/features are kept for the next pair;
* ``dropped``: the frame was discarded, ``reason`` says why (``queue_full``: the hand-off was full
  under the ``newest`` policy; ``stopped``: still queued when the stream was stopped;
  ``invalid_frame``: not HxWx3 uint8).

Frames the source itself discarded never reach the pipeline (a live source overwrote them before
anyone read them; a damaged file could not decode them); they are counted in the next record's
``dropped_before`` and in the report under the drop reason ``source``.

:class:`Ledger` is the one place a record is built, counted and written: the delivery side hands
it results, references and drops (in any order), and it writes them to the sinks in frame order.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from edgeflow.monitoring.latency import STAGES, LatencyRecorder  # noqa: F401  (stage names, in pipeline order)

RESULT, REFERENCE, DROPPED = "result", "reference", "dropped"


@dataclass
class FrameRecord:
    index: int
    status: str
    reason: Optional[str] = None
    prev_index: Optional[int] = None
    dropped_before: int = 0
    capture_ts: Optional[float] = None  # Frame.timestamp (time.monotonic())
    sensor_ts: Optional[float] = None
    result_ts: Optional[float] = None  # time.monotonic() when the result was handed over
    stages: dict = field(default_factory=dict)  # stage -> seconds
    end_to_end: Optional[float] = None  # seconds, capture -> result

    def to_dict(self) -> dict:
        """JSON-friendly: times in milliseconds, timestamps in seconds (monotonic clock)."""
        d = {"index": self.index, "status": self.status}
        if self.reason is not None:
            d["reason"] = self.reason
        if self.prev_index is not None:
            d["prev_index"] = self.prev_index
        d["dropped_before"] = self.dropped_before
        d["capture_ts"] = self.capture_ts
        if self.sensor_ts is not None:
            d["sensor_ts"] = self.sensor_ts
        if self.result_ts is not None:
            d["result_ts"] = self.result_ts
        if self.end_to_end is not None:
            d["end_to_end_ms"] = round(self.end_to_end * 1e3, 4)
        for k, v in self.stages.items():
            d[f"{k}_ms"] = round(v * 1e3, 4)
        return d


@dataclass
class Result:
    """One flow: ``flow`` (HxWx2 float32) from frame ``prev_index`` to frame ``index``.

    ``frame`` is frame ``index`` (HxWx3 uint8 RGB), ``source_frame`` the source's full
    :class:`~edgeflow.sources.Frame` (timestamps, ``extras`` such as synthetic ground truth).
    ``timings`` maps stage -> milliseconds plus ``end_to_end``; ``dropped`` counts the frames
    discarded between ``prev_index`` and ``index`` (by the source or the hand-off queue).
    """

    index: int
    frame: np.ndarray
    flow: np.ndarray
    timings: dict
    dropped: int
    prev_index: int
    source_frame: object = None

    @property
    def latency_ms(self) -> float:
        return self.timings.get("end_to_end", float("nan"))


class Ledger:
    """Every frame's one record: built, counted (``recorder``) and handed to ``write`` here only.

    Results and references are written as they come (the delivery side takes them in frame
    order); a drop may be learnt of before an earlier frame has its record (a queue evicted it, a
    thread noted it), so it waits in :meth:`hold` until :meth:`flush` lets every record below a
    frame index out, which keeps the records in frame order whatever the threads did.
    """

    def __init__(self, recorder: LatencyRecorder, write: Callable[[FrameRecord], None]):
        self.recorder = recorder
        self._write = write
        self._pending: list = []  # heap of (index, seq, frame, reason, stages)
        self._seq = itertools.count()

    def hold(self, frame, reason: str, stages: Optional[dict] = None) -> None:
        """A dropped frame, written once every earlier frame has its record."""
        heapq.heappush(self._pending, (frame.index, next(self._seq), frame, reason, stages))

    def flush(self, below: Optional[int] = None) -> None:
        """Write the held drops of frames before ``below`` (all of them without it)."""
        while self._pending and (below is None or self._pending[0][0] < below):
            _, _, frame, reason, stages = heapq.heappop(self._pending)
            self._commit(frame, DROPPED, reason, stages)

    def reference(self, frame, reason: str, stages: dict) -> FrameRecord:
        """A frame that starts a pair chain (``first_frame``, ``size_changed``)."""
        return self._commit(frame, REFERENCE, reason, stages, result_ts=time.monotonic())

    def result(self, frame, stages: dict, prev_index: Optional[int], done: float) -> FrameRecord:
        """A frame with a flow, handed over at ``done`` (``time.monotonic()``)."""
        return self._commit(frame, RESULT, None, stages, prev_index=prev_index, result_ts=done,
                            end_to_end=done - frame.timestamp)

    def _commit(self, frame, status: str, reason: Optional[str], stages: Optional[dict], **fields) -> FrameRecord:
        record = FrameRecord(index=frame.index, status=status, reason=reason, capture_ts=frame.timestamp,
                             sensor_ts=frame.sensor_ts, dropped_before=int(frame.dropped_before or 0),
                             stages=dict(stages or {}), **fields)
        if record.dropped_before:
            self.recorder.add_drop("source", record.dropped_before)
        self.recorder.add_frame(status, reason if status == DROPPED else None)
        if status == RESULT:
            self.recorder.add_result(record.stages, record.end_to_end, record.result_ts)
        self._write(record)
        return record
