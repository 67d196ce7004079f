"""The sink contract: where results and per-frame records go.

A sink sees two things, both on the consumer thread, in frame order:

* ``on_result(result)``: a flow was produced (video writers, user callbacks). Time spent here is
  the frame's ``sink`` stage and counts towards its end-to-end latency.
* ``on_record(record)``: every frame's final :class:`~edgeflow.stream.records.FrameRecord`
  (results, references and drops) once its timings are complete (JSON lines, CSV, Prometheus,
  the status line). Cheap bookkeeping only.

``open(info)`` is called once before the first frame with stream facts (model, source, fps),
``close(report)`` exactly once on every exit path with the final
:class:`~edgeflow.monitoring.latency.LatencyReport` (or ``None`` if building it failed). ``close`` must
flush and release files, sockets and threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Optional

from edgeflow.errors import InputError


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


class LineFileSink(Sink):
    """A sink that writes a line-buffered text file: every finished line is on disk at once, so a
    crash or ``kill -9`` loses at most the frame in flight. Subclasses write through ``self._fh``
    and may override :meth:`on_open` (e.g. to write a header)."""

    newline: Optional[str] = None

    def __init__(self, path):
        self.path = Path(path)
        self._fh: Optional[IO[str]] = None

    def open(self, info: dict) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "w", newline=self.newline, buffering=1, encoding="utf-8")
        except OSError as err:
            raise InputError(f"cannot write {self.path}: {err.strerror or err}") from None
        self.on_open(self._fh)

    def on_open(self, handle: IO[str]) -> None:  # noqa: B027 - optional hook
        pass

    def close(self, report=None) -> None:
        if self._fh is not None:
            try:
                self._fh.flush()
            finally:
                self._fh.close()
                self._fh = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"
