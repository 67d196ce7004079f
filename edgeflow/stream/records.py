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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

RESULT, REFERENCE, DROPPED = "result", "reference", "dropped"

from edgeflow.metrics import STAGES  # noqa: F401  (stage names, in pipeline order)


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
