"""``--csv FILE``: one row per frame with fixed columns (spreadsheet / pandas friendly).

Times are milliseconds; empty cells where a value does not apply (a dropped frame has no
inference time). Column order is fixed so files from different runs line up.
"""

from __future__ import annotations

import csv
from pathlib import Path

from edgeflow.errors import InputError
from edgeflow.metrics import STAGES
from edgeflow.sinks.base import Sink

COLUMNS = (
    ["index", "status", "reason", "prev_index", "dropped_before", "capture_ts", "sensor_ts", "result_ts", "end_to_end_ms"]
    + [f"{s}_ms" for s in STAGES]
)


class CsvSink(Sink):
    name = "csv"

    def __init__(self, path):
        self.path = Path(path)
        self._fh = None
        self._writer = None

    def open(self, info: dict) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "w", newline="", buffering=1, encoding="utf-8")
        except OSError as err:
            raise InputError(f"cannot write {self.path}: {err.strerror or err}") from None
        self._writer = csv.DictWriter(self._fh, fieldnames=COLUMNS, extrasaction="ignore")
        self._writer.writeheader()

    def on_record(self, record) -> None:
        if self._writer is not None:
            self._writer.writerow(record.to_dict())

    def close(self, report=None) -> None:
        if self._fh is not None:
            try:
                self._fh.flush()
            finally:
                self._fh.close()
                self._fh = self._writer = None
