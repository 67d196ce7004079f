"""``edgeflow run``: stream a source through a model, with per-frame latency and optional sinks."""

from __future__ import annotations

import os

NAME = "run"
HELP = "run a model on a camera, video, folder or synthetic stream and report per-frame latency"
DESCRIPTION = """\
Run optical flow on consecutive frames of a source and report per-frame latency (capture to result,
per stage), frames dropped and why. Prints a summary at the end; Ctrl-C or SIGTERM end the stream
cleanly (report and sinks are always written). Exit status: 0 at the end of the source or a
--frames/--duration limit, 1 when the source failed mid-stream (corrupt file, camera lost),
130 on Ctrl-C, 143 on SIGTERM, 2 on bad arguments.

ARTIFACT defaults to the bundled model.

examples:
  edgeflow run --source /dev/video0 --duration 60 --report report.json
  edgeflow run pwc-lite-fp32 --source clip.mp4 --realtime --save flow.mp4 --jsonl frames.jsonl
  edgeflow run --source "synthetic://?width=320&height=240" --frames 300 --metrics-port 9108
  edgeflow run --source /dev/video0 --serve 127.0.0.1:8080 --slo-p95-ms 80 --drift-threshold 0.4
  edgeflow run --source clip.mp4 --output flow.mp4 --output frames.jsonl --output prometheus://127.0.0.1:9108
"""

EXIT_SOURCE_FAILED = 1
#: edgeflow.cli keeps its early SIGINT/SIGTERM handlers in place for this command: a signal during
#: the imports and the model load stops the stream as soon as it starts (the report is written).
HANDLES_SIGNALS = True
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


def add_arguments(p):
    p.add_argument("artifact", nargs="?", default=None, help="artifact directory (default: the bundled model)")
    p.add_argument("--source", required=True, metavar="URI",
                   help="camera (/dev/video0, csi://0, picamera2://0), rtsp://..., video file, image folder/glob, synthetic://")
    limit = p.add_mutually_exclusive_group()
    limit.add_argument("--frames", type=int, metavar="N", help="read at most N frames")
    limit.add_argument("--duration", type=float, metavar="S", help="stop reading after S seconds")
    p.add_argument("--realtime", action="store_true", help="play files at their native frame rate (default: as fast as possible)")
    p.add_argument("--save", metavar="OUT.mp4", help="write a video of each frame next to its colour-wheel flow")
    p.add_argument("--max-flow", type=float, metavar="PX", help="flow magnitude for full colour in --save (default: per frame)")
    p.add_argument("--jsonl", metavar="FILE", help="write one JSON line per frame")
    p.add_argument("--csv", metavar="FILE", help="write one CSV row per frame")
    p.add_argument("--report", metavar="FILE", help="write the latency report (JSON) here")
    p.add_argument("--output", action="append", metavar="URI",
                   help="send results to a sink named by URI (repeatable): flow.mp4, frames.jsonl, log.csv, "
                        "prometheus://127.0.0.1:9108, http://127.0.0.1:8080 (live page); the flags above are shorthands")
    p.add_argument("--metrics-port", type=int, metavar="P", help="serve Prometheus metrics on this port (0 = any free port)")
    p.add_argument("--metrics-host", default="127.0.0.1", metavar="ADDR",
                   help="address for --metrics-port (default 127.0.0.1: this machine only; 0.0.0.0 exposes it on every interface)")
    p.add_argument("--serve", metavar="HOST:PORT",
                   help="live page in a browser: picture, latency chart, drops, drift (host defaults to 127.0.0.1; "
                        "port 0 = any free port; needs aiohttp: pip install aiohttp)")
    p.add_argument("--drift-threshold", type=float, default=None, metavar="X",
                   help="warn once when the input drift score (0..1, mean KS distance to the artifact's reference) "
                        "exceeds X (default 0.5 for a reference recorded from the camera, 0.75 for convert-time frames)")
    p.add_argument("--no-drift", action="store_true", help="do not score input drift")
    p.add_argument("--slo-p95-ms", type=float, metavar="MS", help="latency objective: end-to-end p95 at most MS (report['slo'])")
    p.add_argument("--slo-p99-ms", type=float, metavar="MS", help="latency objective: end-to-end p99 at most MS")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt"], help="inference backend")
    p.add_argument("--threads", type=int, metavar="N",
                   help="onnxruntime intra-op threads (default: the thread budget: every usable core, from CPU affinity "
                        "and the cgroup quota)")
    p.add_argument("--spin", default="auto", choices=["auto", "on", "off"],
                   help="whether inference workers spin-wait: auto (inside a run only, stopped when it returns), "
                        "on (onnxruntime's default: also between runs), off (never)")
    p.add_argument("--no-cache", action="store_true", help="recompute both frames' features for every pair")
    p.add_argument("--drop-policy", default="auto", choices=["auto", "newest", "block"],
                   help="when the hand-off queue is full: drop the oldest frame (newest) or wait (block); "
                        "auto = newest for live sources, block for files")
    p.add_argument("--queue-size", type=int, default=2, metavar="N", help="hand-off queue length (default 2)")
    p.add_argument("--no-status", action="store_true", help="no live status line on stderr")
    p.add_argument("--quiet", action="store_true", help="no summary at the end")


def output_uris(args) -> list:
    """``(flag, uri, kind)`` for everything the run writes or serves: the named flags mapped onto
    sink URIs (``kind`` forced, so ``--jsonl F`` takes any file name), then each ``--output URI``
    (kind from its scheme or suffix). Every one is classified by :mod:`edgeflow.sinks.uri`."""
    outs = []
    if args.save:
        outs.append(("--save", args.save, "video"))
    if args.jsonl:
        outs.append(("--jsonl", args.jsonl, "jsonl"))
    if args.csv:
        outs.append(("--csv", args.csv, "csv"))
    if args.metrics_port is not None:
        host = args.metrics_host or "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        outs.append(("--metrics-port", f"prometheus://{host}:{args.metrics_port}", "prometheus"))
    if getattr(args, "serve", None):
        from edgeflow.watch import parse_serve

        host, port = parse_serve(args.serve)
        host = f"[{host}]" if ":" in host else host
        outs.append(("--serve", f"http://{host}:{port}", "watch"))
    for uri in getattr(args, "output", None) or ():
        outs.append(("--output", uri, None))
    return outs


def build_sinks(args) -> list:
    from edgeflow.sinks.status import StatusLine
    from edgeflow.sinks.uri import open_sink, parse_sink_uri

    outs = [(flag, uri, kind, parse_sink_uri(uri, kind).kind) for flag, uri, kind in output_uris(args)]
    sinks = []
    for _, uri, kind, found in outs:
        if found in ("video", "jsonl", "csv"):
            extra = {"max_flow": args.max_flow} if found == "video" and args.max_flow is not None else {}
            sinks.append(open_sink(uri, kind, **extra))
    monitors = _monitor_sinks(args)
    sinks.extend(monitors)
    by_name = {m.name: m for m in monitors}
    for _, uri, kind, found in outs:
        if found == "prometheus":
            prometheus = open_sink(uri, kind)
            for monitor in monitors:
                prometheus.add_gauges(monitor.gauges)
            sinks.append(prometheus)
        elif found == "watch":
            sinks.append(open_sink(uri, kind, drift=by_name.get("drift"), slo=by_name.get("slo")))
    if not args.no_status:
        sinks.append(StatusLine())
    return sinks


def _monitor_sinks(args) -> list:
    """Input drift (unless --no-drift) and latency objectives (--slo-*): sinks that add report sections."""
    from edgeflow.monitoring.slo import parse_objectives

    out = []
    if not getattr(args, "no_drift", False):
        from edgeflow.sinks.drift import DriftSink

        out.append(DriftSink(threshold=getattr(args, "drift_threshold", None)))
    objectives = parse_objectives(getattr(args, "slo_p95_ms", None), getattr(args, "slo_p99_ms", None))
    if objectives:
        from edgeflow.sinks.slo import SloSink

        out.append(SloSink(objectives))
    return out


class _Signals:
    """SIGINT/SIGTERM -> ``stream.stop()``; a second signal aborts (KeyboardInterrupt). A signal
    the CLI's early handlers caught before this took over (``early.received``) stops the stream
    straight away."""

    def __init__(self, stream, early=None):
        self.stream = stream
        self.received = None
        self._saved = {}
        self._early = early

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._saved[sig] = signal.signal(sig, self._handle)
        pending = getattr(self._early, "received", None)
        if pending is not None:
            self._handle(pending, None)
        return self

    def _handle(self, signum, frame):
        import signal

        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        name = signal.Signals(signum).name
        self.stream.stop("interrupted" if signum == signal.SIGINT else "terminated", name)

    def __exit__(self, *exc):
        import signal

        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        return False


def _is_file_like(uri) -> bool:
    """--realtime applies to files, folders and synthetic://; cameras are real time anyway."""
    from edgeflow.sources import parse_uri

    return parse_uri(uri).kind in ("video", "images", "synthetic")


def check_outputs(args) -> None:
    """Every file the run will write must be writable before anything loads: an hours-long stream
    must not find out at the end that ``--report`` points nowhere (one-line error, no run)."""
    from edgeflow.errors import InputError
    from edgeflow.outputs import check_writable
    from edgeflow.sinks.uri import parse_sink_uri

    named = [("--report", args.report)]
    for flag, uri, kind in output_uris(args):  # an unknown scheme or suffix fails here, before loading
        parsed = parse_sink_uri(uri, kind)
        if parsed.kind in ("video", "jsonl", "csv"):
            named.append((flag, parsed.location))
    seen = {}
    for flag, path in named:
        if not path:
            continue
        check_writable(path, flag)
        key = os.path.realpath(path)
        if key in seen:
            raise InputError(f"{seen[key]} and {flag} name the same file {path}; give each its own")
        seen[key] = flag


def run(args) -> int:
    import signal
    import sys

    from edgeflow.errors import InputError

    if args.frames is not None and args.frames < 2:
        raise InputError("--frames must be at least 2 (a flow needs a pair of frames)")
    if args.drift_threshold is not None and not 0 < args.drift_threshold <= 1:
        raise InputError(f"--drift-threshold is a score between 0 and 1, got {args.drift_threshold}")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise InputError(f"--metrics-port must be 0..65535, got {args.metrics_port}")
    check_outputs(args)
    from edgeflow.sources.uri import redact
    from edgeflow.stream import Stream  # the heavy imports (numpy, onnxruntime), after the cheap checks

    source_options = {"realtime": True} if args.realtime and _is_file_like(args.source) else {}
    stream = Stream(args.artifact, args.source, drop_policy=args.drop_policy, queue_size=args.queue_size,
                    cache_features=not args.no_cache, sinks=build_sinks(args), max_frames=args.frames,
                    duration=args.duration, report=args.report, backend=args.backend, threads=args.threads,
                    spin=args.spin, source_options=source_options)
    with _Signals(stream, getattr(args, "_early_signals", None)) as signals:
        stream.start()
        if getattr(stream.source, "backend_reason", None):  # a video file: which decoder and why
            print(f"video: {stream.source.backend_reason}", file=sys.stderr, flush=True)
        for sink in stream.sinks:
            if getattr(sink, "name", "") == "prometheus":  # also with --quiet: port 0 is known only now
                print(f"metrics: {sink.url} (listening on {sink.bound})", file=sys.stderr, flush=True)
            if getattr(sink, "name", "") == "watch":
                print(f"serve: {sink.url}", file=sys.stderr, flush=True)
        try:
            for _ in stream:
                pass
        finally:
            stream.close()
    report = stream.report
    if not args.quiet:
        print(report.summary())
        if args.report:
            print(f"report: {args.report}")
    end = report.end.get("reason")
    if signals.received == signal.SIGINT or end == "interrupted":
        return EXIT_SIGINT
    if signals.received == signal.SIGTERM or end == "terminated":
        return EXIT_SIGTERM
    if end in ("eof", "frame_limit", "duration", "stopped"):
        return 0
    detail = f": {redact(report.end['detail'])}" if report.end.get("detail") else ""
    print(f"edgeflow run: warning: the stream ended early: {end}{detail}", file=sys.stderr)
    return EXIT_SOURCE_FAILED
