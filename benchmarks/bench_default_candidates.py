"""Issue 14: the default-model candidates side by side, all latencies measured in ONE run.

For each candidate (a zoo name or a trained checkpoint) it converts an FP32 artifact (with the
encoder / decoder split) and, with ``--int8``, an INT8 one, through the same ``ConvertJob`` that
``edgeflow convert`` runs. Then, in this one process:

* params and GMACs at the deployed size (320x240 padded to the model's multiple);
* FP32 and INT8 onnxruntime latency: every ``model.onnx`` timed round-robin (one call of each per
  round, ``--iterations`` rounds, ``--threads`` intra-op threads), so a busy host slows all alike;
* the encoder share and the feature-caching bound ``(2e + d) / (e + d)`` from ``encoder.onnx`` /
  ``decoder.onnx`` (:func:`converters.caching.caching_estimate`);
* mean EPE (per pair) of the FP32 and INT8 artifacts on the built-in and the unseen set.

    python benchmarks/bench_default_candidates.py pwc-lite=runs/candidates/pwc-lite/model.pt \\
        neuflow-lite=runs/candidates/neuflow-lite/model.pt ... [--int8] [--iterations 30] \\
        [--json out.json] [--markdown out.md]

The first candidate is the reference for the latency ratio column. ``uptime`` load average is
recorded before and after: on a shared host, compare ratios, not absolute milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def convert(spec: str, out: Path, int8: bool) -> dict:
    from converters.convert import CheckOptions, ConvertJob, ConvertOptions
    from converters.quantize.pipeline import QuantizeRequest

    try:
        result = ConvertJob(ConvertOptions(model=spec, out=out, quantize=QuantizeRequest(int8=int8),
                                           check=CheckOptions(latency_iterations=3))).run()
        return {"path": str(out), "valid": result.valid}
    except Exception as err:  # the report says why a variant is missing instead of dying
        return {"path": str(out), "valid": False, "error": str(err).splitlines()[0]}


def complexity(spec: str, height: int, width: int) -> dict:
    from converters.load import load_model
    from converters.zoo.complexity import count_macs, count_parameters

    loaded = load_model(spec)
    module, multiple = loaded.module.eval(), int(loaded.pad_multiple or 32)
    h, w = -(-height // multiple) * multiple, -(-width // multiple) * multiple
    encoder_macs = 0
    if hasattr(module, "encoder"):
        from torch import nn

        class _Twice(nn.Module):  # count the encoder alone on two frames
            def __init__(self, encoder):
                super().__init__()
                self.encoder = encoder

            def forward(self, a, b):
                return self.encoder(a), self.encoder(b)

        encoder_macs = count_macs(_Twice(module.encoder), h, w)["total"]
    total = count_macs(module, h, w)["total"]
    return {"params": count_parameters(module), "gmacs": total / 1e9, "encoder_gmacs_pair": encoder_macs / 1e9,
            "pad_multiple": multiple, "net_size": [h, w]}


def feed_for(path: Path, height: int, width: int, seed: int = 0) -> dict:
    from edgeflow.backends.onnxruntime import OnnxRuntimeRunner, SessionLoader
    from edgeflow.preprocess import plan_geometry

    manifest = json.loads((path.parent / "manifest.json").read_text())
    multiple = int(manifest["preprocessing"]["pad_multiple"])
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(2)]
    geo = plan_geometry((height, width), (1, 3, None, None), multiple)
    names = OnnxRuntimeRunner(SessionLoader(path, optimization="none")).input_names
    return dict(zip(names, [geo.to_network(f) for f in frames]))


def round_robin(paths: dict[str, Path], height: int, width: int, iterations: int, threads: int) -> dict:
    from edgeflow.backends.onnxruntime import OnnxRuntimeRunner, SessionLoader

    runners = {name: OnnxRuntimeRunner(SessionLoader(path, threads=threads)) for name, path in paths.items()}
    feeds = {name: feed_for(path, height, width) for name, path in paths.items()}
    for name, runner in runners.items():
        for _ in range(2):
            runner.infer(feeds[name])
    times = {name: [] for name in runners}
    for _ in range(iterations):
        for name, runner in runners.items():
            start = time.perf_counter()
            runner.infer(feeds[name])
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: {"median_ms": statistics.median(v), "min_ms": min(v)} for name, v in times.items()}


def mean_epe(artifact: Path, pairs) -> dict:
    import edgeflow

    model = edgeflow.load(str(artifact), threads=1)
    values = {}
    for pair in pairs:
        flow = model.infer(pair.frame1, pair.frame2)
        err = np.sqrt(((flow - pair.flow) ** 2).sum(-1))
        values[pair.name] = float(err[pair.valid].mean())
    values["mean"] = float(np.mean(list(values.values())))
    return values


def caching(artifact: Path, height: int, width: int, threads: int, iterations: int) -> dict:
    from converters.caching import caching_estimate

    feed = list(feed_for(artifact / "model.onnx", height, width).values())
    return caching_estimate(artifact / "model.onnx", artifact / "encoder.onnx", artifact / "decoder.onnx", feed[0], feed[1],
                            iterations=iterations, threads=threads)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidates", nargs="+", help="NAME=ZOO_NAME_OR_CHECKPOINT; the first is the reference")
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--int8", action="store_true", help="also convert and time INT8 artifacts")
    parser.add_argument("--no-epe", action="store_true", help="skip the EPE evaluation")
    parser.add_argument("--out", type=Path, default=Path("out/bench_default"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    specs = dict(item.split("=", 1) if "=" in item else (Path(item).stem, item) for item in args.candidates)
    rows = {}
    for name, spec in specs.items():
        print(f"converting {name} ({spec})", flush=True)
        row = {"spec": spec, **complexity(spec, args.height, args.width)}
        row["fp32"] = convert(spec, args.out / f"{name}-fp32", False)
        if not row["fp32"]["valid"]:
            print(f"  FP32 conversion failed: {row['fp32'].get('error')}", flush=True)
        if args.int8:
            row["int8"] = convert(spec, args.out / f"{name}-int8", True)
        rows[name] = row
    graphs = {}
    for name, row in rows.items():
        for precision in ("fp32", "int8"):
            if row.get(precision, {}).get("valid"):
                graphs[f"{name}/{precision}"] = Path(row[precision]["path"]) / "model.onnx"
    print(f"timing {len(graphs)} graphs round-robin, {args.iterations} rounds", flush=True)
    latency = round_robin(graphs, args.height, args.width, args.iterations, args.threads)
    for key, value in latency.items():
        name, precision = key.split("/")
        rows[name][precision].update(value)
    for name, row in rows.items():
        if row["fp32"].get("valid"):
            row["caching"] = caching(Path(row["fp32"]["path"]), args.height, args.width, args.threads, args.iterations)
    if not args.no_epe:
        from edgeflow.synthetic import builtin_eval_set
        from edgeflow.synthetic.unseen_eval import unseen_eval_set

        sets = {"builtin": builtin_eval_set(), "unseen": unseen_eval_set()}
        for name, row in rows.items():
            for precision in ("fp32", "int8"):
                if row.get(precision, {}).get("valid"):
                    row[precision]["epe"] = {k: mean_epe(Path(row[precision]["path"]), v) for k, v in sets.items()}
    reference = next(iter(rows.values()))["fp32"].get("median_ms")
    result = {"host": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "threads": args.threads,
              "size": [args.height, args.width], "iterations": args.iterations,
              "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "candidates": rows}
    table = markdown(result, reference)
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    if args.markdown:
        args.markdown.write_text(table + "\n")
    return 0


def markdown(result: dict, reference) -> str:
    def fmt(value, spec=".2f"):
        return "n/a" if value is None else format(value, spec)

    lines = ["| model | params | GMACs | FP32 ms | x pwc-lite | INT8 ms | encoder share | caching bound | "
             "built-in EPE FP32 / INT8 | unseen EPE FP32 / INT8 |", "|---" * 10 + "|"]
    for name, row in result["candidates"].items():
        fp32, int8, cache = row["fp32"], row.get("int8", {}), row.get("caching", {})
        ratio = fp32.get("median_ms") / reference if reference and fp32.get("median_ms") else None
        epe = {p: row.get(p, {}).get("epe", {}) for p in ("fp32", "int8")}

        def pair(kind):
            return f"{fmt(epe['fp32'].get(kind, {}).get('mean'))} / {fmt(epe['int8'].get(kind, {}).get('mean'))}"

        lines.append(f"| {name} | {row['params'] / 1e6:.2f} M | {row['gmacs']:.2f} | {fmt(fp32.get('median_ms'), '.1f')} | "
                     f"{fmt(ratio)} | {fmt(int8.get('median_ms'), '.1f')} | {fmt(cache.get('encoder_share'), '.0%')} | "
                     f"{fmt(cache.get('gain_bound'))} | {pair('builtin')} | {pair('unseen')} |")
    lines.append(f"\nonnxruntime CPU, {result['threads']} thread(s), {result['size'][1]}x{result['size'][0]}, "
                 f"{result['iterations']} round-robin rounds on {result['host']} ({result['cpus']} CPUs); load average "
                 f"{result['loadavg_before'][0]:.1f} before, {result['loadavg_after'][0]:.1f} after.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
