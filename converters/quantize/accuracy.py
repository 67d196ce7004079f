"""Accuracy of a converted graph: EPE against the FP32 graph and against ground truth.

Validation pairs are the built-in evaluation set (:func:`edgeflow.synthetic.builtin_eval_set`:
real photos with known motion, a stereo pair, layered scenes; all with exact flow), brought to
the artifact's resolution, so the numbers in a manifest mean the same thing for every model.
Without scikit-image the synthetic generator's procedural scenes stand in (still with exact flow).

Per pair the EPE is the mean over valid pixels; over the set, the mean of the per-pair values
(every pair weighs the same, as RAFT-style evaluation scripts do).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeflow.errors import EdgeflowError
from edgeflow.flow.metrics import end_point_error
from edgeflow.preprocess import plan_geometry, resize_bilinear


@dataclass(frozen=True)
class ValidationPair:
    name: str
    frame1: np.ndarray
    frame2: np.ndarray
    flow: np.ndarray | None  # HxWx2 ground truth, None when the source has none
    valid: np.ndarray | None


def _resize_pair(pair, height: int, width: int) -> ValidationPair:
    name, f1, f2, flow, valid = pair
    h, w = f1.shape[:2]
    if (h, w) == (height, width):
        return ValidationPair(name, f1, f2, flow, valid)

    def frame(img):
        return np.clip(np.rint(resize_bilinear(img, height, width)), 0, 255).astype(np.uint8)

    gt = resize_bilinear(np.where(valid[..., None], flow, 0).astype(np.float32), height, width)
    gt[..., 0] *= width / w
    gt[..., 1] *= height / h
    ys = np.minimum((np.arange(height) + 0.5) * h / height, h - 1).astype(int)
    xs = np.minimum((np.arange(width) + 0.5) * w / width, w - 1).astype(int)
    return ValidationPair(name, frame(f1), frame(f2), gt.astype(np.float32), valid[ys][:, xs])


def validation_pairs(height: int, width: int, limit: int | None = None) -> list[ValidationPair]:
    """The built-in evaluation set at ``height`` x ``width`` (first ``limit`` pairs)."""
    try:
        from edgeflow.synthetic import builtin_eval_set

        pairs = builtin_eval_set()
    except EdgeflowError:  # no scikit-image: procedural scenes, still with exact flow
        from edgeflow.synthetic import SyntheticFlowGenerator

        gen = SyntheticFlowGenerator(height, width, seed=20260, augment=False)
        pairs = [(f"synthetic_{i}", *gen.sample(i)) for i in range(8)]
    pairs = pairs[:limit] if limit else pairs
    return [_resize_pair(p, height, width) for p in pairs]


def mean_epe(pred: np.ndarray, ref: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean end-point error over ``valid`` pixels (all when none is valid); the per-pixel EPE is
    edgeflow.flow.metrics', the one definition."""
    err = end_point_error(pred, ref)
    return float(err[valid].mean() if valid is not None and valid.any() else err.mean())


class FlowEvaluator:
    """Runs graphs on the validation pairs in a bare onnxruntime session and scores them."""

    def __init__(self, pairs: list[ValidationPair], pad_multiple: int, threads: int | None = None):
        self.pairs = pairs
        self.pad_multiple = pad_multiple
        self.threads = threads

    def flows(self, onnx_path, pairs: list[ValidationPair] | None = None) -> list[np.ndarray]:
        from edgeflow.backends.onnxruntime import OnnxRuntimeRunner, SessionLoader

        runner = OnnxRuntimeRunner(SessionLoader(onnx_path, threads=self.threads))
        names, out = runner.input_names, runner.output_names[0]
        flows = []
        for p in pairs or self.pairs:
            geo = plan_geometry(p.frame1.shape[:2], runner.inputs[0].shape, self.pad_multiple)
            result = runner.infer({names[0]: geo.to_network(p.frame1), names[1]: geo.to_network(p.frame2)})[out]
            flows.append(geo.to_frame(result.astype(np.float32)))
        return flows

    def split_flows(self, encoder_path, decoder_path) -> list[np.ndarray]:
        """Flows through encoder.onnx (once per frame) + decoder.onnx, the runtime's cached path."""
        from edgeflow.backends.onnxruntime import OnnxRuntimeRunner, SessionLoader

        enc = OnnxRuntimeRunner(SessionLoader(encoder_path, threads=self.threads))
        dec = OnnxRuntimeRunner(SessionLoader(decoder_path, threads=self.threads))
        flows = []
        for p in self.pairs:
            geo = plan_geometry(p.frame1.shape[:2], enc.inputs[0].shape, self.pad_multiple)
            e1, e2 = (enc.infer({enc.input_names[0]: geo.to_network(f)}) for f in (p.frame1, p.frame2))
            feed = {n: (e1 if n.startswith("feat1_") else e2)[f"feat_{n.split('_')[1]}"] for n in dec.input_names}
            flows.append(geo.to_frame(dec.infer(feed)[dec.output_names[0]].astype(np.float32)))
        return flows

    def score(self, flows: list[np.ndarray], reference: list[np.ndarray] | None = None,
              pairs: list[ValidationPair] | None = None) -> dict:
        """{"epe_vs_gt", "epe_vs_fp32" (when ``reference`` is given), "pairs"}."""
        pairs = pairs or self.pairs
        gt = [mean_epe(f, p.flow, p.valid) for f, p in zip(flows, pairs) if p.flow is not None]
        result = {"pairs": len(flows), "epe_vs_gt": float(np.mean(gt)) if gt else None}
        if reference is not None:
            result["epe_vs_fp32"] = float(np.mean([mean_epe(f, r) for f, r in zip(flows, reference)]))
        return result
