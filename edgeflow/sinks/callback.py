"""Call a function with every :class:`~edgeflow.stream.records.Result` (the embedding API).

``stream.run(fn)`` uses the iterator directly; this sink is for adding a callback *next to*
other sinks, its time counted in the ``sink`` stage.
"""

from __future__ import annotations

from typing import Callable, Optional

from edgeflow.sinks.base import Sink


class CallbackSink(Sink):
    name = "callback"

    def __init__(self, on_result: Callable, on_record: Optional[Callable] = None):
        self._on_result = on_result
        self._on_record = on_record

    def on_result(self, result) -> None:
        self._on_result(result)

    def on_record(self, record) -> None:
        if self._on_record is not None:
            self._on_record(record)
