"""``--metrics-port P``: a Prometheus scrape endpoint (``GET /metrics``) for a running stream.

Exposed metrics (Prometheus text format, rendered by ``prometheus_client``):

=====================================  =========  ============================================
name                                   type       meaning
=====================================  =========  ============================================
``edgeflow_frame_latency_seconds``     histogram  capture -> result (end-to-end), per result
``edgeflow_inference_latency_seconds`` histogram  runner time per result (encode + decode if cached)
``edgeflow_frames_total``              counter    frames delivered by the source
``edgeflow_results_total``             counter    flows produced
``edgeflow_frames_dropped_total``      counter    frames dropped, label ``reason``
``edgeflow_fps``                       gauge      results per second over the last 64 results
``edgeflow_stream_info``               gauge      1, labels ``model``, ``backend``, ``source`` (credentials masked)
=====================================  =========  ============================================

Other modules add their own gauges to the same endpoint with :meth:`PrometheusSink.gauge` (a
gauge they set) or :meth:`PrometheusSink.add_gauges` (values computed at scrape time) (each sink has a private ``CollectorRegistry``, so several streams in one process never collide
and nothing lands in prometheus_client's global registry).

Why the server is not ``prometheus_client.start_http_server``: that one listens with a backlog of
5, sets no socket timeout and prints tracebacks when a client leaves early. Measured on the old
endpoint: 200 concurrent scrapes had a p95 of 4.9 s with 3.5 % time-outs, and 150 slow-loris
sockets held 149 threads for 30 s. This module serves prometheus_client's WSGI app
(``make_wsgi_app``) from a small server that

* binds ``127.0.0.1`` unless told otherwise (``--metrics-host 0.0.0.0`` exposes it);
* listens with a backlog of :data:`LISTEN_BACKLOG`;
* gives every connection :data:`REQUEST_TIMEOUT_S` in total to send its request and take the
  answer (a per-connection deadline, not a per-read timeout: a client trickling one byte a second
  is cut off too), and serves at most :data:`MAX_CONNECTIONS` at once (more are closed at once);
* stays quiet when a client disconnects or times out (no tracebacks on the status line's stderr);
* is shut down, its open connections closed and its threads joined by :meth:`PrometheusSink.close`.
"""

from __future__ import annotations

import io
import logging
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from typing import Callable, Iterable, Optional, Sequence
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from edgeflow.errors import EdgeflowError, InputError
from edgeflow.sinks.base import Sink

#: Histogram buckets (seconds): 1 ms .. 5 s, dense around camera frame times (33 ms, 66 ms).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.033, 0.05, 0.066, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
FPS_WINDOW = 64
#: Loopback only unless the user asks for more (``--metrics-host 0.0.0.0``).
DEFAULT_HOST = "127.0.0.1"
log = logging.getLogger(__name__)
#: listen(2) backlog: room for a burst of scrapers without SYN drops (Linux caps it at somaxconn).
LISTEN_BACKLOG = 128
#: Seconds a connection may take, in total, to send its request and receive the answer.
REQUEST_TIMEOUT_S = 5.0
#: Connections served at once; more are closed straight away instead of each pinning a thread.
MAX_CONNECTIONS = 256

INSTALL_HINT = "pip install prometheus_client"


def _client():
    try:
        import prometheus_client
    except ImportError:
        raise EdgeflowError(f"the metrics endpoint needs prometheus_client; {INSTALL_HINT}") from None
    return prometheus_client


# -- the HTTP server -----------------------------------------------------------------------------
class _DeadlineReader(io.RawIOBase):
    """Socket reads that share one deadline: each read waits at most for the time left, so a
    slow-loris client cannot keep a connection (and its thread) alive by trickling bytes."""

    def __init__(self, sock: socket.socket, deadline: float):
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("metrics request not received in time")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


class _QuietServerHandler(ServerHandler):
    """wsgiref's per-request handler, minus tracebacks for network errors (a timed-out or vanished
    client is normal for a scrape endpoint); anything else is one line on stderr."""

    def log_exception(self, exc_info):
        if not isinstance(exc_info[1], OSError):
            log.warning("metrics: error serving a scrape: %s", _one_line(exc_info[1]))


class _Handler(WSGIRequestHandler):
    def setup(self):
        super().setup()
        self.rfile.close()
        deadline = time.monotonic() + self.server.request_timeout
        self.request.settimeout(self.server.request_timeout)
        self.rfile = io.BufferedReader(_DeadlineReader(self.request, deadline))

    def handle(self):
        # wsgiref's handle(), with the quiet ServerHandler.
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = _QuietServerHandler(self.rfile, self.wfile, sys.stderr, self.get_environ(), multithread=False)
        handler.request_handler = self
        handler.run(self.server.get_app())

    def log_message(self, *args):  # keep stderr for the status line
        pass


class MetricsServer(socketserver.ThreadingMixIn, WSGIServer):
    """A WSGI server for one app with a listen backlog, a per-connection deadline, a cap on open
    connections, quiet network errors and a :meth:`stop` that leaves no thread behind."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, host: str, port: int, app, request_timeout: float = REQUEST_TIMEOUT_S,
                 max_connections: int = MAX_CONNECTIONS):
        self.request_timeout = float(request_timeout)
        self.max_connections = int(max_connections)
        self._lock = threading.Lock()
        self._open: set = set()
        self._conn_threads: set = set()
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        self.address_family = info[0][0]
        super().__init__(info[0][4][:2], _Handler)
        self.set_app(app)

    def server_bind(self):
        # HTTPServer.server_bind resolves a fully qualified name (a DNS query on some devices).
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]
        self.setup_environ()

    def verify_request(self, request, client_address) -> bool:
        with self._lock:
            if len(self._open) >= self.max_connections:
                return False
            self._open.add(request)
        return True

    def process_request(self, request, client_address):
        thread = threading.Thread(target=self._serve_one, args=(request, client_address),
                                  name="edgeflow-metrics-conn", daemon=True)
        with self._lock:
            self._conn_threads.add(thread)
        thread.start()

    def _serve_one(self, request, client_address):
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._conn_threads.discard(threading.current_thread())

    def shutdown_request(self, request):
        with self._lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        err = sys.exc_info()[1]
        if isinstance(err, OSError):  # timeouts, resets, broken pipes: the client's business
            return
        log.warning("metrics: error serving %s: %s", client_address[0], _one_line(err))

    def stop(self, join_timeout: float = 2.0) -> None:
        """Stop accepting, cut the open connections and join their threads."""
        self.shutdown()
        self.server_close()
        with self._lock:
            open_now, threads = list(self._open), list(self._conn_threads)
        for request in open_now:
            try:
                request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + join_timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def connections(self) -> int:
        """Connections being served now."""
        with self._lock:
            return len(self._open)


class _SampleCollector:
    """A prometheus_client collector over a callable's ``(name, help, labels, value)`` samples."""

    def __init__(self, samples: Callable[[], Iterable[tuple]]):
        self._samples = samples

    def describe(self):  # names are only known at scrape time; no collision check
        return []

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        try:
            samples = list(self._samples() or ())
        except Exception as err:
            log.warning("metrics: a gauge provider failed: %s", _one_line(err))
            return []
        families: dict = {}
        for name, documentation, labels, value in samples:
            if name not in families:
                keys = sorted(labels or {})
                families[name] = (GaugeMetricFamily(name, documentation, labels=keys), keys)
            family, keys = families[name]
            family.add_metric([str((labels or {}).get(k, "")) for k in keys], float(value))
        return [family for family, _ in families.values()]


# -- the sink ------------------------------------------------------------------------------------
class PrometheusSink(Sink):
    """Serve the stream's metrics on ``http://host:port/metrics`` while it runs.

    ``port=0`` picks a free port (see :attr:`port` and :attr:`url` once the stream started).
    ``host`` defaults to loopback (``127.0.0.1``): a metrics endpoint tells anyone who can reach
    it what runs on the device, so exposing it (``0.0.0.0``) is the user's explicit choice.
    ``request_timeout``: seconds a client may take for one scrape (request and answer).
    """

    name = "prometheus"

    def __init__(self, port: int, host: str = DEFAULT_HOST, request_timeout: float = REQUEST_TIMEOUT_S,
                 max_connections: int = MAX_CONNECTIONS):
        pc = _client()  # fail before the stream loads anything
        if not 0 <= int(port) <= 65535:
            raise InputError(f"metrics port must be 0..65535, got {port}")
        self.host = host or DEFAULT_HOST
        self.port = int(port)
        self.request_timeout = request_timeout
        self.max_connections = max_connections
        self._pc = pc
        #: This sink's private registry: everything on it is served at /metrics.
        self.registry = pc.CollectorRegistry(auto_describe=True)
        r = self.registry
        self._e2e = pc.Histogram("edgeflow_frame_latency_seconds", "Capture-to-result latency per result",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self._infer = pc.Histogram("edgeflow_inference_latency_seconds",
                                   "Inference time per result (encode + decode when cached)", buckets=LATENCY_BUCKETS, registry=r)
        self._frames = pc.Counter("edgeflow_frames", "Frames delivered by the source", registry=r)
        self._results = pc.Counter("edgeflow_results", "Flows produced", registry=r)
        self._drops = pc.Counter("edgeflow_frames_dropped", "Frames dropped, by reason", ["reason"], registry=r)
        self._fps = pc.Gauge("edgeflow_fps", f"Results per second over the last {FPS_WINDOW} results", registry=r)
        self._server: Optional[MetricsServer] = None
        self._thread: Optional[threading.Thread] = None
        self._times: deque = deque(maxlen=FPS_WINDOW)
        self._info_set = False

    def gauge(self, name: str, documentation: str, labelnames: Sequence[str] = ()):
        """A ``prometheus_client.Gauge`` registered on this sink's registry, served with the stream's
        metrics: the hook for other modules (input drift, SLOs) to publish a number. Call it before
        or during the stream; ``.set()`` / ``.labels(...).set()`` it from any thread. A name already
        taken is an :class:`InputError`."""
        try:
            return self._pc.Gauge(name, documentation, list(labelnames), registry=self.registry)
        except ValueError as err:
            raise InputError(f"cannot add metric {name!r}: {err}") from None

    def add_gauges(self, samples: Callable[[], Iterable[tuple]]) -> None:
        """Publish numbers computed at scrape time: ``samples()`` returns ``(name, help, labels,
        value)`` tuples (``labels`` a dict) and is called on every scrape, from the server's
        thread, so it must be cheap and thread-safe. The drift and SLO monitors use this. A
        provider that raises is skipped for that scrape (the stream's own metrics still answer)."""
        self.registry.register(_SampleCollector(samples))

    def open(self, info: dict) -> None:
        from edgeflow.sources.uri import redact

        labels = {"model": str(info.get("model") or ""), "backend": str(info.get("backend") or ""),
                  "source": redact(str(info.get("source") or ""))}
        if not self._info_set:
            self._info_set = True
            stream_info = self._pc.Gauge("edgeflow_stream_info", "Stream facts (value is always 1)", list(labels),
                                         registry=self.registry)
            stream_info.labels(**labels).set(1)
        try:
            self._server = MetricsServer(self.host, self.port, self._pc.make_wsgi_app(self.registry),
                                         request_timeout=self.request_timeout, max_connections=self.max_connections)
        except (OSError, OverflowError) as err:
            detail = getattr(err, "strerror", None) or err
            raise EdgeflowError(
                f"cannot serve metrics on {self.host}:{self.port} ({detail}); choose another --metrics-port or --metrics-host"
            ) from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="edgeflow-metrics", daemon=True)
        self._thread.start()

    @property
    def bound(self) -> str:
        """``host:port`` the endpoint listens on (``[v6]:port`` for IPv6)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Where to scrape from this machine (an all-interfaces bind is scraped over loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/metrics"

    def on_record(self, record) -> None:
        self._frames.inc()
        if record.dropped_before:
            self._drops.labels(reason="source").inc(record.dropped_before)
        if record.status == "dropped":
            self._drops.labels(reason=record.reason or "unknown").inc()
        elif record.status == "result":
            self._e2e.observe(record.end_to_end)
            self._infer.observe(record.stages.get("inference", 0.0))
            self._results.inc()
            self._times.append(record.result_ts)
            if len(self._times) >= 2 and self._times[-1] > self._times[0]:
                self._fps.set((len(self._times) - 1) / (self._times[-1] - self._times[0]))

    def close(self, report=None) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            if report is not None:  # the report says where the metrics were (port 0 picks one)
                report.meta["metrics"] = {"host": self.host, "port": self.port, "url": self.url}
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
