"""The sink contract: where results and per-frame records go.

A sink sees two things, both on the consumer thread, in frame order:

* ``on_result(result)``: a flow was produced (video writers, user callbacks). Time spent here is
  the frame's ``sink`` stage and counts towards its end-to-end latency.
* ``on_record(record)``: every frame's final :class:`~edgeflow.stream.records.FrameRecord`
  (results, references and drops) once its timings are complete (JSON lines, CSV, Prometheus,
  the status line). Cheap bookkeeping only.

``open(info)`` is called once before the first frame with stream facts (model, source, fps),
``close(report)`` exactly once on every exit path with the final
:class:`~edgeflow.metrics.LatencyReport` (or ``None`` if building it failed). ``close`` must
flush and release files, sockets and threads.
"""

from __future__ import annotations


class Sink:
    name = "sink"

    def open(self, info: dict) -> None:  # noqa: B027 - optional hook
        pass

    def on_result(self, result) -> None:  # noqa: B027
        pass

    def on_record(self, record) -> None:  # noqa: B027
        pass

    def close(self, report=None) -> None:  # noqa: B027
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
