"""``edgeflow bench``: trtexec-style latency statistics, side by side, for artifacts and resolutions."""

from __future__ import annotations

NAME = "bench"
HELP = "benchmark artifacts (pure inference and the full streaming loop) against OpenCV DIS"
DESCRIPTION = """\
Measure each ARTIFACT at each --resolution and print one row per measurement:

  infer          raw runner.infer on the whole-pair graph (ready tensors, no pre/post-processing)
  infer-cached   one new frame with feature caching: encoder(new) + decoder(cached, new)  [split artifacts]
  stream         the full edgeflow.Stream loop: capture thread, hand-off, preprocessing, inference,
                 postprocessing, records; latency = hand-off pick-up to result per frame (time
                 spent queued is left out: frames from memory/files are "captured" early),
                 throughput = results/s; capture-to-result stats are in --json
  dis-ultrafast  OpenCV DIS optical flow (reference rows, when OpenCV is installed)
  dis-medium

Statistics: min/median/mean/p90/p95/p99/max in ms (linear-interpolation percentiles, numpy's
default) after --warmup untimed iterations; throughput = iterations / wall time of the timed loop.
Frames are a translating random texture generated in memory, or --source for the stream rows.

examples:
  edgeflow bench
  edgeflow bench pwc-lite-fp32 pwc-lite-int8 --resolution 320x240 640x480 --json bench.json --plot bench.png
  edgeflow bench --duration 10 --threads 3 --source clip.mp4
  edgeflow bench --slo-p95-ms 80        # exit status 1 when a stream row's p95 is over 80 ms (CI gate)

--slo-p95-ms / --slo-p99-ms judge each artifact's stream rows (its infer rows with --no-stream) the
way `edgeflow run` does (edgeflow.monitoring.slo): the row's percentile over the timed loop, and windows of at
least 1 s of the loop; any objective missed -> exit status 1.
"""

EXIT_SLO_MISSED = 1


def add_arguments(p):
    p.add_argument("artifacts", nargs="*", metavar="ARTIFACT", help="artifact directories (default: the bundled model)")
    p.add_argument("--resolution", nargs="+", default=["320x240"], metavar="WxH", help="frame sizes (default 320x240)")
    p.add_argument("--warmup", type=int, default=5, metavar="N", help="untimed iterations first (default 5)")
    count = p.add_mutually_exclusive_group()
    count.add_argument("--iterations", type=int, metavar="N", help="timed iterations per row (default 50)")
    count.add_argument("--duration", type=float, metavar="S", help="seconds per row instead of a fixed count")
    p.add_argument("--threads", type=int, metavar="N", help="inference threads (default: runtime's choice)")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt"], help="inference backend")
    p.add_argument("--source", metavar="URI", help="frame source for the stream rows (default: frames in memory)")
    p.add_argument("--no-stream", action="store_true", help="skip the streaming-loop rows")
    p.add_argument("--no-dis", action="store_true", help="skip the OpenCV DIS reference rows")
    p.add_argument("--json", metavar="OUT.json", help="write all rows (with per-iteration latencies) as JSON")
    p.add_argument("--plot", metavar="OUT.png", help="write a latency CDF + histogram plot (matplotlib)")
    p.add_argument("--slo-p95-ms", type=float, metavar="MS", help="latency objective: p95 at most MS, else exit status 1")
    p.add_argument("--slo-p99-ms", type=float, metavar="MS", help="latency objective: p99 at most MS, else exit status 1")


def parse_resolution(text: str) -> tuple[int, int]:
    from edgeflow.errors import InputError

    w, sep, h = text.lower().partition("x")
    try:
        width, height = int(w), int(h)
    except ValueError:
        width = height = 0
    if not sep or width < 8 or height < 8:
        raise InputError(f"--resolution expects WxH with both at least 8, e.g. 320x240; got {text!r}")
    return width, height


def run(args) -> int:
    import json
    import sys

    from edgeflow import benchmark as bm
    from edgeflow.errors import InputError
    from edgeflow.model import FlowModel

    sizes = [parse_resolution(r) for r in args.resolution]
    if args.plot:  # before minutes of measuring, not after
        _require_matplotlib()
    from edgeflow.monitoring.slo import parse_objectives

    objectives = parse_objectives(args.slo_p95_ms, args.slo_p99_ms)
    if args.warmup < 0:
        raise InputError("--warmup must be >= 0")
    iterations = args.iterations if args.iterations is not None else (None if args.duration else 50)
    if iterations is not None and iterations < 1:
        raise InputError("--iterations must be >= 1")
    if args.duration is not None and args.duration <= 0:
        raise InputError("--duration must be > 0")
    artifacts = args.artifacts or [None]
    nframes = 32
    rows = []
    frames_by_size = {s: bm.bench_frames(s[0], s[1], nframes) for s in sizes}
    for path in artifacts:
        model = FlowModel.load(path, backend=args.backend, threads=args.threads)
        try:
            for (w, h) in sizes:
                res = f"{w}x{h}"
                frames = frames_by_size[(w, h)]
                print(f"bench: {model.name} {res} ...", file=sys.stderr, flush=True)
                rows.append(bm.infer_row(model, frames, args.warmup, iterations, args.duration, res))
                cached = bm.cached_row(model, frames, args.warmup, iterations, args.duration, res)
                if cached is not None:
                    rows.append(cached)
                if not args.no_stream and not args.source:
                    rows.append(bm.stream_row(model, _memory_source(frames), args.warmup, iterations, args.duration, res))
            if not args.no_stream and args.source:
                rows.append(bm.stream_row(model, _uri_source(args.source), args.warmup, iterations, args.duration, "source"))
        finally:
            model.close()
    if not args.no_dis:
        for (w, h) in sizes:
            rows.extend(bm.dis_rows(frames_by_size[(w, h)], args.warmup, iterations, args.duration, f"{w}x{h}", args.threads))
    print(bm.format_table(rows))
    slo = judge_slo(rows, objectives) if objectives else None
    if args.json:
        from edgeflow.commands.info import collect
        from edgeflow.sources.uri import redact  # the JSON leaves the device: no camera password in it

        doc = {"settings": {"warmup": args.warmup, "iterations": iterations, "duration_s": args.duration,
                            "threads": args.threads, "backend": args.backend, "source": redact(args.source)},
               "device": collect(), "rows": [r.to_dict() for r in rows]}
        if slo is not None:
            doc["slo"] = slo
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=2)
        print(f"json: {args.json}")
    if args.plot:
        plot_rows(rows, args.plot)
        print(f"plot: {args.plot}")
    if slo is not None and not slo["met"]:
        return EXIT_SLO_MISSED
    return 0


def judge_slo(rows, objectives: dict) -> dict:
    """Judge each artifact's stream rows (infer rows when there are none) against the objectives;
    prints one line per row and objective. Windows: consecutive iterations spanning >= 1 s."""
    from edgeflow.monitoring.slo import SloTracker

    judged = [r for r in rows if r.path == "stream"] or [r for r in rows if r.path == "infer"]
    out = {"met": bool(judged), "rows": []}
    for r in judged:
        tracker = SloTracker(objectives)
        t = 0.0
        for ms in r.latencies_ms:
            t += ms / 1e3
            tracker.add(ms, t)
        state = tracker.finish(r.stats)
        out["rows"].append({"name": r.name, "path": r.path, "resolution": r.resolution, **state})
        out["met"] = out["met"] and state["met"]
        for k, o in state["objectives"].items():
            verdict = "met" if o["met"] else "MISSED"
            print(f"slo: {r.name} {r.path} {r.resolution} {k} {o['measured_ms']} ms <= {o['target_ms']:g} ms: {verdict} "
                  f"({o['windows_breached']}/{state['windows']} windows over)")
    return out


def _memory_source(frames):
    """Cycle the in-memory frames forever (the stream's max_frames/duration ends it)."""
    import itertools

    from edgeflow.stream import IterableSource

    return lambda: IterableSource(itertools.cycle(frames), uri="memory://")


def _uri_source(uri):
    from edgeflow.sources import open_source

    return lambda: open_source(uri, loop=True) if _accepts_loop(uri) else open_source(uri)


def _accepts_loop(uri) -> bool:
    try:
        from edgeflow.sources import parse_uri

        return parse_uri(uri).kind in ("video", "images", "synthetic")
    except Exception:
        return False


def _require_matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from edgeflow.errors import EdgeflowError

        raise EdgeflowError("--plot needs matplotlib: pip install matplotlib (or drop --plot)") from None
    return plt


def plot_rows(rows, out) -> None:
    """Latency CDF (left) and histogram (right), one curve per row."""
    import numpy as np

    plt = _require_matplotlib()
    fig, (ax_cdf, ax_hist) = plt.subplots(1, 2, figsize=(12, 4.5))
    series = [(r, np.sort(np.asarray(r.latencies_ms, dtype=np.float64))) for r in rows if len(r.latencies_ms)]
    lo = max(min((x[0] for _, x in series), default=1.0), 1e-3)
    hi = max((x[-1] for _, x in series), default=1.0)
    log = hi > 20 * lo  # DIS rows are ~100x faster than a network: a log axis keeps both readable
    for r, x in series:
        label = f"{r.name} {r.path} {r.resolution}"
        ax_cdf.step(x, np.arange(1, x.size + 1) / x.size, where="post", label=label)
        bins = min(50, max(5, x.size // 4))
        if log:
            bins = np.geomspace(max(x[0], 1e-3), max(x[-1], x[0] * 1.01, 1.01e-3), bins + 1)
        ax_hist.hist(x, bins=bins, histtype="step", label=label)
    if log:
        ax_cdf.set_xscale("log")
        ax_hist.set_xscale("log")
    ax_cdf.set_xlabel("latency (ms)")
    ax_cdf.set_ylabel("fraction of iterations")
    ax_cdf.set_title("latency CDF")
    ax_cdf.grid(alpha=0.3)
    ax_hist.set_xlabel("latency (ms)")
    ax_hist.set_ylabel("iterations")
    ax_hist.set_title("latency histogram")
    ax_hist.grid(alpha=0.3)
    ax_cdf.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
