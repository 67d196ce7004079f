"""The stream's two threads and the two bounded queues around them, started and stopped together.

::

    capture thread ──hand-off (queue_full)──> inference thread ──results (sink_full)──> delivery

The pipeline owns what lives between the source and the caller's thread: the buffer pool the
capture thread writes network tensors into, the pair logic, and the two queues with one drop
policy. :meth:`join` stops it on every ending (a source blocked in ``read`` is closed under its
thread to wake it); :meth:`leftovers` gives every frame still inside a drop record.
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

from edgeflow.stream.capture import BufferPool, CaptureThread, network_input
from edgeflow.stream.handoff import Handoff
from edgeflow.stream.inference import InferenceThread, Outcome, PairRunner, demote, frame_of, is_result
from edgeflow.stream.records import DROPPED, Ledger

#: How long join() waits for the capture thread before closing the source under it.
JOIN_TIMEOUT_S = 2.0
#: How long join() waits for the inference thread to finish the run in progress.
INFER_JOIN_TIMEOUT_S = 60.0


class Pipeline:
    """Capture -> hand-off -> inference -> ``results`` for one model and one source.

    ``policy`` (``newest`` or ``block``) applies to both queues; ``max_frames`` / ``deadline``
    (``time.monotonic()``) end the capture; ``on_error`` hears of an inference exception at once.
    """

    def __init__(self, model, source, *, policy: str, queue_size: int, sink_queue_size: int, cache_features: bool,
                 pool: BufferPool, stop: threading.Event, on_error: Callable[[BaseException], None],
                 max_frames: Optional[int] = None, deadline: Optional[float] = None):
        self.source = source
        self.handoff = Handoff(queue_size, policy, "queue_full")
        self.results = Handoff(sink_queue_size, policy, "sink_full", counts=is_result, demote=demote)
        self.pairs = PairRunner(model, cache_features, release=pool.give)
        self.capture = CaptureThread(source, self.handoff, stop, network_input(model, pool),
                                     max_frames=max_frames, deadline=deadline)
        self.inference = InferenceThread(self.pairs, self.handoff, self.results, stop, pool.give, on_error)

    @property
    def error(self) -> Optional[BaseException]:
        """The exception that ended the inference thread, if one did."""
        return self.inference.error

    def start(self) -> None:
        self.inference.start()
        self.capture.start()

    def join(self) -> list:
        """Wait for both threads (``stop`` must be set); the warnings for any left running."""
        warnings = []
        cap = self.capture
        if cap.ident is not None:
            cap.join(JOIN_TIMEOUT_S)
            if cap.is_alive():
                self.source.close()  # wakes a read() blocked on a device
                cap.join(JOIN_TIMEOUT_S)
            if cap.is_alive():
                warnings.append("capture thread did not stop within 4 s (source blocked); it was left as a daemon thread")
        self.handoff.close()
        inf = self.inference
        if inf.ident is not None and inf is not threading.current_thread():
            inf.join(INFER_JOIN_TIMEOUT_S)
            if inf.is_alive():
                warnings.append(f"inference did not finish within {INFER_JOIN_TIMEOUT_S:g} s; left as a daemon thread")
        return warnings

    def leftovers(self, ledger: Ledger) -> None:
        """Hold a drop record for every frame still inside (after :meth:`join`)."""
        if self.error is not None and self.inference.in_flight is not None:
            item, self.inference.in_flight = self.inference.in_flight, None
            ledger.hold(frame_of(item), "interrupted" if isinstance(self.error, KeyboardInterrupt) else "error")
        for queue in (self.handoff, self.results):
            notices, items = queue.drain()
            for item, reason in notices:
                ledger.hold(frame_of(item), reason)
            for item in items:
                if isinstance(item, Outcome) and item.kind == DROPPED:
                    ledger.hold(item.frame, item.reason, item.stages)
                else:
                    ledger.hold(frame_of(item), "stopped")
