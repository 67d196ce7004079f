"""The stream's report, built in one place: what ran (facts), how it ended, and what it cost.

:class:`RunReport` keeps what must be measured at the start (wall-clock start, CPU time and RSS
after loading, a sysfs snapshot of the device) and turns the latency recorder's counts into the
:class:`~edgeflow.monitoring.latency.LatencyReport` the stream returns and writes, on every exit path,
including a stream that failed to start.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Optional

from edgeflow.monitoring import sysinfo
from edgeflow.errors import first_line
from edgeflow.monitoring.latency import LatencyRecorder, LatencyReport
from edgeflow.sources.uri import redact
from edgeflow.version import __version__


def error_line(err: BaseException) -> str:
    """``Type: first line`` of an exception, for the report's end reason and sink errors."""
    return f"{type(err).__name__}: {first_line(err)}" if str(err).strip() else type(err).__name__


def end_of_run(error: Optional[tuple], stop_reason: Optional[tuple], exhausted: bool, capture) -> dict:
    """Why the stream ended: an error first, then a stop (``stop()``, Ctrl-C), then the source's
    own end (``eof``, ``frame_limit``, ``duration``, ``corrupt``, ...), else the consumer left."""
    if error is not None:
        reason, detail = error
    elif stop_reason is not None:
        reason, detail = stop_reason
    elif exhausted and capture is not None:
        reason, detail = capture.end_reason or "eof", capture.error
        if reason.startswith("corrupt"):
            reason, detail = "corrupt", reason.partition(":")[2].strip() or detail
    else:
        reason, detail = "stopped", "the consumer stopped iterating"
    end = {"reason": reason}
    if detail:
        end["detail"] = detail
    return end


def run_facts(*, model, source, source_arg, started_at, cached: bool, drop_policy, queue_size: int,
              sink_queue_size: int, max_frames, duration) -> dict:
    """What ran: the sinks' ``open(info)`` and the report's ``meta``. The model's part comes from its
    public :meth:`~edgeflow.model.FlowModel.describe` (a model without one leaves those fields empty)."""
    described = model.describe() if hasattr(model, "describe") else {}
    budget = described.get("thread_budget") or {}
    return {
        "edgeflow": __version__,
        "started_at": started_at,
        "model": described.get("name"),
        "artifact": described.get("artifact"),
        "backend": described.get("backend"),
        "cached": cached,
        # Credentials masked: this goes to the report, the sinks and the metrics/live pages.
        "source": redact(getattr(source, "uri", None) if source is not None else source_arg),
        "live": bool(getattr(source, "is_live", False)),
        "source_fps": getattr(source, "fps", None),
        "drop_policy": drop_policy,
        "queue_size": queue_size,
        "sink_queue_size": sink_queue_size,
        "max_frames": max_frames,
        "duration_limit_s": duration,
        # The thread budget (edgeflow.budget): what inference got and why.
        "threads": budget.get("threads"),
        "spinning": budget.get("spinning"),
        "cores_seen": budget.get("cores_seen"),
        "thread_budget": described.get("thread_budget"),
    }


class RunReport:
    """Start-of-run measurements, and :meth:`build` at the end."""

    def __init__(self):
        self.started_at: Optional[str] = None
        self._t0 = time.monotonic()
        self._cpu0 = time.process_time()
        self._rss_start: Optional[int] = None
        self._device_start: dict = {}

    def started(self) -> None:
        """The stream starts: wall-clock time and the device's state before anything loads."""
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._t0 = time.monotonic()
        self._device_start = sysinfo.snapshot()

    def loaded(self) -> None:
        """Model and source are open: RSS growth and CPU time from here are the stream's own."""
        self._rss_start = sysinfo.rss_bytes()
        self._cpu0 = time.process_time()

    def build(self, recorder: LatencyRecorder, *, end: dict, facts: dict, warnings=(),
              frames_read: Optional[int] = None) -> LatencyReport:
        mb = (lambda b: None if b is None else round(b / 2**20, 2))
        memory = {"rss_start_mb": mb(self._rss_start), "rss_end_mb": mb(sysinfo.rss_bytes()),
                  "source": sysinfo.rss_source()}
        device = {"model": sysinfo.device_model(), "cpu": sysinfo.cpu_model(), "start": self._device_start,
                  "end": sysinfo.snapshot()}
        end = dict(end)
        if warnings:
            end["warnings"] = list(warnings)
        if frames_read is not None:
            end["frames_read"] = frames_read
        cpu_s = time.process_time() - self._cpu0
        results = recorder.results
        meta = {**facts, "cpu_s": round(cpu_s, 6), "cpu_s_per_frame": round(cpu_s / results, 6) if results else None}
        return recorder.report(end=end, memory=memory, device=device, meta=meta, duration_s=time.monotonic() - self._t0)
