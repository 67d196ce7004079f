"""A live one-line status on stderr: frames, fps, end-to-end p50/p95, drops.

Only when stderr is a terminal (or ``force=True``): redirected output and CI logs stay clean.
Statistics cover the last ``window`` results so the line reacts to what is happening now; it
is redrawn at most every ``interval`` seconds, so it costs nothing measurable per frame.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Optional

import numpy as np

from edgeflow.sinks.base import Sink


class StatusLine(Sink):
    name = "status"

    def __init__(self, stream=None, interval: float = 0.5, window: int = 256, force: bool = False):
        self.stream = stream if stream is not None else sys.stderr
        self.interval = float(interval)
        self.enabled = bool(force or _isatty(self.stream))
        self._lat: deque = deque(maxlen=window)
        self._times: deque = deque(maxlen=window)
        self._frames = 0
        self._drops = 0
        self._last_draw = 0.0
        self._width = 0

    def on_record(self, record) -> None:
        self._frames += 1
        self._drops += record.dropped_before + (record.status == "dropped")
        if record.status == "result":
            self._lat.append(record.end_to_end * 1e3)
            self._times.append(record.result_ts)
        if self.enabled:
            now = time.monotonic()
            if now - self._last_draw >= self.interval:
                self._last_draw = now
                self._draw(self.line())

    def line(self) -> str:
        fps = (len(self._times) - 1) / (self._times[-1] - self._times[0]) if len(self._times) >= 2 and self._times[-1] > self._times[0] else 0.0
        if self._lat:
            p50, p95 = np.percentile(np.fromiter(self._lat, dtype=np.float64), [50, 95])
            lat = f"latency p50 {p50:.1f} ms p95 {p95:.1f} ms"
        else:
            lat = "latency -"
        return f"edgeflow: {self._frames} frames | {fps:.1f} fps | {lat} | drops {self._drops}"

    def _draw(self, text: str) -> None:
        pad = max(0, self._width - len(text))
        self._width = len(text)
        try:
            self.stream.write("\r" + text + " " * pad)
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False

    def close(self, report=None) -> None:
        if self.enabled and self._width:
            self._draw(self.line())
            try:
                self.stream.write("\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass
        self.enabled = False


def _isatty(stream: Optional[object]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
