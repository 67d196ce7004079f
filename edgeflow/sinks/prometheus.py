"""``--metrics-port P``: a Prometheus scrape endpoint (``GET /metrics``) for a running stream.

Exposed metrics (text format 0.0.4):

=====================================  =========  ============================================
name                                   type       meaning
=====================================  =========  ============================================
``edgeflow_frame_latency_seconds``     histogram  capture -> result (end-to-end), per result
``edgeflow_inference_latency_seconds`` histogram  runner time per result (encode + decode if cached)
``edgeflow_frames_total``              counter    frames delivered by the source
``edgeflow_results_total``             counter    flows produced
``edgeflow_frames_dropped_total``      counter    frames dropped, label ``reason``
``edgeflow_fps``                       gauge      results per second over the last 64 results
``edgeflow_stream_info``               gauge      1, labels ``model``, ``backend``, ``source``
=====================================  =========  ============================================

With ``prometheus_client`` installed its registry and text encoder are used (a private registry,
so several streams in one process do not collide); without it a small built-in exposition
renders the same names. Either way the HTTP server is a stdlib ``ThreadingHTTPServer`` on its own
thread that :meth:`PrometheusSink.close` shuts down and joins.
"""

from __future__ import annotations

import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from edgeflow.errors import EdgeflowError
from edgeflow.sinks.base import Sink

#: Histogram buckets (seconds): 1 ms .. 5 s, dense around camera frame times (33 ms, 66 ms).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.033, 0.05, 0.066, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
FPS_WINDOW = 64
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _ClientMetrics:
    """The metrics on a private ``prometheus_client`` registry."""

    def __init__(self, labels: dict):
        import prometheus_client as pc

        self._pc = pc
        self.registry = pc.CollectorRegistry(auto_describe=True)
        r = self.registry
        self.e2e = pc.Histogram("edgeflow_frame_latency_seconds", "Capture-to-result latency per result",
                                buckets=LATENCY_BUCKETS, registry=r)
        self.infer = pc.Histogram("edgeflow_inference_latency_seconds", "Inference time per result (encode + decode when cached)",
                                  buckets=LATENCY_BUCKETS, registry=r)
        self.frames = pc.Counter("edgeflow_frames", "Frames delivered by the source", registry=r)
        self.results = pc.Counter("edgeflow_results", "Flows produced", registry=r)
        self.drops = pc.Counter("edgeflow_frames_dropped", "Frames dropped, by reason", ["reason"], registry=r)
        self.fps = pc.Gauge("edgeflow_fps", f"Results per second over the last {FPS_WINDOW} results", registry=r)
        info = pc.Gauge("edgeflow_stream_info", "Stream facts (value is always 1)", list(labels), registry=r)
        info.labels(**labels).set(1)

    def observe(self, e2e: float, infer: float) -> None:
        self.e2e.observe(e2e)
        self.infer.observe(infer)
        self.results.inc()

    def frame(self) -> None:
        self.frames.inc()

    def drop(self, reason: str, n: int = 1) -> None:
        self.drops.labels(reason=reason).inc(n)

    def set_fps(self, fps: float) -> None:
        self.fps.set(fps)

    def render(self) -> tuple[bytes, str]:
        return self._pc.generate_latest(self.registry), self._pc.CONTENT_TYPE_LATEST


class _Histogram:
    def __init__(self, buckets):
        self.bounds = tuple(buckets)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        for i, b in enumerate(self.bounds):
            if v <= b:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.sum += v
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out, acc = [], 0
        for b, c in zip(self.bounds, self.counts):
            acc += c
            out.append(f'{name}_bucket{{le="{_num(b)}"}} {acc}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        out.append(f"{name}_sum {_num(self.sum)}")
        out.append(f"{name}_count {self.count}")
        return out


def _num(v: float) -> str:
    return repr(float(v)) if v != int(v) or abs(v) >= 1e15 else f"{float(v):.1f}"


def _label(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _TextMetrics:
    """The same metrics without prometheus_client: counters, one histogram type, text rendering."""

    def __init__(self, labels: dict):
        self._lock = threading.Lock()
        self.labels = labels
        self.e2e = _Histogram(LATENCY_BUCKETS)
        self.infer = _Histogram(LATENCY_BUCKETS)
        self.frames = 0
        self.results = 0
        self.drops: dict[str, int] = {}
        self.fps = 0.0

    def observe(self, e2e: float, infer: float) -> None:
        with self._lock:
            self.e2e.observe(e2e)
            self.infer.observe(infer)
            self.results += 1

    def frame(self) -> None:
        with self._lock:
            self.frames += 1

    def drop(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.drops[reason] = self.drops.get(reason, 0) + n

    def set_fps(self, fps: float) -> None:
        with self._lock:
            self.fps = fps

    def render(self) -> tuple[bytes, str]:
        with self._lock:
            lines = []

            def head(name, kind, text):
                lines.extend([f"# HELP {name} {text}", f"# TYPE {name} {kind}"])

            head("edgeflow_frame_latency_seconds", "histogram", "Capture-to-result latency per result")
            lines += self.e2e.lines("edgeflow_frame_latency_seconds")
            head("edgeflow_inference_latency_seconds", "histogram", "Inference time per result (encode + decode when cached)")
            lines += self.infer.lines("edgeflow_inference_latency_seconds")
            head("edgeflow_frames_total", "counter", "Frames delivered by the source")
            lines.append(f"edgeflow_frames_total {_num(self.frames)}")
            head("edgeflow_results_total", "counter", "Flows produced")
            lines.append(f"edgeflow_results_total {_num(self.results)}")
            head("edgeflow_frames_dropped_total", "counter", "Frames dropped, by reason")
            for reason, n in sorted(self.drops.items()):
                lines.append(f'edgeflow_frames_dropped_total{{reason="{_label(reason)}"}} {_num(n)}')
            head("edgeflow_fps", "gauge", f"Results per second over the last {FPS_WINDOW} results")
            lines.append(f"edgeflow_fps {_num(self.fps)}")
            head("edgeflow_stream_info", "gauge", "Stream facts (value is always 1)")
            labels = ",".join(f'{k}="{_label(v)}"' for k, v in self.labels.items())
            lines.append(f"edgeflow_stream_info{{{labels}}} 1.0")
        return ("\n".join(lines) + "\n").encode(), TEXT_CONTENT_TYPE


def _handler_for(metrics):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            path = self.path.split("?", 1)[0]
            if path in ("/metrics", "/metrics/"):
                body, ctype = metrics.render()
                code = 200
            elif path == "/":
                body, ctype, code = b'<html><body><a href="/metrics">metrics</a></body></html>\n', "text/html", 200
            else:
                body, ctype, code = b"not found\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep stderr for the status line
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class PrometheusSink(Sink):
    """Serve the stream's metrics on ``http://host:port/metrics`` while it runs.

    ``port=0`` picks a free port (see :attr:`port` after the stream started). ``host`` defaults to
    all interfaces, as Prometheus exporters do; pass ``127.0.0.1`` to keep it local.
    ``use_client``: ``None`` uses prometheus_client when importable, ``False`` forces the built-in
    exposition.
    """

    name = "prometheus"

    def __init__(self, port: int, host: str = "0.0.0.0", use_client: Optional[bool] = None):
        self.host = host
        self.port = int(port)
        self.use_client = use_client
        self.metrics = None
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._times: deque = deque(maxlen=FPS_WINDOW)

    def open(self, info: dict) -> None:
        labels = {"model": str(info.get("model") or ""), "backend": str(info.get("backend") or ""),
                  "source": str(info.get("source") or "")}
        client = self.use_client
        if client is None:
            try:
                import prometheus_client  # noqa: F401

                client = True
            except ImportError:
                client = False
        self.metrics = _ClientMetrics(labels) if client else _TextMetrics(labels)
        try:
            self._server = _Server((self.host, self.port), _handler_for(self.metrics))
        except OSError as err:
            raise EdgeflowError(
                f"cannot serve metrics on {self.host}:{self.port} ({err.strerror or err}); choose another --metrics-port"
            ) from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="edgeflow-metrics", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}/metrics"

    def on_record(self, record) -> None:
        m = self.metrics
        m.frame()
        if record.dropped_before:
            m.drop("source", record.dropped_before)
        if record.status == "dropped":
            m.drop(record.reason or "unknown")
        elif record.status == "result":
            m.observe(record.end_to_end, record.stages.get("inference", 0.0))
            self._times.append(record.result_ts)
            if len(self._times) >= 2 and self._times[-1] > self._times[0]:
                m.set_fps((len(self._times) - 1) / (self._times[-1] - self._times[0]))

    def close(self, report=None) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
