"""Score optical-flow methods on a data set: the loop behind ``edgeflow eval``.

A :class:`Method` is anything that maps two frames to a flow: an artifact run through the
runtime, an eager PyTorch model (host only, see :mod:`converters.eager`), or an OpenCV baseline
(:mod:`edgeflow.evaluation.baselines`). :func:`evaluate` runs every method on every pair of one
:class:`~edgeflow.datasets.Dataset` in the same pass, so all methods see identical inputs, and
returns an :class:`~edgeflow.evaluation.report.EvalReport` (tables, JSON).

Each pair is scored once per method with :func:`edgeflow.flow.flow_metrics` (definitions in
``docs/flow.md``); sequence, overall and highlight summaries are folded from those per-pair
results with :class:`~edgeflow.flow.FlowMetricsAggregator`, so they are exact sums over pixels.
Timing covers only the method call (pre/post-processing included, file decoding excluded); every
method first runs once untimed on the first pair so one-off start-up (session creation, memory
allocation, OpenCV thread pools) is not charged to a pair.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from edgeflow.datasets import Dataset, FlowPair, write_png
from edgeflow.errors import InputError
from edgeflow.evaluation.report import EvalReport
from edgeflow.flow import end_point_error, error_to_color, flow_metrics, flow_to_color, side_by_side


@dataclass
class Method:
    """A named flow estimator: ``infer(frame1, frame2) -> HxWx2 float32``.

    ``kind`` is "artifact", "model" (eager PyTorch), "baseline" or "callable"; ``info`` is free-form
    provenance for the JSON report (artifact path, precision, source file, ...).
    """

    name: str
    kind: str
    infer: Callable[[np.ndarray, np.ndarray], np.ndarray]
    info: dict = field(default_factory=dict)
    close: Callable[[], None] | None = None


def artifact_method(path=None, threads: int | None = None, backend: str = "auto") -> Method:
    """An artifact directory (``None``: the bundled default) run through :meth:`FlowModel.load`
    (what :func:`edgeflow.load` calls; imported from its module, not from the package above)."""
    from edgeflow.model import FlowModel

    model = FlowModel.load(path, threads=threads, backend=backend)
    info = {"artifact": str(model.artifact.root), "precision": model.artifact.precision,
            "backend": model.backend, "arch": model.artifact.manifest.get("model", {}).get("arch")}
    return Method(model.name, "artifact", model.infer, info, model.close)


def baseline_method(name: str) -> Method:
    from edgeflow.evaluation.baselines import Baseline

    baseline = Baseline(name)
    return Method(name, "baseline", baseline, {"description": baseline.description})


def _unique_names(methods: list[Method]) -> None:
    seen: dict[str, int] = {}
    for method in methods:
        count = seen.get(method.name, 0)
        seen[method.name] = count + 1
        if count:
            method.name = f"{method.name}#{count + 1}"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "pair"


def vis_panel(pair: FlowPair, pred: np.ndarray, method: str) -> np.ndarray:
    """frame1 | estimate | ground truth | error map, estimate and GT on the same colour scale."""
    gt_mag = np.hypot(pair.flow[..., 0], pair.flow[..., 1])[pair.valid]
    max_flow = float(gt_mag.max()) if gt_mag.size and gt_mag.max() > 0 else None
    epe = end_point_error(pred, pair.flow)
    mean = float(epe[pair.valid].mean()) if pair.valid.any() else float("nan")
    panels = [pair.frame1, flow_to_color(pred, max_flow=max_flow),
              flow_to_color(pair.flow, max_flow=max_flow, valid=pair.valid), error_to_color(epe, pair.valid)]
    labels = ["frame1", method, "ground truth", f"error  EPE {mean:.2f}"]
    return side_by_side(panels, labels)


def vis_path(vis_dir: Path, pair: FlowPair, method: str) -> Path:
    return Path(vis_dir) / _safe(pair.sequence) / f"{_safe(pair.name)}.{_safe(method)}.png"


def _check_prediction(pred, pair: FlowPair, method: Method) -> np.ndarray:
    pred = np.asarray(pred)
    if pred.shape != pair.flow.shape:
        raise InputError(
            f"{method.name} returned flow of shape {pred.shape} for {pair.key}, expected {pair.flow.shape} (HxWx2)"
        )
    return pred.astype(np.float32, copy=False)


def evaluate(dataset: Dataset, methods: Iterable[Method], max_pairs: int | None = None,
             vis_dir=None, progress: Callable[[int, int, str], None] | None = None,
             data_label: str | None = None) -> EvalReport:
    """Run every method on every pair (the first ``max_pairs``) and score it against ground truth."""
    methods = list(methods)
    if not methods:
        raise InputError("nothing to evaluate: give a model or artifact, or --baseline")
    _unique_names(methods)
    if max_pairs is not None and max_pairs < 1:
        raise InputError(f"--max-pairs must be at least 1, got {max_pairs}")
    dataset = dataset.head(max_pairs)
    report = EvalReport(dataset, methods, data_label=data_label)
    total = len(dataset)
    for index, pair in enumerate(dataset):
        if progress is not None:
            progress(index, total, pair.key)
        results = {}
        for method in methods:
            if index == 0:
                method.infer(pair.frame1, pair.frame2)  # warm-up, untimed
            start = time.perf_counter()
            pred = method.infer(pair.frame1, pair.frame2)
            elapsed_ms = (time.perf_counter() - start) * 1e3
            pred = _check_prediction(pred, pair, method)
            results[method.name] = {**flow_metrics(pred, pair.flow, pair.valid), "ms": elapsed_ms}
            if vis_dir is not None:
                write_png(vis_path(vis_dir, pair, method.name), vis_panel(pair, pred, method.name))
        report.add_pair(pair, results)
    if progress is not None:
        progress(total, total, "")
    return report
