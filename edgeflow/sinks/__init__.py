"""Where a stream's results and per-frame records go; one sink per module.

=================  ====================================================  ================
sink               what                                                  CLI
=================  ====================================================  ================
CallbackSink       call a function per result (embedding)                -
JsonlSink          one JSON line per frame                               ``--jsonl F``
CsvSink            one CSV row per frame                                 ``--csv F``
VideoSink          frame + colour-wheel flow side by side, encoded       ``--save F.mp4``
PrometheusSink     ``/metrics`` scrape endpoint                          ``--metrics-port P``
StatusLine         live status on stderr (TTY only)                      (default)
DriftSink          input drift vs the manifest's reference               (default; ``--drift-threshold``)
SloSink            latency objectives, ``report["slo"]``                 ``--slo-p95-ms X``
WatchSink          live page: picture, latency chart, drift (aiohttp)    ``--serve HOST:PORT``
=================  ====================================================  ================

The ones that write or serve something are also named by URI (``open_sink("flow.mp4")``,
``"prometheus://127.0.0.1:9108"``, ...; the one table is :mod:`edgeflow.sinks.uri`, also behind
``edgeflow run --output URI``). See :mod:`edgeflow.sinks.base` for the contract. Modules are imported on first use, so a device
without PyAV or prometheus_client can still use the others.
"""

from __future__ import annotations

import importlib

from edgeflow.sinks.base import Sink

_LAZY = {
    "CallbackSink": "edgeflow.sinks.callback",
    "JsonlSink": "edgeflow.sinks.jsonl",
    "CsvSink": "edgeflow.sinks.csvfile",
    "VideoSink": "edgeflow.sinks.video",
    "PrometheusSink": "edgeflow.sinks.prometheus",
    "StatusLine": "edgeflow.sinks.status",
    "DriftSink": "edgeflow.sinks.drift",
    "SloSink": "edgeflow.sinks.slo",
    "WatchSink": "edgeflow.watch.sink",
    "open_sink": "edgeflow.sinks.uri",
}

__all__ = ["Sink", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgeflow.sinks' has no attribute {name!r}")
