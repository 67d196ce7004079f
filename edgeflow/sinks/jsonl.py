"""``--jsonl FILE``: one JSON object per frame (results, references and drops), line-buffered.

Line buffering means a line is on disk as soon as its frame is done: a crash or a kill -9 loses
at most the frame in flight, and ``wc -l`` always equals the frames accounted so far.
"""

from __future__ import annotations

import json

from edgeflow.sinks.base import LineFileSink


class JsonlSink(LineFileSink):
    name = "jsonl"

    def __init__(self, path):
        super().__init__(path)
        self.lines = 0

    def on_record(self, record) -> None:
        if self._fh is None:
            return
        self._fh.write(json.dumps(record.to_dict(), separators=(",", ":")) + "\n")
        self.lines += 1
