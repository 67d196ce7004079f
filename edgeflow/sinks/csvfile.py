"""``--csv FILE``: one row per frame with fixed columns (spreadsheet / pandas friendly).

Times are milliseconds; empty cells where a value does not apply (a dropped frame has no
inference time). Column order is fixed so files from different runs line up.
"""

from __future__ import annotations

import csv

from edgeflow.monitoring.latency import STAGES
from edgeflow.sinks.base import LineFileSink

COLUMNS = (
    ["index", "status", "reason", "prev_index", "dropped_before", "capture_ts", "sensor_ts", "result_ts", "end_to_end_ms"]
    + [f"{s}_ms" for s in STAGES]
)


class CsvSink(LineFileSink):
    name = "csv"
    newline = ""  # the csv module writes its own line endings

    def __init__(self, path):
        super().__init__(path)
        self._writer = None

    def on_open(self, handle) -> None:
        self._writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        self._writer.writeheader()

    def on_record(self, record) -> None:
        if self._fh is not None and self._writer is not None:
            self._writer.writerow(record.to_dict())

    def close(self, report=None) -> None:
        super().close(report)
        self._writer = None
