"""Does the stream deliver what the model can? Bare session vs model.infer loop vs stream, in one run.

    python benchmarks/bench_stream.py [ARTIFACT ...] [--configs auto,1,2] [--frames 60] [--rounds 3]
                                      [--paced-frames 30] [--json OUT]

For each artifact (default: the bundled model) and each thread configuration (``auto`` = the
thread budget's choice, ``N`` = ``--threads N``, ``N:on|off|run`` = with that spin mode), rows
alternated round by round (the host may be shared; alternating makes the ratios fair even when
absolute numbers drift):

``bare-ort``      the artifact's ``model.onnx`` in an ``onnxruntime.InferenceSession`` with
                  onnxruntime's defaults (no options at all), ``session.run`` back to back over
                  pre-decoded, pre-converted frame pairs: the yardstick the issue names.
``bare-ort-io``   the same session through IOBinding with a preallocated output
                  (``run_with_iobinding``): does binding pay on the CPU?
``bare-N``        the same graph with ``intra_op_num_threads = N`` (else defaults), per config.
``infer``         a pairwise ``model.infer(f1, f2)`` loop over pre-decoded frames (the model
                  loaded with the config's budget).
``stream``        ``edgeflow run``'s pipeline: ``edgeflow.Stream(model, clip.mp4)`` with its
                  defaults (feature caching when the artifact has the split, ``block`` policy),
                  decoding the H.264 file on its capture thread.
``stream-whole``  the same stream with ``cache_features=False`` (the whole-pair graph per pair):
                  ``stream`` / ``stream-whole`` is the stream's measured feature-caching gain, to
                  set beside the bound ``(2e + d) / (e + d)`` that ``edgeflow convert`` reports.
``paced``         the stream on a 10 fps (``--paced-fps``) H.264 file played at its rate (``--realtime``): the source
                  is slower than the model, so this row is about CPU, not fps: process CPU seconds
                  per delivered result (``cpu_s_per_frame``), against ``bare-ort``'s CPU seconds
                  per inference.

Throughput is results (pairs) per second of wall time over the whole loop (stream: start to
end), and CPU seconds per result from ``time.process_time()`` (all threads of this process).
Reported per row: median over rounds and every round. Ratios printed and written: stream /
bare-ort, stream / infer, paced CPU / bare-ort CPU per artifact and config, with the targets of
issue 20 (>= 0.90, >= 0.95, <= 1.2).

Run it under ``taskset -c 0`` / ``taskset -c 0,1`` to measure 1 and 2 usable cores: the budget
reads the affinity, so ``auto`` follows. Needs PyAV (libx264) and onnxruntime; never torch.
"""

from __future__ import annotations

import argparse
import json
import math
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

WIDTH, HEIGHT, FPS = 320, 240, 30
PACED_FPS = 10
TARGETS = {"stream_vs_bare_ort": 0.90, "stream_vs_infer": 0.95, "paced_cpu_vs_bare_cpu": 1.2}


def make_video(path: Path, frames: int, fps: int = FPS) -> dict:
    """Render synthetic frames and encode them as H.264; returns facts about the file."""
    import av

    from edgeflow.sources import open_source

    with open_source(f"synthetic://?width={WIDTH}&height={HEIGHT}&frames={frames}&seed=3") as src:
        images = [f.image for f in src]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "medium", "crf": "18"}
        for image in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        codec = stream.codec_context.name
    return {"path": str(path), "codec": codec, "frames": len(images), "fps": fps, "bytes": path.stat().st_size,
            "size": f"{WIDTH}x{HEIGHT}"}


def decode_all(path: Path) -> list:
    from edgeflow.sources import open_source

    with open_source(str(path)) as src:
        return [f.image for f in src]


def timed(fn) -> dict:
    """Run ``fn() -> results``; wall results/s and CPU s per result (all threads of this process)."""
    w0, c0 = time.perf_counter(), time.process_time()
    n = fn()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"fps": n / wall, "cpu_s_per_frame": cpu / n, "results": n}


def ort_session(path: Path, threads=None):
    import onnxruntime as ort

    opts = None
    if threads:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def bare(session, tensors):
    a, b = [i.name for i in session.get_inputs()][:2]

    def run():
        for i in range(1, len(tensors)):
            session.run(None, {a: tensors[i - 1], b: tensors[i]})
        return len(tensors) - 1
    return run


def bare_io(session, tensors):
    """IOBinding with inputs bound as numpy (zero copy on the CPU) and a preallocated output."""
    a, b = [i.name for i in session.get_inputs()][:2]
    out = session.get_outputs()[0].name
    shape = session.run(None, {a: tensors[0], b: tensors[1]})[0].shape
    buf = np.empty(shape, np.float32)
    binding = session.io_binding()
    binding.bind_output(out, "cpu", 0, np.float32, list(shape), buf.ctypes.data)

    def run(keep=buf):  # the bound output memory must outlive the binding
        for i in range(1, len(tensors)):
            binding.bind_cpu_input(a, tensors[i - 1])
            binding.bind_cpu_input(b, tensors[i])
            session.run_with_iobinding(binding)
        return len(tensors) - 1
    return run


def infer_loop(model, images):
    def run():
        for i in range(1, len(images)):
            model.infer(images[i - 1], images[i])
        return len(images) - 1
    return run


def stream_run(model, video: Path, reports: dict, key: str, **kw):
    from edgeflow.stream import Stream

    def run():
        n = 0
        stream = Stream(model, str(video), **kw)
        with stream:
            for _ in stream:
                n += 1
        reports[key] = stream.report.to_dict()
        return n
    return run


def parse_config(text: str) -> tuple:
    threads, _, spin = text.partition(":")
    return (None if threads == "auto" else int(threads)), (spin or "auto")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("artifacts", nargs="*", help="artifact directories (default: the bundled model)")
    p.add_argument("--configs", default="auto,1,2", help="thread configs: auto, N, N:on|off|run (default auto,1,2)")
    p.add_argument("--frames", type=int, default=60, help="frames in the 30 fps test clip (default 60)")
    p.add_argument("--paced-frames", type=int, default=30, help="frames of the paced clip (default 30: 3 s at 10 fps)")
    p.add_argument("--paced-fps", type=int, default=PACED_FPS,
                   help="rate of the paced clip (default 10; lower it where the model cannot keep up with 10 fps)")
    p.add_argument("--rows", default="all", help="comma list of row kinds to run (bare-ort,bare-ort-io,bare-N,infer,stream,stream-whole,paced)")
    p.add_argument("--rounds", type=int, default=3, help="alternated rounds (default 3)")
    p.add_argument("--no-bare-threads", action="store_true", help="skip the bare-N rows")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "bench_stream_threads.json"), help="JSON output")
    args = p.parse_args(argv)
    from edgeflow.model import default_artifact_path

    artifacts = [Path(a) for a in args.artifacts] or [Path(default_artifact_path())]
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    from edgeflow.budget import decide

    budget = decide()
    print(f"cores seen: {budget.cores_seen} (affinity {budget.affinity}, quota {budget.quota}); auto = "
          f"{budget.threads} threads, spinning {budget.spinning}; load {os.getloadavg()}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="bench_stream_") as tmp:
        video, paced = Path(tmp) / "clip.mp4", Path(tmp) / "clip10.mp4"
        video_info = make_video(video, args.frames)
        paced_info = make_video(paced, args.paced_frames, args.paced_fps)
        images = decode_all(video)
        jobs, models, reports = {}, [], {}
        for art in artifacts:
            try:
                probe = edgeflow.load(art)
            except EdgeflowError as err:
                print(f"bench_stream: {art}: {err}", file=sys.stderr)
                return 2
            tag = f"{probe.name}:{probe.artifact.precision}"
            geometry = probe.geometry(images[0])
            tensors = [geometry.to_network(im).copy() for im in images]
            graph = probe.artifact.graph("model")
            probe.close()
            sess = ort_session(graph)
            jobs[(tag, "-", "bare-ort")] = bare(sess, tensors)
            jobs[(tag, "-", "bare-ort-io")] = bare_io(sess, tensors)
            for cfg in configs:
                threads, spin = parse_config(cfg)
                model = edgeflow.load(art, threads=threads, spin=spin)
                models.append(model)
                if threads and not args.no_bare_threads:
                    jobs[(tag, cfg, f"bare-{threads}")] = bare(ort_session(graph, threads), tensors)
                jobs[(tag, cfg, "infer")] = infer_loop(model, images)
                jobs[(tag, cfg, "stream")] = stream_run(model, video, reports, f"{tag}|{cfg}|stream")
                if model.can_cache_features:
                    jobs[(tag, cfg, "stream-whole")] = stream_run(model, video, reports, f"{tag}|{cfg}|stream-whole",
                                                                  cache_features=False)
                jobs[(tag, cfg, "paced")] = stream_run(model, paced, reports, f"{tag}|{cfg}|paced",
                                                       source_options={"realtime": True})
        if args.rows != "all":
            keep = {r.strip() for r in args.rows.split(",")}
            jobs = {k: v for k, v in jobs.items() if k[2] in keep or (k[2].startswith("bare-") and "bare-N" in keep)
                    or k[2] == "bare-ort"}  # bare-ort always: every ratio is against it
        for fn in jobs.values():  # warm-up: arenas, kernel choice, page faults
            if fn.__qualname__.startswith(("bare", "infer")):
                fn()
        rows = {k: [] for k in jobs}
        order = list(jobs)
        load = [os.getloadavg()]
        for r in range(args.rounds):
            for key in (order if r % 2 == 0 else order[::-1]):
                print(f"round {r + 1}/{args.rounds}: {' '.join(key)} ...", file=sys.stderr, flush=True)
                rows[key].append(timed(jobs[key]))
            load.append(os.getloadavg())
        for m in models:
            m.close()

    med = {k: {f: statistics.median(x[f] for x in v) for f in ("fps", "cpu_s_per_frame")} for k, v in rows.items()}
    ratios = {}
    print()
    print(f"{'artifact':<22}{'config':<8}{'row':<13}{'fps':>8}{'cpu ms/res':>12}   fps per round")
    for key, v in rows.items():
        m = med[key]
        print(f"{key[0]:<22}{key[1]:<8}{key[2]:<13}{m['fps']:>8.2f}{1e3 * m['cpu_s_per_frame']:>12.1f}   "
              + " ".join(f"{x['fps']:.2f}" for x in v))
    print()
    for tag in dict.fromkeys(k[0] for k in rows):
        b = med[(tag, "-", "bare-ort")]
        for cfg in configs:
            nan = {"fps": float("nan"), "cpu_s_per_frame": float("nan")}
            s, i, pc, sw = (med.get((tag, cfg, k), nan) for k in ("stream", "infer", "paced", "stream-whole"))
            rep = reports.get(f"{tag}|{cfg}|stream") or reports.get(f"{tag}|{cfg}|paced") or {}
            r = {"stream_vs_bare_ort": s["fps"] / b["fps"], "stream_vs_infer": s["fps"] / i["fps"],
                 "infer_vs_bare_ort": i["fps"] / b["fps"],
                 "paced_cpu_vs_bare_cpu": pc["cpu_s_per_frame"] / b["cpu_s_per_frame"], "paced_fps": pc["fps"],
                 "caching_gain": s["fps"] / sw["fps"],
                 "threads": rep.get("threads"), "spinning": rep.get("spinning")}
            bt = med.get((tag, cfg, f"bare-{parse_config(cfg)[0]}"))
            if bt:
                r["stream_vs_bare_same_threads"] = s["fps"] / bt["fps"]
            ratios[f"{tag}|{cfg}"] = r
            ok = lambda k, v: ("ok" if (v <= TARGETS[k] if k.startswith("paced") else v >= TARGETS[k]) else "MISSED")  # noqa: E731
            print(f"{tag} [{cfg}: {r['threads']} threads, spinning {r['spinning']}]: "
                  f"stream/bare-ort {r['stream_vs_bare_ort']:.3f} ({ok('stream_vs_bare_ort', r['stream_vs_bare_ort'])}), "
                  f"stream/infer {r['stream_vs_infer']:.3f} ({ok('stream_vs_infer', r['stream_vs_infer'])}), "
                  f"paced CPU/bare CPU {r['paced_cpu_vs_bare_cpu']:.3f} "
                  f"({ok('paced_cpu_vs_bare_cpu', r['paced_cpu_vs_bare_cpu'])})"
                  + (f", stream/bare-same-threads {r['stream_vs_bare_same_threads']:.3f}" if bt else "")
                  + (f", caching gain stream/stream-whole {r['caching_gain']:.3f}" if not math.isnan(r["caching_gain"]) else ""))
        io = med.get((tag, "-", "bare-ort-io"))
        if io:
            print(f"{tag}: IOBinding vs session.run: {io['fps'] / b['fps']:.3f}x fps")
    doc = {
        "artifacts": [str(a) for a in artifacts], "configs": configs, "budget_auto": budget.to_dict(),
        "video": video_info, "paced_video": paced_info, "rounds": args.rounds,
        "rows": {"|".join(k): {**med[k], "rounds": v} for k, v in rows.items()},
        "ratios": ratios, "targets": TARGETS,
        "stream_reports": {k: {f: v.get(f) for f in ("threads", "spinning", "cores_seen", "thread_budget", "fps",
                                                     "cpu_s_per_frame", "cached", "frames", "end")}
                           for k, v in reports.items()},
        "load_avg": load,
        "host": {"cpu": _cpu(), "cores": os.cpu_count(), "affinity": sorted(os.sched_getaffinity(0)),
                 "machine": platform.machine(), "onnxruntime": _ort_version(), "numpy": np.__version__,
                 "edgeflow": edgeflow.__version__},
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"load average per round: {[round(x[0], 2) for x in load]}\njson: {out}")
    return 0


def _cpu() -> str:
    from edgeflow.monitoring.sysinfo import cpu_model

    return cpu_model()


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


if __name__ == "__main__":
    sys.exit(main())
