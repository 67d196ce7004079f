"""What a running stream or benchmark measures and judges, apart from the flow itself.

* :mod:`.latency`: per-stage latency percentiles, jitter, drift and drops, and the
  ``LatencyReport`` a stream returns and writes (not to be confused with
  :mod:`edgeflow.flow.metrics`, the flow's accuracy: EPE, Fl-all);
* :mod:`.slo`: latency objectives (``--slo-p95-ms``), whole-run and per-window verdicts;
* :mod:`.sysinfo`: the device (model, CPU, temperatures, clocks from sysfs; RSS from psutil).

Input drift (``edgeflow/drift.py``) belongs here too but stays at the top level for now: the
toolchain's converter imports it. Nothing is imported here, so each module loads on its own.
"""
