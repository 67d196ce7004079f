"""``WatchSink``: hands the newest picture and every frame record to the live page's server.

The inference thread only ever does constant, tiny work here: per record it appends a tuple to a
deque; per result, and only while a browser is connected and at most ``fps`` times a second, it
copies the frame and the flow into a one-slot mailbox (the newest frame wins, the rest are never
copied). Colour-coding the flow, JPEG encoding, statistics and sockets all happen on the server's
own thread (see :mod:`edgeflow.watch.server`).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Optional

from edgeflow.errors import EdgeflowError
from edgeflow.sinks.base import Sink
from edgeflow.sinks.uri import DEFAULT_HOST, parse_host_port

DEFAULT_FPS = 4.0
#: Most of the process's CPU time the page may take: past it pictures are sent less often.
DEFAULT_CPU_BUDGET = 0.015


def parse_serve(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` (host 127.0.0.1); port 0 picks a free one."""
    return parse_host_port(str(text).strip(), f"--serve expects HOST:PORT (e.g. 127.0.0.1:8080, or :0 for any free "
                                              f"port), got {text!r}", bare="port")


class WatchSink(Sink):
    """Serve the live page on ``http://host:port/`` while the stream runs.

    ``drift``/``slo``: the stream's :class:`~edgeflow.sinks.drift.DriftSink` and
    :class:`~edgeflow.sinks.slo.SloSink` (optional), whose state the page shows. ``fps``: the
    most pictures a second sent to a browser; ``cpu_budget``: the share of the process's CPU time
    the page may use (its event loop and encoding thread); above it the server sends pictures
    less often, so an open page cannot take more than that from a saturated device."""

    name = "watch"

    def __init__(self, host: str = DEFAULT_HOST, port: int = 0, fps: float = DEFAULT_FPS, drift=None, slo=None,
                 history_s: int = 120, cpu_budget: float = DEFAULT_CPU_BUDGET):
        self.host, self.port = host, int(port)
        self.fps = float(fps)
        self.drift, self.slo = drift, slo
        self.history_s = int(history_s)
        self.records: deque = deque(maxlen=20000)
        self.latest = None  # (index, frame, flow, t): the newest picture not yet encoded
        self.clients = 0
        self.pictures_taken = 0
        self._last_pick = -1e9
        self._min_interval = 1.0 / self.fps if self.fps > 0 else 0.0
        self.cpu_budget = float(cpu_budget)
        #: Seconds between pictures now: 1/fps, stretched by the server while the page's own CPU
        #: time is over ``cpu_budget`` of the process's (a saturated device gets fewer pictures).
        self.picture_interval = self._min_interval
        self.server = None
        self.cpu_s = 0.0
        import importlib.util

        if importlib.util.find_spec("aiohttp") is None:  # say so before the model loads
            raise EdgeflowError("--serve needs aiohttp: pip install aiohttp")

    def open(self, info: dict) -> None:
        try:
            from edgeflow.watch.server import WatchServer
        except ImportError:
            raise EdgeflowError("--serve needs aiohttp: pip install aiohttp") from None
        self.server = WatchServer(self, self.host, self.port, info)
        self.server.start()
        self.port = self.server.port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    def on_result(self, result) -> None:
        if not self.clients:
            return
        now = time.monotonic()
        if now - self._last_pick < self.picture_interval:
            return
        self._last_pick = now
        self.latest = (result.index, result.frame.copy(), result.flow.copy(), now)
        self.pictures_taken += 1
        server = self.server
        if server is not None:
            server.picture_ready()

    def on_record(self, record) -> None:
        self.records.append((record.index, record.status, record.reason, record.dropped_before, record.result_ts,
                             record.end_to_end, record.stages))

    def close(self, report=None) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop(report)
            self.cpu_s = server.cpu_s  # what the page cost (its loop and encoding threads)
