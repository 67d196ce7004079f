"""Per-frame latency accounting for a stream, and the summary it ends with.

Users' complaint this answers: "the profiler says 40 FPS, my loop runs at 10". So the numbers here
are taken on the real loop, on one clock (``time.monotonic()``, the clock sources stamp frames
with), from the moment a frame was captured to the moment its result was handed over.

Definitions (all latencies in milliseconds in reports, seconds internally):

* ``end_to_end``: capture timestamp (``Frame.timestamp``) -> result handed to the caller (after
  the sinks ran, before the caller's loop body).
* stages: ``wait`` (capture -> the consumer picked the frame up: source buffer + hand-off queue),
  ``preprocess`` (frame -> network tensor), ``inference`` (runner time; ``encode`` + ``decode``
  when features are cached), ``postprocess`` (network flow -> HxWx2), ``sink`` (all sinks' per-result work).
* ``fps``: results per second between the first and the last result, ``(n - 1) / (t_n - t_1)``.
* ``jitter``: the standard deviation (population, ddof=0) of the intervals between consecutive results.
* ``drift``: median end-to-end latency of the last 10 % of results minus that of the first 10 %
  (at least one result each); thermal throttling shows up here as a positive drift.
* percentiles: linear interpolation between closest ranks, numpy's default
  (``numpy.percentile(x, q, method="linear")``): for sorted ``x[0..n-1]`` the value at rank
  ``(n - 1) * q / 100``, interpolated between its two neighbours. ``median`` is p50.

Memory stays bounded on long runs: every sample is kept exactly up to ``max_samples`` results;
past that a uniform reservoir sample of that size is kept (``sampled: true`` in the report) while
count, min, max, mean and jitter stay exact (running sums).
"""

from __future__ import annotations

import json
import math
import random
import time
from array import array
from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np

from edgeflow.sources.uri import redact

__all__ = [
    "PERCENTILE_METHOD",
    "STAGES",
    "LatencyRecorder",
    "LatencyReport",
    "LatencyStats",
    "percentile",
]

PERCENTILE_METHOD = "linear interpolation between closest ranks (numpy.percentile default, method='linear')"

#: Per-result stages, in pipeline order (``encode``/``decode`` are zero when features are not cached).
STAGES = ("wait", "preprocess", "encode", "decode", "inference", "postprocess", "sink")

#: Sample fields recorded per result: end-to-end, the stages, and the interval since the previous result.
_FIELDS = ("end_to_end",) + STAGES + ("interval",)


def percentile(values, q) -> float:
    """``q``-th percentile (0..100) with linear interpolation (numpy's default); NaN when empty."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan")
    return float(np.percentile(values, q))


@dataclass(frozen=True)
class LatencyStats:
    """trtexec-style summary of one series, in milliseconds."""

    count: int
    min: float
    median: float
    mean: float
    p90: float
    p95: float
    p99: float
    max: float
    std: float

    @classmethod
    def from_samples(cls, values_ms: Iterable[float]) -> "LatencyStats":
        x = np.asarray(list(values_ms) if not isinstance(values_ms, np.ndarray) else values_ms, dtype=np.float64)
        if x.size == 0:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan, nan, nan, nan, nan)
        p = np.percentile(x, [50, 90, 95, 99])
        return cls(int(x.size), float(x.min()), float(p[0]), float(x.mean()), float(p[1]), float(p[2]), float(p[3]),
                   float(x.max()), float(x.std()))

    def to_dict(self) -> dict:
        return {k: _finite(getattr(self, k)) for k in ("count", "min", "median", "mean", "p90", "p95", "p99", "max", "std")}


def _finite(v):
    """JSON has no NaN: missing numbers become null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class _Running:
    """Exact count / mean / min / max / population std (Welford), whatever the sample cap."""

    __slots__ = ("n", "mean", "m2", "min", "max")

    def __init__(self):
        self.n, self.mean, self.m2, self.min, self.max = 0, 0.0, 0.0, math.inf, -math.inf

    def add(self, x: float) -> None:
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)
        self.min = min(self.min, x)
        self.max = max(self.max, x)

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.n) if self.n else float("nan")


class _Samples:
    """Aligned rows of per-result samples: exact up to ``cap`` rows, then a uniform reservoir (Algorithm R).

    Rows stay aligned across fields and keep their sequence number, so windows in time order
    (drift) are still meaningful after sampling.
    """

    def __init__(self, fields: tuple, cap: int, seed: int = 0):
        self.fields = fields
        self.cap = max(int(cap), 16)
        self.cols = {f: array("d") for f in fields}
        self.seq = array("q")
        self.seen = 0
        self._rng = random.Random(seed)

    def add(self, row: dict) -> None:
        n = self.seen
        self.seen += 1
        if n < self.cap:
            for f in self.fields:
                self.cols[f].append(row.get(f, math.nan))
            self.seq.append(n)
            return
        j = self._rng.randrange(self.seen)
        if j < self.cap:
            for f in self.fields:
                self.cols[f][j] = row.get(f, math.nan)
            self.seq[j] = n

    @property
    def sampled(self) -> bool:
        return self.seen > self.cap

    def column(self, name: str, ordered: bool = False) -> np.ndarray:
        x = np.frombuffer(self.cols[name], dtype=np.float64).copy() if len(self.cols[name]) else np.empty(0)
        if ordered and self.sampled:
            x = x[np.argsort(np.frombuffer(self.seq, dtype=np.int64), kind="stable")]
        return x


@dataclass
class LatencyReport:
    """The end-of-stream summary. ``to_dict()`` is what ``--report`` writes (milliseconds, JSON-safe)."""

    count: int  # results (flows produced)
    fps: float
    latency: LatencyStats  # end-to-end
    stages: dict  # stage -> LatencyStats
    interval: LatencyStats
    jitter_ms: float
    drift: dict
    frames: dict  # delivered / results / reference / dropped {reason: n} / records
    end: dict  # {"reason": ..., "detail": ...}
    duration_s: float
    memory: dict
    device: dict
    meta: dict = field(default_factory=dict)
    sampled: bool = False
    #: Sections sinks add in ``close(report)`` (e.g. ``input_drift``, ``slo``): written with the
    #: report, which the stream writes after closing the sinks.
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The report as written: credentials in any URI (the source, an error quoting it) masked."""
        return _redacted({
            **self.meta,
            "end": self.end,
            "duration_s": round(self.duration_s, 6),
            "frames": self.frames,
            "count": self.count,
            "fps": _finite(self.fps),
            "latency_ms": {"end_to_end": self.latency.to_dict(), **{k: v.to_dict() for k, v in self.stages.items()}},
            "interval_ms": self.interval.to_dict(),
            "jitter_ms": _finite(self.jitter_ms),
            "drift": self.drift,
            "memory": self.memory,
            "device": self.device,
            "sampled": self.sampled,
            "percentiles": PERCENTILE_METHOD,
            **self.extra,
        })

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def write(self, path) -> None:
        """Atomic write (fresh ``mkstemp`` file in the target folder + ``os.replace``): a reader
        never sees half a report, and a symlink planted at a guessable temp name is never
        followed (:func:`edgeflow.outputs.atomic_write_text`)."""
        from edgeflow.outputs import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")

    def summary(self) -> str:
        """A short human table (what ``edgeflow run`` prints at the end)."""
        f = self.frames
        drops = ", ".join(f"{k} {v}" for k, v in sorted(f.get("dropped", {}).items())) or "none"
        lines = [
            f"frames: {f.get('delivered', 0)} read, {self.count} results, {f.get('reference', 0)} reference, "
            f"dropped: {drops}  (end: {self.end.get('reason')}{': ' + self.end['detail'] if self.end.get('detail') else ''})",
            f"throughput: {_fmt(self.fps)} fps   jitter: {_fmt(self.jitter_ms)} ms   "
            f"drift (last-first 10% median): {_fmt(self.drift.get('delta_ms'))} ms",
            *_budget_lines(self.meta),
            f"{'latency ms':<14}{'min':>8}{'median':>8}{'mean':>8}{'p90':>8}{'p95':>8}{'p99':>8}{'max':>8}",
        ]
        rows = [("end-to-end", self.latency)] + [(k, v) for k, v in self.stages.items() if v.count and v.max > 0]
        for name, s in rows:
            lines.append(f"{name:<14}" + "".join(f"{_fmt(getattr(s, k)):>8}" for k in ("min", "median", "mean", "p90", "p95", "p99", "max")))
        mem = self.memory
        if mem.get("rss_start_mb") is not None:
            lines.append(f"memory RSS: {_fmt(mem.get('rss_start_mb'))} -> {_fmt(mem.get('rss_end_mb'))} MB")
        temps = (self.device.get("end") or {}).get("temperature_c") or {}
        if temps:
            lines.append("temperature: " + ", ".join(f"{k} {v:.1f} C" for k, v in temps.items()))
        lines.extend(_extra_lines(self.extra))
        return redact("\n".join(lines))


def _extra_lines(extra: dict) -> list:
    """Summary lines for the sections sinks added (input drift, latency objectives)."""
    lines = []
    d = extra.get("input_drift")
    if isinstance(d, dict):
        if d.get("score") is None:
            lines.append(f"input drift: {d.get('note') or 'not scored'}")
        else:
            top = sorted((d.get("features") or {}).items(), key=lambda kv: -(kv[1] or 0))[:3]
            first = d.get("first_frame_above")
            lines.append(f"input drift: score {d['score']:.2f} (max {_fmt(d.get('max_score'))}, threshold {d.get('threshold')}"
                         + (f", first above at frame {first}" if first is not None else "") + "); "
                         + ", ".join(f"{k} {v:.2f}" for k, v in top if v is not None))
    s = extra.get("slo")
    if isinstance(s, dict):
        for k, o in (s.get("objectives") or {}).items():
            lines.append(f"SLO {k} <= {o['target_ms']:g} ms: {'met' if o.get('met') else 'MISSED'} "
                         f"(measured {_fmt(o.get('measured_ms'))} ms, {o.get('windows_breached')}/{s.get('windows')} "
                         f"windows of {s.get('window_s'):g} s over)")
    return lines


def _budget_lines(meta: dict) -> list:
    """The thread budget and the CPU each result cost (edgeflow.budget; stream reports only)."""
    if meta.get("threads") is None:
        return []
    cpu = meta.get("cpu_s_per_frame")
    return [f"threads: {meta['threads']} (spinning {meta.get('spinning')}, {meta.get('cores_seen')} cores seen)   "
            f"cpu: {_fmt(None if cpu is None else cpu * 1e3)} ms per result"]


def _redacted(obj):
    """Every string in a JSON-like structure with URI credentials masked (a report leaves the device)."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: _redacted(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_redacted(v) for v in obj]
    return obj


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.2f}" if abs(v) < 100 else f"{v:.1f}"


class LatencyRecorder:
    """Accumulates per-frame records into a :class:`LatencyReport`. Single-threaded (the consumer).

    ``add_result`` takes the stage times of one result (seconds) and its result time; ``add_frame``
    counts every record by status so the report can prove that no frame went unaccounted.
    """

    def __init__(self, max_samples: int = 100_000, drift_window: float = 0.1):
        self.samples = _Samples(_FIELDS, max_samples)
        self.running = {f: _Running() for f in _FIELDS}
        self.drift_window = float(drift_window)
        self.delivered = 0
        self.results = 0
        self.reference = 0
        self.dropped: dict[str, int] = {}
        self.first_result_t: Optional[float] = None
        self.last_result_t: Optional[float] = None
        self.started = time.monotonic()

    # -- recording ------------------------------------------------------------------------------
    def add_drop(self, reason: str, count: int = 1) -> None:
        if count > 0:
            self.dropped[reason] = self.dropped.get(reason, 0) + count

    def add_frame(self, status: str, reason: Optional[str] = None) -> None:
        """One record per frame delivered by the source: ``result``, ``reference`` or ``dropped``."""
        self.delivered += 1
        if status == "reference":
            self.reference += 1
        elif status == "dropped":
            self.add_drop(reason or "unknown")

    def add_result(self, stages_s: dict, end_to_end_s: float, result_t: float) -> None:
        self.results += 1
        interval = math.nan if self.last_result_t is None else result_t - self.last_result_t
        if self.first_result_t is None:
            self.first_result_t = result_t
        self.last_result_t = result_t
        row = {"end_to_end": end_to_end_s * 1e3, "interval": interval * 1e3}
        for s in STAGES:
            row[s] = stages_s.get(s, 0.0) * 1e3
        self.samples.add(row)
        for f, v in row.items():
            if not math.isnan(v):
                self.running[f].add(v)

    # -- summary --------------------------------------------------------------------------------
    def _stats(self, name: str) -> LatencyStats:
        col = self.samples.column(name)
        col = col[~np.isnan(col)]
        base = LatencyStats.from_samples(col)
        run = self.running[name]
        if not run.n:
            return base
        # count/min/max/mean/std exact even when the percentiles come from a reservoir
        return LatencyStats(run.n, run.min, base.median, run.mean, base.p90, base.p95, base.p99, run.max, run.std)

    def fps(self) -> float:
        if self.results < 2 or self.last_result_t == self.first_result_t:
            return float("nan")
        return (self.results - 1) / (self.last_result_t - self.first_result_t)

    def drift(self) -> dict:
        e2e = self.samples.column("end_to_end", ordered=True)
        n = e2e.size
        if n == 0:
            return {"window": self.drift_window, "first_median_ms": None, "last_median_ms": None, "delta_ms": None, "ratio": None}
        k = max(1, int(math.floor(n * self.drift_window)))
        first, last = float(np.median(e2e[:k])), float(np.median(e2e[-k:]))
        return {
            "window": self.drift_window,
            "window_results": k,
            "first_median_ms": first,
            "last_median_ms": last,
            "delta_ms": last - first,
            "ratio": (last / first) if first > 0 else None,
        }

    def report(self, *, end: dict, memory: dict | None = None, device: dict | None = None, meta: dict | None = None,
               duration_s: float | None = None) -> LatencyReport:
        frames = {
            "delivered": self.delivered,
            "results": self.results,
            "reference": self.reference,
            "dropped": dict(sorted(self.dropped.items())),
            "dropped_total": sum(self.dropped.values()),
        }
        return LatencyReport(
            count=self.results,
            fps=self.fps(),
            latency=self._stats("end_to_end"),
            stages={s: self._stats(s) for s in STAGES},
            interval=self._stats("interval"),
            jitter_ms=self.running["interval"].std,
            drift=self.drift(),
            frames=frames,
            end=end,
            duration_s=duration_s if duration_s is not None else time.monotonic() - self.started,
            memory=memory or {},
            device=device or {},
            meta=meta or {},
            sampled=self.samples.sampled,
        )
