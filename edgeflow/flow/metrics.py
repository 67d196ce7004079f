"""Optical-flow accuracy metrics, with the definitions the Sintel and KITTI benchmarks use.

Per pair: ``epe`` (mean end-point error over valid pixels), ``1px``/``3px``/``5px`` (percentage of
valid pixels with EPE below 1/3/5 px), ``fl_all`` (KITTI Fl-all: percentage of valid pixels whose
EPE exceeds both 3 px and 5 % of the ground-truth magnitude) and ``n_valid``.

Over a data set the two usual averages differ, so :class:`FlowMetricsAggregator` reports both:
per-pixel (every valid pixel of the data set weighs the same, as KITTI's Fl-all does) and per-pair
(every image pair weighs the same, as most RAFT-style evaluation scripts do for EPE).
"""

from __future__ import annotations

import math

import numpy as np

from edgeflow.errors import InputError

THRESHOLDS = (1, 3, 5)
METRIC_KEYS = ("epe", "1px", "3px", "5px", "fl_all")
UNKNOWN_FLOW_THRESHOLD = 1e9


def _check_flow(flow, what: str) -> np.ndarray:
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        hint = " (transpose 2xHxW to HxWx2)" if flow.ndim == 3 and flow.shape[0] == 2 else ""
        raise InputError(f"{what} must be an HxWx2 array of (u, v), got shape {flow.shape}{hint}")
    if not np.issubdtype(flow.dtype, np.number) or np.iscomplexobj(flow):
        raise InputError(f"{what} must be a real numeric array, got dtype {flow.dtype}")
    return flow.astype(np.float64)


def end_point_error(pred, gt) -> np.ndarray:
    """Per-pixel Euclidean distance between predicted and ground-truth flow (HxW float64)."""
    pred, gt = _check_flow(pred, "pred"), _check_flow(gt, "gt")
    if pred.shape != gt.shape:
        raise InputError(
            f"pred has shape {pred.shape} but gt has shape {gt.shape}; resize pred to gt"
        )
    return np.hypot(pred[:, :, 0] - gt[:, :, 0], pred[:, :, 1] - gt[:, :, 1])


def _valid_mask(gt: np.ndarray, valid) -> np.ndarray:
    """Valid = the caller's mask AND a finite, known (< 1e9, Middlebury) ground truth."""
    ok = np.all(np.isfinite(gt) & (np.abs(gt) < UNKNOWN_FLOW_THRESHOLD), axis=2)
    if valid is not None:
        valid = np.asarray(valid)
        if valid.shape != gt.shape[:2]:
            raise InputError(f"valid mask must have shape {gt.shape[:2]}, got {valid.shape}")
        ok &= valid != 0
    return ok


def flow_counts(pred, gt, valid=None) -> dict:
    """Sufficient statistics of one pair: sums and counts that add up across pairs exactly."""
    epe = end_point_error(pred, gt)
    gt = np.asarray(gt, dtype=np.float64)
    ok = _valid_mask(gt, valid)
    # A NaN/inf prediction at a valid pixel is an infinitely wrong pixel, not a missing one.
    e = np.where(np.isnan(epe), np.inf, epe)[ok]
    mag = np.hypot(gt[:, :, 0], gt[:, :, 1])[ok]
    counts = {
        "n_valid": int(e.size),
        "epe_sum": float(e.sum()),
        "outliers": int(np.count_nonzero((e > 3.0) & (e > 0.05 * mag))),
    }
    for t in THRESHOLDS:
        counts[f"below_{t}px"] = int(np.count_nonzero(e < t))
    return counts


def _metrics_from_counts(c: dict) -> dict:
    n = c["n_valid"]
    if n == 0:
        return {**{k: math.nan for k in METRIC_KEYS}, "n_valid": 0}
    out = {"epe": c["epe_sum"] / n}
    for t in THRESHOLDS:
        out[f"{t}px"] = 100.0 * c[f"below_{t}px"] / n
    out["fl_all"] = 100.0 * c["outliers"] / n
    out["n_valid"] = n
    return out


def flow_metrics(pred, gt, valid=None) -> dict:
    """Metrics of one predicted flow against ground truth (both HxWx2, pixels).

    Returns ``{"epe", "1px", "3px", "5px", "fl_all", "n_valid"}``; percentages are 0-100. Pixels
    count when ``valid`` (if given) is non-zero and the ground truth is finite and known. With no
    valid pixel every metric is NaN and ``n_valid`` is 0.
    """
    return _metrics_from_counts(flow_counts(pred, gt, valid))


class FlowMetricsAggregator:
    """Accumulate metrics over many pairs; ``summary()`` gives per-pixel and per-pair averages.

    Pairs with no valid pixel are counted (``n_empty``) but excluded from the per-pair average,
    where their NaN would otherwise poison the mean.
    """

    def __init__(self):
        self._totals = {"n_valid": 0, "epe_sum": 0.0, "outliers": 0}
        self._totals.update({f"below_{t}px": 0 for t in THRESHOLDS})
        self._per_pair = {k: [] for k in METRIC_KEYS}
        self.n_pairs = 0
        self.n_empty = 0

    def add(self, pred, gt, valid=None) -> dict:
        """Score one pair, fold it into the totals, and return its own metrics."""
        counts = flow_counts(pred, gt, valid)
        for key in self._totals:
            self._totals[key] += counts[key]
        result = _metrics_from_counts(counts)
        self._record(result)
        return result

    def add_result(self, result: dict) -> None:
        """Fold in a metrics dict produced elsewhere (e.g. another process) by ``flow_metrics``."""
        missing = [k for k in (*METRIC_KEYS, "n_valid") if k not in result]
        if missing:
            raise InputError(f"metrics result lacks keys {missing}; pass dicts from flow_metrics()")
        n = int(result["n_valid"])
        if n > 0:
            self._totals["n_valid"] += n
            self._totals["epe_sum"] += float(result["epe"]) * n
            self._totals["outliers"] += round(float(result["fl_all"]) * n / 100.0)
            for t in THRESHOLDS:
                self._totals[f"below_{t}px"] += round(float(result[f"{t}px"]) * n / 100.0)
        self._record(result)

    def _record(self, result: dict) -> None:
        self.n_pairs += 1
        if result["n_valid"] == 0:
            self.n_empty += 1
            return
        for key in METRIC_KEYS:
            self._per_pair[key].append(float(result[key]))

    def summary(self) -> dict:
        """``{"n_pairs", "n_empty", "n_valid", "per_pixel": {...}, "per_pair": {...}}``."""
        per_pair = {k: (float(np.mean(v)) if v else math.nan) for k, v in self._per_pair.items()}
        per_pixel = _metrics_from_counts(self._totals)
        per_pixel.pop("n_valid")
        return {
            "n_pairs": self.n_pairs,
            "n_empty": self.n_empty,
            "n_valid": self._totals["n_valid"],
            "per_pixel": per_pixel,
            "per_pair": per_pair,
        }


def aggregate_metrics(results) -> dict:
    """Summarise ``flow_metrics`` dicts; same layout as :meth:`FlowMetricsAggregator.summary`."""
    agg = FlowMetricsAggregator()
    for result in results:
        agg.add_result(result)
    return agg.summary()
