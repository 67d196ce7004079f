"""Measurement rows for ``edgeflow bench`` and ``benchmarks/``: one function per thing measured.

Every row is timed the same way (``time.perf_counter`` around each iteration after ``warmup``
untimed ones) and summarised with :class:`~edgeflow.monitoring.latency.LatencyStats` (trtexec-style
min/median/mean/p90/p95/p99/max). ``throughput`` is iterations divided by the wall time of the
timed loop, so it includes everything between iterations, as trtexec's does.

Rows:

* ``infer``: the whole-pair graph, raw ``runner.infer`` on ready tensors (no pre/post-processing).
* ``infer-cached``: what one new frame costs with feature caching (``encoder`` on the new frame +
  ``decoder`` on the cached and new features), raw runner calls.
* ``stream``: the full :class:`~edgeflow.stream.Stream` loop (capture thread, hand-off,
  preprocessing, inference, postprocessing, records). Its latency is the per-frame service time,
  hand-off pick-up to result (end-to-end minus ``wait``): frames from memory or a file are
  "captured" whenever the capture thread gets to them, so time spent queued says nothing about
  the pipeline. The end-to-end statistics are kept in the row's ``end_to_end_ms``.
* ``dis-ultrafast`` / ``dis-medium``: OpenCV DIS optical flow on the same frames, as a
  classical reference (grey conversion of the new frame included).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from edgeflow.monitoring.latency import LatencyStats


@dataclass
class BenchRow:
    name: str  # artifact or method
    path: str  # infer | infer-cached | stream | dis-ultrafast | dis-medium
    resolution: str  # WxH
    latencies_ms: list
    wall_s: float
    unit: str = "pairs/s"
    extra: dict = field(default_factory=dict)

    @property
    def stats(self) -> LatencyStats:
        return LatencyStats.from_samples(self.latencies_ms)

    @property
    def throughput(self) -> float:
        n = len(self.latencies_ms)
        return n / self.wall_s if self.wall_s > 0 and n else float("nan")

    def to_dict(self, with_samples: bool = True) -> dict:
        d = {"name": self.name, "path": self.path, "resolution": self.resolution, "stats_ms": self.stats.to_dict(),
             "throughput": self.throughput, "unit": self.unit, **self.extra}
        if with_samples:
            d["latencies_ms"] = [round(v, 4) for v in self.latencies_ms]
        return d


def bench_frames(width: int, height: int, count: int, seed: int = 0, step: int = 2) -> list:
    """``count`` RGB frames of a smooth random texture translating ``step`` px/frame (realistic
    enough for timing: flow networks' cost does not depend on content)."""
    from edgeflow.preprocess import resize_bilinear

    rng = np.random.default_rng(seed)
    span = width + step * count
    coarse = rng.integers(0, 256, size=(max(2, height // 8), max(2, span // 8), 3)).astype(np.float32)
    texture = np.clip(resize_bilinear(coarse, height, span), 0, 255).astype(np.uint8)
    return [np.ascontiguousarray(texture[:, i * step : i * step + width]) for i in range(count)]


def time_loop(fn: Callable[[int], None], warmup: int, iterations: Optional[int], duration: Optional[float]):
    """Call ``fn(i)`` ``warmup`` times untimed, then ``iterations`` times (or for ``duration``
    seconds); returns (per-call ms, wall seconds of the timed loop)."""
    for i in range(warmup):
        fn(i)
    times = []
    start = time.perf_counter()
    i = warmup
    while True:
        if iterations is not None and len(times) >= iterations:
            break
        if duration is not None and time.perf_counter() - start >= duration:
            break
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1e3)
        i += 1
    return times, time.perf_counter() - start


def infer_row(model, frames, warmup, iterations, duration, resolution: str) -> BenchRow:
    geo = model.geometry(frames[0])
    tensors = [geo.to_network(f) for f in frames]
    n = len(tensors)

    def step(i):
        model.infer_network(tensors[i % (n - 1)], tensors[i % (n - 1) + 1])

    times, wall = time_loop(step, warmup, iterations, duration)
    return BenchRow(model.name, "infer", resolution, times, wall)


def cached_row(model, frames, warmup, iterations, duration, resolution: str) -> Optional[BenchRow]:
    if not model.can_cache_features:
        return None
    geo = model.geometry(frames[0])
    tensors = [geo.to_network(f) for f in frames]
    state = {"prev": model.encode_network(tensors[0])}

    def step(i):
        feats = model.encode_network(tensors[(i + 1) % len(tensors)])
        model.decode_network(state["prev"], feats)
        state["prev"] = feats

    times, wall = time_loop(step, warmup, iterations, duration)
    return BenchRow(model.name, "infer-cached", resolution, times, wall)


def stream_row(model, source_factory: Callable, warmup: int, iterations: Optional[int], duration: Optional[float],
               resolution: str, cache_features: bool = True) -> BenchRow:
    """Run a :class:`Stream` over ``source_factory()``; the first ``warmup`` results are not counted."""
    from edgeflow.stream import Stream

    lat, stamps = [], []

    def collect(record):
        if record.status == "result":
            lat.append((record.end_to_end - record.stages.get("wait", 0.0)) * 1e3)
            stamps.append(record.result_ts)

    from edgeflow.sinks.callback import CallbackSink

    # frame 0 is the chain's reference; results 1..warmup+1 are warm-up and the clock starts at
    # the last of them, so `iterations` results are timed over `iterations` intervals.
    max_frames = None if iterations is None else warmup + iterations + 2
    total = None if duration is None else duration
    stream = Stream(model, source_factory(), cache_features=cache_features, max_frames=max_frames, duration=total,
                    sinks=[CallbackSink(lambda r: None, on_record=collect)])
    report = stream.run()
    # Drop warm-up results, keep measuring wall time from the last warm-up result.
    if len(stamps) > warmup + 1:
        wall = stamps[-1] - stamps[warmup]
        kept = lat[warmup + 1 :]
    else:
        wall, kept = (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0, lat[1:]
    stages = {k: v.median for k, v in report.stages.items() if v.count}
    path = "stream" if stream.cached or not model.can_cache_features else "stream-nocache"
    return BenchRow(model.name, path, resolution, kept, wall, unit="fps",
                    extra={"stage_median_ms": stages, "end_to_end_ms": report.latency.to_dict(),
                           "dropped": report.frames["dropped"], "cached": stream.cached, "source": report.meta.get("source")})


def dis_rows(frames, warmup, iterations, duration, resolution: str, threads: Optional[int] = None) -> list:
    """OpenCV DIS (ULTRAFAST, MEDIUM) on the same frames; empty when OpenCV is missing."""
    try:
        import cv2
    except ImportError:
        return []
    if threads:
        cv2.setNumThreads(int(threads))
    rows = []
    for label, preset in (("dis-ultrafast", cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST), ("dis-medium", cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)):
        dis = cv2.DISOpticalFlow_create(preset)
        state = {"prev": cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)}

        def step(i, dis=dis, state=state):
            gray = cv2.cvtColor(frames[(i + 1) % len(frames)], cv2.COLOR_RGB2GRAY)
            dis.calc(state["prev"], gray, None)
            state["prev"] = gray

        times, wall = time_loop(step, warmup, iterations, duration)
        rows.append(BenchRow("opencv", label, resolution, times, wall))
    return rows


def format_table(rows: list) -> str:
    head = f"{'model':<16}{'path':<15}{'size':>9}{'n':>6}" + "".join(
        f"{k:>9}" for k in ("min", "median", "mean", "p90", "p95", "p99", "max")) + f"{'throughput':>16}"
    lines = [head, "-" * len(head)]
    for r in rows:
        s = r.stats
        lines.append(f"{r.name[:15]:<16}{r.path:<15}{r.resolution:>9}{s.count:>6}" + "".join(
            f"{getattr(s, k):>9.2f}" for k in ("min", "median", "mean", "p90", "p95", "p99", "max"))
            + f"{r.throughput:>10.1f} {r.unit:<5}")
    lines.append("latency in ms (percentiles: linear interpolation, numpy default); stream: pick-up to result per frame")
    return "\n".join(lines)
