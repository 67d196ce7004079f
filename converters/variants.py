"""The conversion report's rows: every produced graph, measured the same way in one place.

A convert can produce several graphs of one model (FP32, pruned FP32, FP16, INT8 for the CPU,
INT8 for TensorRT). Each row gets: file size, parameters and GMACs (of the PyTorch module it came
from, at the artifact's padded resolution), onnxruntime CPU latency (median, p95) and EPE
against the FP32 graph it derives from and against ground truth on the validation pairs.

Latency is measured round-robin (one run of each graph in turn, repeated), not graph after
graph: on a shared or thermally throttling CPU a sequential measurement favours whichever graph
ran in the quiet minute; interleaving exposes every graph to the same conditions, so the ratios
between rows are trustworthy even when absolute numbers move.
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Variant:
    name: str  # row label: fp32, fp32-pruned, fp16, int8, int8-trt
    precision: str
    path: Path
    module: object = None  # torch module for params / MACs (None: same as reference)
    reference: str | None = None  # variant whose flows "EPE vs FP32" compares against
    latency: bool = True  # False for graphs meant for another runtime (the TensorRT-bound QDQ)
    file: str | None = None  # name inside the artifact, when stored
    extra: dict = field(default_factory=dict)


def complexity(module, height: int, width: int) -> dict:
    from converters.zoo.complexity import count_macs, count_parameters

    try:
        macs = count_macs(module, height, width)["total"]
    except Exception:  # modules without the zoo's hooks (TorchScript, export programs)
        macs = None
    return {"params_m": count_parameters(module) / 1e6, "gmacs": macs / 1e9 if macs else None}


def _percentile(sorted_times: list[float], q: float) -> float:
    return sorted_times[min(len(sorted_times) - 1, int(round(q * (len(sorted_times) - 1))))]


def interleaved_latency(paths: dict[str, Path], feed: dict, iterations: int, threads: int | None = None,
                        warmup: int = 2) -> dict[str, dict]:
    """{name: {median_ms, p95_ms, min_ms, iterations}} for each graph, measured round-robin."""
    from edgeflow.backends.onnxruntime import OnnxRuntimeRunner, SessionLoader
    from edgeflow.console import progress_bar

    runners = {name: OnnxRuntimeRunner(SessionLoader(path, threads=threads)) for name, path in paths.items()}
    for runner in runners.values():
        for _ in range(warmup):
            runner.infer(feed)
    times = {name: [] for name in runners}
    rounds = max(iterations, 1)
    for _ in progress_bar(range(rounds), rounds, "latency rounds"):  # drawn between rounds, never timed
        for name, runner in runners.items():
            start = time.perf_counter()
            runner.infer(feed)
            times[name].append((time.perf_counter() - start) * 1e3)
    out = {}
    for name, values in times.items():
        values.sort()
        out[name] = {"backend": "onnxruntime-cpu", "median_ms": statistics.median(values), "p95_ms": _percentile(values, 0.95),
                     "min_ms": values[0], "iterations": len(values), "threads": threads,
                     "cpu": platform.processor() or platform.machine()}
    return out


def measure_variants(variants: list[Variant], evaluator, height: int, width: int, pad_multiple: int,
                     iterations: int, threads: int | None = None) -> list[dict]:
    """One report row (a dict) per variant; see the module docstring."""
    from edgeflow.preprocess import padded_size, plan_geometry

    net_h, net_w = padded_size(height, width, pad_multiple)
    flows = {v.name: evaluator.flows(v.path) for v in variants}
    pair = evaluator.pairs[0]
    geo = plan_geometry(pair.frame1.shape[:2], (1, 3, None, None), pad_multiple)
    feed_values = [geo.to_network(pair.frame1), geo.to_network(pair.frame2)]
    timed = [v for v in variants if v.latency]
    latency = {}
    if timed:
        from edgeflow.backends.onnxruntime import OnnxRuntimeRunner, SessionLoader

        names = OnnxRuntimeRunner(SessionLoader(timed[0].path, optimization="none")).input_names
        latency = interleaved_latency({v.name: v.path for v in timed}, dict(zip(names, feed_values)), iterations, threads)
    rows, by_name = [], {v.name: v for v in variants}
    for v in variants:
        module = v.module
        ref = by_name.get(v.reference) if v.reference else None
        while module is None and ref is not None:  # quantized graphs: the module they came from
            module, ref = ref.module, by_name.get(ref.reference) if ref.reference else None
        score = evaluator.score(flows[v.name], flows[v.reference] if v.reference else None)
        row = {
            "name": v.name,
            "precision": v.precision,
            "file": v.file,
            "size_mb": Path(v.path).stat().st_size / 1e6,
            **(complexity(module, net_h, net_w) if module is not None else {"params_m": None, "gmacs": None}),
            "latency": latency.get(v.name),
            "epe_vs_fp32": score.get("epe_vs_fp32"),
            "epe_vs_gt": score["epe_vs_gt"],
            "reference": v.reference,
            "validation_pairs": score["pairs"],
            **v.extra,
        }
        rows.append(row)
    base = next((r for r in rows if r["name"] == "fp32" and r["latency"]), None)
    for row in rows:
        if base and row["latency"]:
            row["latency_vs_fp32"] = row["latency"]["median_ms"] / base["latency"]["median_ms"]
    return rows


def epe_vs_gt_change(rows: list[dict], name: str, reference: str = "fp32") -> float | None:
    """Relative change of EPE vs GT of ``name`` against ``reference`` (0.05 = 5 % worse)."""
    by = {r["name"]: r for r in rows}
    if name not in by or reference not in by or not by[reference]["epe_vs_gt"]:
        return None
    return by[name]["epe_vs_gt"] / by[reference]["epe_vs_gt"] - 1.0


__all__ = ["Variant", "complexity", "interleaved_latency", "measure_variants", "epe_vs_gt_change"]
