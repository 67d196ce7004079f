"""Input drift as a sink: scores sampled live frames against the artifact's ``input_reference``.

The features are computed on a worker thread, never on the thread that runs the model: per result
the sink only copies the newest frame and flow into a one-slot mailbox (at most ``max_rate`` times
a second, default :data:`edgeflow.drift.DEFAULT_RATE`; a frame still waiting is replaced, the
newest wins), and the worker scores whatever is there. Drift is slow (dusk, fog, a lens getting
dirty), so a few frames a second are plenty, and the features cost about 3 ms of CPU each. See :mod:`edgeflow.drift` for the features and the statistic.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Optional

from edgeflow import drift
from edgeflow.sinks.base import Sink

log = logging.getLogger(__name__)


def reference_of(artifact_dir) -> Optional[dict]:
    """The ``input_reference`` of an artifact directory's manifest, or None."""
    if not artifact_dir:
        return None
    try:
        manifest = json.loads((Path(artifact_dir) / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    ref = manifest.get("input_reference") if isinstance(manifest, dict) else None
    return ref if drift.valid_reference(ref) else None


class DriftSink(Sink):
    """``report["input_drift"]``, live drift gauges and a one-line warning above ``threshold``.

    ``reference``: an ``input_reference`` dict; ``None`` reads the stream's artifact manifest.
    ``threshold``: ``None`` takes the reference kind's default (:func:`edgeflow.drift.default_threshold`).
    Without one the sink says "no drift reference" once and does nothing else."""

    name = "drift"

    def __init__(self, reference: Optional[dict] = None, threshold: Optional[float] = None,
                 window: int = drift.DEFAULT_WINDOW, max_rate: float = drift.DEFAULT_RATE, warn=None):
        self.reference = reference
        self.threshold = threshold
        self.window = window
        self.min_interval = 1.0 / max_rate if max_rate and max_rate > 0 else 0.0
        self.warn = warn  # a text stream for the warning line; None: the edgeflow logger (the CLI shows it)
        self.monitor: Optional[drift.DriftMonitor] = None
        self.note: Optional[str] = None
        self._slot = None
        self._cond = threading.Condition()
        self._closing = False
        self._thread: Optional[threading.Thread] = None
        self._last = -1e9
        self.sampled = 0

    def open(self, info: dict) -> None:
        ref = self.reference if self.reference is not None else reference_of(info.get("artifact"))
        if ref is None or not drift.valid_reference(ref):
            self.note = f"no drift reference in {info.get('artifact') or 'the model'}: input drift is not scored"
            self._say(f"edgeflow: {self.note} (re-convert the model to add one)", logging.INFO)
            return
        if self.threshold is None:
            self.threshold = drift.default_threshold(ref)
        self.monitor = drift.DriftMonitor(ref, window=self.window, threshold=self.threshold, on_cross=self._crossed)
        self._thread = threading.Thread(target=self._work, name="edgeflow-drift", daemon=True)
        self._thread.start()

    def on_result(self, result) -> None:
        if self.monitor is None:
            return
        now = time.monotonic()
        if now - self._last < self.min_interval:
            return
        self._last = now
        # copies: the worker must not see a buffer the source or the next stage may reuse
        item = (result.index, result.frame.copy(), result.flow.copy())
        with self._cond:
            self._slot = item
            self._cond.notify()

    def _work(self) -> None:
        while True:
            with self._cond:
                while self._slot is None and not self._closing:
                    self._cond.wait()
                item, self._slot = self._slot, None
                if item is None:
                    return
            try:
                self.monitor.add(*item)
                self.sampled += 1
            except Exception as err:  # a scoring bug must not take the stream down
                self.note = f"drift scoring failed: {type(err).__name__}: {err}"
                return

    def drain(self, timeout: float = 5.0) -> None:
        """Wait until the frame in the mailbox (if any) has been scored (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._slot is not None and self._thread is not None and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)

    def _crossed(self, index, score, per) -> None:
        top = sorted(per.items(), key=lambda kv: -kv[1])[:3]
        feats = ", ".join(f"{k} {v:.2f}" for k, v in top)
        self._say(f"edgeflow: warning: input drift score {score:.2f} > {self.threshold:g} at frame {index} ({feats}): "
                  "the camera sees something unlike the frames the model was validated on")

    def _say(self, line: str, level: int = logging.WARNING) -> None:
        if self.warn is None:  # the console handler adds "edgeflow: warning: " itself
            log.log(level, line.removeprefix("edgeflow: ").removeprefix("warning: "))
            return
        try:
            self.warn.write(line + "\n")
            self.warn.flush()
        except (OSError, ValueError):
            pass

    def state(self) -> dict:
        if self.monitor is None:
            return {"score": None, "reference": False, "note": self.note}
        out = {**self.monitor.state(), "reference": True}
        if self.note:
            out["note"] = self.note
        elif out["score"] is None:
            out["note"] = (f"not scored yet: {out['frames_scored']} frames sampled, {drift.MIN_FRAMES} needed "
                           + (f"(at most {1 / self.min_interval:g} a second)" if self.min_interval else "(every frame)"))
        return out

    def gauges(self):
        """``(name, help, labels, value)`` samples for the Prometheus sink."""
        if self.monitor is None:
            return []
        st = self.monitor.state()
        out = []
        if st["score"] is not None:
            out.append(("edgeflow_input_drift_score", "Input drift score (mean KS distance to the convert-time reference)",
                        {}, st["score"]))
        for k, v in st["features"].items():
            if v is not None:
                out.append(("edgeflow_input_drift_feature", "Input drift per feature (KS distance to the reference)",
                            {"feature": k}, v))
        return out

    def close(self, report=None) -> None:
        if self._thread is not None:
            self.drain(2.0)
            with self._cond:
                self._closing = True
                self._cond.notify()
            self._thread.join(5)
            self._thread = None
        if report is not None:
            report.extra["input_drift"] = self.state()
