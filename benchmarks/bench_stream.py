"""Streaming-loop overhead and feature-caching gain, measured in one run on one encoded video.

    python benchmarks/bench_stream.py [ARTIFACT] [--frames 60] [--rounds 3] [--threads 1] [--json OUT]

What it does:

1. Renders ``--frames`` frames at 320x240 with ``synthetic://`` (moving real-photo textures) and
   encodes them as H.264 (libx264) into a temporary ``.mp4``: a real encoded file, decoded by the
   same video source users stream from.
2. Decodes that file once into memory and converts every frame to the network's input tensor.
3. Measures, interleaved over ``--rounds`` rounds (the machine may be shared; interleaving makes
   the ratios fair even when absolute numbers drift):

   ``bare``            ``session.run`` of the whole-pair graph over the pre-decoded, pre-converted
                       frames: the best a hand-written loop can do (no decode, no preprocessing).
   ``stream``          ``edgeflow.Stream`` on the .mp4 with the whole-pair graph
                       (``cache_features=False``): decode thread, hand-off queue, preprocessing,
                       inference, postprocessing, per-frame records and latency accounting.
   ``stream-cached``   the same with feature caching (encoder once per frame + decoder).
   ``bare-recompute``  encoder on both frames + decoder per pair, raw runner calls.
   ``bare-cached``     encoder on the new frame + decoder per pair, raw runner calls.

   Throughput is pairs (results) per second, stream start to last result for the stream rows,
   three ways: per second of wall time; per second of this process's CPU time (all threads,
   decode included; robust when other processes share the cores); and 1 / the median per-pair
   cycle time (for the stream: the median interval between results; robust to bursts of
   contention); plus ``best``, the quietest round's wall throughput. Reported per row: the
   median over rounds, and every round. For the stream rows it also reports the in-loop share of
   the cycle that is not inference (median inference vs median interval in the same run).
4. Prints a table and the two ratios the docs quote, and writes JSON:

   * overhead:   stream / bare                  (target >= 0.95)
   * caching:    stream-cached / stream         (target >= 1.4), and bare-cached / bare-recompute

Needs PyAV (with libx264) and onnxruntime; never torch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import edgeflow  # noqa: E402
from edgeflow.errors import EdgeflowError  # noqa: E402
from edgeflow.stream.pairs import decoder_plan  # noqa: E402

WIDTH, HEIGHT, FPS = 320, 240, 30


def make_video(path: Path, frames: int) -> dict:
    """Render synthetic frames and encode them as H.264; returns facts about the file."""
    import av

    from edgeflow.sources import open_source

    with open_source(f"synthetic://?width={WIDTH}&height={HEIGHT}&frames={frames}&seed=3") as src:
        images = [f.image for f in src]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "medium", "crf": "18"}
        for image in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        codec = stream.codec_context.name
    return {"path": str(path), "codec": codec, "frames": len(images), "bytes": path.stat().st_size,
            "size": f"{WIDTH}x{HEIGHT}"}


def decode_all(path: Path) -> list:
    from edgeflow.sources import open_source

    with open_source(str(path)) as src:
        return [f.image for f in src]


class Clock:
    """Wall time and this process's CPU time (all threads) over a block.

    CPU time is what the shared-host numbers lean on: other processes stealing the cores stretch
    wall time but not the CPU seconds this loop needed, and the stream's decode thread is
    included, so the stream pays for its decoding too.
    """

    def __enter__(self):
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0
        return False

    def rates(self, pairs: int, intervals_ms) -> dict:
        """pairs/s three ways: wall, CPU, and 1 / median per-pair cycle time (robust to bursts)."""
        return {"wall": pairs / self.wall, "cpu": pairs / self.cpu, "median": 1e3 / statistics.median(intervals_ms)}


def bare_loop(model, tensors) -> dict:
    """Raw ``session.run`` over consecutive pairs of ready tensors; returns pairs/s (wall, cpu)."""
    session = getattr(model.runner, "session", None)
    a, b = model.runner.input_names[:2]
    out = model.runner.output_names[:1]
    run = (lambda feed: session.run(out, feed)) if session is not None else model.runner.infer
    times = []
    with Clock() as clock:
        for i in range(1, len(tensors)):
            t0 = time.perf_counter()
            run({a: tensors[i - 1], b: tensors[i]})
            times.append((time.perf_counter() - t0) * 1e3)
    return clock.rates(len(tensors) - 1, times)


def split_loop(model, tensors, recompute: bool) -> dict:
    """Encoder + decoder with raw runner calls: recompute both frames' features, or cache them."""
    enc, dec = model.encoder, model.decoder
    enc_in = enc.input_names[0]
    plan = decoder_plan(dec.input_names, enc.output_names)

    def encode(x):
        return enc.infer({enc_in: x})

    times = []
    with Clock() as clock:
        prev = encode(tensors[0])
        for i in range(1, len(tensors)):
            t0 = time.perf_counter()
            if recompute:
                prev = encode(tensors[i - 1])
            cur = encode(tensors[i])
            pair = (prev, cur)
            dec.infer({name: pair[side][key] for name, side, key in plan})
            prev = cur
            times.append((time.perf_counter() - t0) * 1e3)
    return clock.rates(len(tensors) - 1, times)


def stream_loop(model, video: Path, cache: bool) -> tuple[dict, dict]:
    """The full streaming loop on the file: results/s from stream start to last result, and the report."""
    from edgeflow.stream import Stream

    n = 0
    with Clock() as clock:
        stream = Stream(model, str(video), cache_features=cache)
        with stream:
            for _ in stream:
                n += 1
    if stream.cached != cache:
        raise EdgeflowError("the artifact has no encoder/decoder split; re-run `edgeflow convert` (it exports them)")
    report = stream.report.to_dict()
    return clock.rates(n, [report["interval_ms"]["median"]]), report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("artifact", nargs="?", help="artifact directory (default: the bundled model)")
    p.add_argument("--frames", type=int, default=60, help="frames in the test video (default 60)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved measurement rounds (default 3)")
    p.add_argument("--threads", type=int, default=1,
                   help="onnxruntime intra-op threads (default 1: on a 2-core device the other core decodes)")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "bench_stream.json"), help="JSON output")
    args = p.parse_args(argv)

    try:
        model = edgeflow.load(args.artifact, threads=args.threads)
    except EdgeflowError as err:
        print(f"bench_stream: {err}\n  (no bundled model yet? make one: edgeflow convert pwc-lite --out /tmp/pwc-lite)",
              file=sys.stderr)
        return 2
    if not model.can_cache_features:
        print("bench_stream: the artifact has no encoder/decoder graphs; the caching rows need them", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="bench_stream_") as tmp:
        video = Path(tmp) / "clip.mp4"
        print(f"encoding {args.frames} frames {WIDTH}x{HEIGHT} to H.264 ...", file=sys.stderr, flush=True)
        video_info = make_video(video, args.frames)
        images = decode_all(video)
        geometry = model.geometry(images[0])
        tensors = [geometry.to_network(im) for im in images]

        # Warm-up: first runs allocate arenas and pick kernels; keep that out of every row.
        bare_loop(model, tensors[:3])
        split_loop(model, tensors[:3], recompute=False)

        rows = {k: [] for k in ("bare", "stream", "stream-cached", "bare-recompute", "bare-cached")}
        reports = {}
        for r in range(args.rounds):
            order = list(rows) if r % 2 == 0 else list(reversed(rows))
            for name in order:
                print(f"round {r + 1}/{args.rounds}: {name} ...", file=sys.stderr, flush=True)
                if name == "bare":
                    rows[name].append(bare_loop(model, tensors))
                elif name in ("stream", "stream-cached"):
                    rates, reports[name] = stream_loop(model, video, cache=name == "stream-cached")
                    rows[name].append(rates)
                elif name == "bare-recompute":
                    rows[name].append(split_loop(model, tensors, recompute=True))
                else:
                    rows[name].append(split_loop(model, tensors, recompute=False))

    clocks = ("wall", "cpu", "median", "best")
    for v in rows.values():  # best = the quietest round's wall throughput (timeit's min rule)
        best = max(r["wall"] for r in v)
        for r in v:
            r["best"] = best
    med = {clock: {k: statistics.median(r[clock] for r in v) for k, v in rows.items()} for clock in clocks}
    ratios = {
        clock: {
            "stream_vs_bare": m["stream"] / m["bare"],
            "stream_cached_vs_stream": m["stream-cached"] / m["stream"],
            "bare_cached_vs_bare_recompute": m["bare-cached"] / m["bare-recompute"],
            "stream_cached_vs_bare": m["stream-cached"] / m["bare"],
        }
        for clock, m in med.items()
    }
    print()
    print(f"artifact: {model.artifact.root} ({model.name}, {model.artifact.precision}), onnxruntime threads={args.threads}")
    print(f"video: {video_info['frames']} frames {video_info['size']} {video_info['codec']}, {video_info['bytes']} bytes; "
          f"{len(tensors) - 1} pairs per row, {args.rounds} rounds (median)")
    print(f"{'row':<16}{'wall':>9}{'cpu':>9}{'median':>9}{'best':>9}   pairs/s; wall per round")
    for k, v in rows.items():
        print(f"{k:<16}" + "".join(f"{med[c][k]:>9.2f}" for c in clocks) + "   " + " ".join(f"{r['wall']:.2f}" for r in v))
    print()
    for clock in clocks:
        r = ratios[clock]
        print(f"[{clock:>6}] streaming overhead: stream / bare           = {r['stream_vs_bare']:.3f}x  (target >= 0.95)")
        print(f"[{clock:>6}] feature caching:    stream-cached / stream  = {r['stream_cached_vs_stream']:.3f}x  (target >= 1.4)")
        print(f"[{clock:>6}]                     bare-cached / recompute = {r['bare_cached_vs_bare_recompute']:.3f}x")
    # In-loop overhead: within the same frames of one stream run, how much of the cycle between
    # results is not inference. Both are measured on the same frames under the same contention,
    # so this is the steadiest overhead figure on a shared host.
    in_loop = {}
    for name, rep in reports.items():
        inference, interval = rep["latency_ms"]["inference"]["median"], rep["interval_ms"]["median"]
        if inference and interval:
            in_loop[name] = {"inference_median_ms": inference, "interval_median_ms": interval,
                             "non_inference_share": 1 - inference / interval}
            print(f"in-loop ({name}): median inference {inference:.1f} ms of a median {interval:.1f} ms cycle: "
                  f"{100 * (1 - inference / interval):.1f}% is the pipeline (decode wait, pre/post-processing, records)")
    stages = reports.get("stream-cached", {}).get("latency_ms", {})
    bound = None
    if stages:
        enc, dec = stages["encode"]["median"], stages["decode"]["median"]
        bound = (2 * enc + dec) / (enc + dec)
        print(f"cached stage medians: encode {enc:.1f} ms, decode {dec:.1f} ms: caching saves one encode per pair, "
              f"so its gain is bounded by (2e + d) / (e + d) = {bound:.3f}x for this model")

    doc = {
        "artifact": str(model.artifact.root), "model": model.name, "precision": model.artifact.precision,
        "threads": args.threads, "video": video_info, "pairs_per_row": len(tensors) - 1, "rounds": args.rounds,
        "pairs_per_second": {k: {**{clock: med[clock][k] for clock in clocks}, "rounds": v} for k, v in rows.items()},
        "clocks": {"wall": "pairs / wall seconds of the whole loop (stream: start to last result)",
                   "cpu": "pairs / CPU seconds of this process, all threads (stream: decode thread included)",
                   "median": "1000 / median per-pair cycle time in ms (stream: median interval between results)",
                   "best": "the highest wall pairs/s over the rounds (the quietest round)"},
        "ratios": ratios, "caching_bound": bound, "in_loop": in_loop,
        "targets": {"stream_vs_bare": 0.95, "stream_cached_vs_stream": 1.4},
        "stream_reports": reports,
        "host": {"cpu": _cpu(), "cores": os.cpu_count(), "machine": platform.machine(),
                 "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None,
                 "onnxruntime": _ort_version(), "numpy": np.__version__, "edgeflow": edgeflow.__version__},
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"json: {out}")
    model.close()
    return 0


def _cpu() -> str:
    from edgeflow.sysinfo import cpu_model

    return cpu_model()


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


if __name__ == "__main__":
    sys.exit(main())
