"""Latency objectives (SLOs): "p95 end-to-end latency at most X ms", checked on a running stream.

A release gate needs a yes/no, and an operator needs to know whether a miss was one bad minute or
the whole run. So an objective is judged twice:

* over the whole run: the run's percentile (the report's ``latency_ms.end_to_end`` value, linear
  interpolation as everywhere in edgeflow) against the target -> ``met``;
* per window of consecutive results spanning at least :data:`WINDOW_S` seconds and at least
  :data:`MIN_WINDOW_RESULTS` results (a p99 of two numbers means nothing; a slow device gets
  longer windows): the window's percentile against the target -> ``windows_breached`` out of
  ``windows``. The run's last, shorter window is judged too when it has enough results.

``report["slo"]`` = ``{"met": all objectives met, "window_s", "windows", "objectives": {"p95":
{"target_ms", "measured_ms", "met", "windows_breached", "last_window_ms"}, ...}}``.
"""

from __future__ import annotations

import math
import threading
from typing import Optional

import numpy as np

from edgeflow.errors import InputError

WINDOW_S = 1.0
MIN_WINDOW_RESULTS = 5
QUANTILES = {"p95": 95.0, "p99": 99.0}


def parse_objectives(p95_ms: Optional[float] = None, p99_ms: Optional[float] = None) -> dict:
    """``{"p95": 40.0, ...}`` from the CLI flags; bad values are a one-line InputError."""
    out = {}
    for name, value in (("p95", p95_ms), ("p99", p99_ms)):
        if value is None:
            continue
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise InputError(f"--slo-{name}-ms must be a positive number of milliseconds, got {value}")
        out[name] = float(value)
    return out


class SloTracker:
    """Judges latency objectives per window and over the run. ``add(e2e_ms, t)`` per result
    (``t``: result time, seconds, monotonic); ``finish(stats)`` with the run's statistics."""

    def __init__(self, objectives: dict, window_s: float = WINDOW_S):
        if not objectives:
            raise InputError("an SLO needs at least one objective (--slo-p95-ms or --slo-p99-ms)")
        self.objectives = dict(objectives)
        self.window_s = float(window_s)
        self._lock = threading.Lock()
        self._start: Optional[float] = None
        self._current: list = []
        self.windows = 0
        self.breached = {k: 0 for k in self.objectives}
        self.last_window = {k: None for k in self.objectives}

    def add(self, e2e_ms: float, t: float) -> None:
        if self._start is None:
            self._start = t
        self._current.append(e2e_ms)
        # a window spans at least window_s seconds and MIN_WINDOW_RESULTS results, so a slow
        # device (3 fps) is judged on 2-second windows instead of never
        if t - self._start >= self.window_s and len(self._current) >= MIN_WINDOW_RESULTS:
            self._close_window()
            self._start = None

    def _close_window(self) -> None:
        values, self._current = self._current, []
        if len(values) < MIN_WINDOW_RESULTS:
            return
        x = np.asarray(values, dtype=np.float64)
        with self._lock:
            self.windows += 1
            for k, target in self.objectives.items():
                v = float(np.percentile(x, QUANTILES[k]))
                self.last_window[k] = v
                if v > target:
                    self.breached[k] += 1

    def state(self, measured: Optional[dict] = None) -> dict:
        """The report section; ``measured`` maps ``p95``/``p99`` to the run's values (ms)."""
        measured = measured or {}
        with self._lock:
            objectives = {}
            for k, target in self.objectives.items():
                m = measured.get(k)
                m = None if m is None or not math.isfinite(m) else float(m)
                objectives[k] = {"target_ms": target, "measured_ms": None if m is None else round(m, 4),
                                 "met": None if m is None else bool(m <= target),
                                 "windows_breached": self.breached[k],
                                 "last_window_ms": None if self.last_window[k] is None else round(self.last_window[k], 4)}
            verdicts = [o["met"] for o in objectives.values()]
            return {"met": bool(verdicts) and all(v is True for v in verdicts), "window_s": self.window_s,
                    "windows": self.windows, "objectives": objectives}

    def finish(self, latency_stats=None) -> dict:
        """Close the last window and judge the run; ``latency_stats`` has ``p95``/``p99`` (ms)."""
        if self._current:
            self._close_window()
        measured = {k: getattr(latency_stats, k, None) for k in self.objectives} if latency_stats is not None else {}
        return self.state(measured)
