"""Delivery, on the caller's thread (the one iterating): flow back to frame pixels, the sinks,
and every frame's record, in frame order.

It reads the inference thread's :class:`~edgeflow.stream.inference.Outcome` queue: a result
gets its flow mapped back to the frame (:meth:`Geometry.to_frame`), goes to every sink's
``on_result`` and then becomes a :class:`~edgeflow.stream.records.Result` for the caller's loop;
references and drops only get their record (:class:`~edgeflow.stream.records.Ledger`, the one
place records are built).
"""

from __future__ import annotations

import time
from time import perf_counter
from typing import Optional

from edgeflow.monitoring.latency import LatencyReport
from edgeflow.stream.handoff import END, Handoff
from edgeflow.stream.inference import Outcome, frame_of
from edgeflow.stream.records import DROPPED, REFERENCE, FrameRecord, Ledger, Result
from edgeflow.stream.report import error_line


class Delivery:
    """``sinks`` (already :func:`as_sink`), opened by :meth:`open` and closed by :meth:`close`;
    ``ledger`` writes each frame's record to them and counts it."""

    def __init__(self, sinks: list, recorder):
        self.sinks = sinks
        self._open: list = []
        self.ledger = Ledger(recorder, self._write)
        self.current: Optional[Outcome] = None  # the result the sinks are handling

    def open(self, info: dict) -> None:
        for sink in self.sinks:
            sink.open(info)
            self._open.append(sink)

    def _write(self, record: FrameRecord) -> None:
        for sink in self._open:
            sink.on_record(record)

    def receive(self, results: Handoff):
        """The next :class:`Result` off ``results``; ``None`` when nothing came within 0.1 s or the
        frame has no flow (a reference or a drop, recorded), :data:`~edgeflow.stream.handoff.END`
        once the inference side is done."""
        notices, out = results.get(timeout=0.1)
        for item, reason in notices:
            self.ledger.hold(frame_of(item), reason)
        if out is None or out is END:
            return out
        if out.kind == DROPPED:
            self.ledger.hold(out.frame, out.reason, out.stages)
            return None
        self.ledger.flush(below=out.frame.index)
        self.current = out
        result = self._deliver(out)
        self.current = None
        return result

    def _deliver(self, out: Outcome) -> Optional[Result]:
        frame, stages = out.frame, out.stages
        if out.kind == REFERENCE:
            self.ledger.reference(frame, out.reason, stages)
            return None
        t0 = perf_counter()
        flow = out.geometry.to_frame(out.raw)
        t1 = perf_counter()
        stages["postprocess"] = t1 - t0
        timings = {}
        result = Result(index=frame.index, frame=frame.image, flow=flow, timings=timings, dropped=out.gap,
                        prev_index=out.prev_index, source_frame=frame)
        for sink in self._open:
            sink.on_result(result)
        stages["sink"] = perf_counter() - t1
        done = time.monotonic()
        timings.update({k: v * 1e3 for k, v in stages.items()})
        timings["end_to_end"] = (done - frame.timestamp) * 1e3
        self.ledger.result(frame, stages, out.prev_index, done)
        return result

    def abandon_current(self, reason: str) -> None:
        """A sink raised (or Ctrl-C hit) while handling :attr:`current`: it is recorded as a drop."""
        if self.current is not None:
            out, self.current = self.current, None
            self.ledger.hold(out.frame, reason, out.stages)

    def close(self, report: Optional[LatencyReport]) -> list:
        """Close every open sink (each one, whatever the others do); one line per sink that failed."""
        problems = []
        for sink in self._open:
            try:
                sink.close(report)
            except Exception as err:
                problems.append(f"{getattr(sink, 'name', type(sink).__name__)}: {error_line(err)}")
        self._open = []
        return problems
