"""Which standard-op body for edgeflow::Correlation does onnxruntime run fastest?

For each zoo model and resolution, the model is exported once, then each formulation's function
body is attached in turn. Per formulation we report, all in one run on this machine:
  - the model's median ``session.run`` latency (no profiling),
  - the correlation's share of the model's kernel time, from ORT's profiler (the body's nodes
    carry the ``edgeflow_correlation/`` name prefix, so inlined nodes are attributable),
  - the ONNX file size.
Quoted in docs/correlation.md. Usage:
  python benchmarks/bench_correlation_onnx.py [--models pwc-lite pwc] [--sizes 320x240 640x480]
      [--iterations 20] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from converters.export import attach_correlation_functions, export_onnx
from converters.ops.band_correlation import FORMULATION as BAND, use_band_bodies
from converters.ops.onnx_function import BODY_NODE_PREFIX, FORMULATIONS
from edgeflow.preprocess import padded_size

ALL_FORMULATIONS = (*FORMULATIONS, BAND)


def with_body(graph: onnx.ModelProto, formulation: str) -> onnx.ModelProto:
    """The graph with every Correlation node's function body replaced by ``formulation``'s."""
    if formulation == BAND:
        attach_correlation_functions(graph)
        use_band_bodies(graph)
    else:
        attach_correlation_functions(graph, formulation)
    return graph
from converters.zoo.registry import build_model


def session(path: Path, threads: int, profile_prefix: str | None = None) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    if profile_prefix:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def correlation_share(path: Path, feed: dict, threads: int, runs: int, workdir: Path) -> float:
    sess = session(path, threads, str(workdir / "profile"))
    for _ in range(runs):
        sess.run(None, feed)
    events = json.loads(Path(sess.end_profiling()).read_text())
    kernel = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    total = sum(e["dur"] for e in kernel)
    corr = sum(e["dur"] for e in kernel if BODY_NODE_PREFIX.rstrip("/") in e["name"])
    return corr / total if total else float("nan")


def median_latency_ms(path: Path, feed: dict, threads: int, iterations: int) -> float:
    sess = session(path, threads)
    for _ in range(3):
        sess.run(None, feed)
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["pwc-lite", "pwc"])
    p.add_argument("--sizes", nargs="+", default=["320x240", "640x480"])
    p.add_argument("--formulations", nargs="+", default=list(ALL_FORMULATIONS))
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in args.models:
            model = build_model(name).eval()
            m = model.pad_multiple
            for size in args.sizes:
                w, h = (int(v) for v in size.split("x"))
                hp, wp = padded_size(h, w, m)
                x1 = torch.rand(1, 3, hp, wp) * 255
                x2 = torch.roll(x1, shifts=(2, 3), dims=(2, 3))
                base = work / f"{name}-{size}.onnx"
                export_onnx(model, (x1, x2), base, ["frame1", "frame2"], ["flow"])
                feed = {"frame1": x1.numpy(), "frame2": x2.numpy()}
                reference = None
                for formulation in args.formulations:
                    graph = with_body(onnx.load(str(base)), formulation)
                    path = work / f"{name}-{size}-{formulation}.onnx"
                    onnx.save(graph, str(path))
                    out = session(path, args.threads).run(None, feed)[0]
                    reference = out if reference is None else reference
                    row = {
                        "model": name, "size": size, "formulation": formulation,
                        "median_ms": median_latency_ms(path, feed, args.threads, args.iterations),
                        "correlation_share": correlation_share(path, feed, args.threads, max(3, args.iterations // 4), work),
                        "file_mb": path.stat().st_size / 1e6,
                        "max_abs_diff_vs_first": float(np.abs(out - reference).max()),
                    }
                    rows.append(row)
                    print(f"{name:9s} {size:8s} {formulation:12s} {row['median_ms']:8.1f} ms  corr {100 * row['correlation_share']:5.1f}%  "
                          f"{row['file_mb']:6.2f} MB", flush=True)
    print()
    print("| model | size | formulation | median ms | correlation share | file MB |")
    print("|---|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['size']} | {r['formulation']} | {r['median_ms']:.1f} | {100 * r['correlation_share']:.1f}% | {r['file_mb']:.2f} |")
    meta = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "threads": args.threads,
            "onnxruntime": ort.__version__, "iterations": args.iterations}
    print(f"\n{meta}")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
