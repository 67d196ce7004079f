"""``--jsonl FILE``: one JSON object per frame (results, references and drops), line-buffered.

Line buffering means a line is on disk as soon as its frame is done: a crash or a kill -9 loses
at most the frame in flight, and ``wc -l`` always equals the frames accounted so far.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgeflow.errors import InputError
from edgeflow.sinks.base import Sink


class JsonlSink(Sink):
    name = "jsonl"

    def __init__(self, path):
        self.path = Path(path)
        self._fh = None
        self.lines = 0

    def open(self, info: dict) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "w", buffering=1, encoding="utf-8")
        except OSError as err:
            raise InputError(f"cannot write {self.path}: {err.strerror or err}") from None

    def on_record(self, record) -> None:
        if self._fh is None:
            return
        self._fh.write(json.dumps(record.to_dict(), separators=(",", ":")) + "\n")
        self.lines += 1

    def close(self, report=None) -> None:
        if self._fh is not None:
            try:
                self._fh.flush()
            finally:
                self._fh.close()
                self._fh = None
