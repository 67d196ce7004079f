"""Latency objectives as a sink: ``report["slo"]`` and live SLO gauges (see :mod:`edgeflow.monitoring.slo`)."""

from __future__ import annotations

from edgeflow.sinks.base import Sink
from edgeflow.monitoring.slo import SloTracker


class SloSink(Sink):
    name = "slo"

    def __init__(self, objectives: dict, window_s: float = 1.0):
        self.tracker = SloTracker(objectives, window_s)
        self.final = None

    def on_record(self, record) -> None:
        if record.status == "result" and record.end_to_end is not None:
            self.tracker.add(record.end_to_end * 1e3, record.result_ts)

    def state(self) -> dict:
        return self.final if self.final is not None else self.tracker.state()

    def gauges(self):
        st = self.tracker.state()
        out = []
        for k, o in st["objectives"].items():
            lab = {"objective": k}
            out.append(("edgeflow_slo_target_seconds", "Latency objective (end-to-end)", lab, o["target_ms"] / 1e3))
            if o["last_window_ms"] is not None:
                out.append(("edgeflow_slo_window_latency_seconds", "The objective's percentile over the last window", lab,
                            o["last_window_ms"] / 1e3))
            out.append(("edgeflow_slo_windows_breached", "Windows whose percentile exceeded the objective", lab,
                        float(o["windows_breached"])))
            out.append(("edgeflow_slo_met", "1 while no window has breached the objective, else 0", lab,
                        1.0 if o["windows_breached"] == 0 else 0.0))
        out.append(("edgeflow_slo_windows", "Windows judged", {}, float(st["windows"])))
        return out

    def close(self, report=None) -> None:
        self.final = self.tracker.finish(report.latency if report is not None else None)
        if report is not None:
            report.extra["slo"] = self.final
