"""Parity: does the exported graph compute what the PyTorch model computes, on real frames?

Exporters can be silently wrong (dropped custom ops, mis-traced shapes). So every convert runs the
ONNX graph in a bare onnxruntime session and the PyTorch model on the same real-photo frame pairs
and compares the flows: max absolute difference and end-point error (EPE) between the two.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from edgeflow.backends.onnxruntime import OnnxRuntimeRunner, SessionLoader
from edgeflow.flow.metrics import end_point_error
from edgeflow.preprocess import plan_geometry


@dataclass
class ParityResult:
    pairs: int
    max_abs: float
    epe_mean: float
    epe_max: float
    tol_epe: float
    tol_max_abs: float

    @property
    def passed(self) -> bool:
        return self.epe_mean <= self.tol_epe and self.max_abs <= self.tol_max_abs

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        return f"EPE {self.epe_mean:.2e} px (max {self.epe_max:.2e}), max |diff| {self.max_abs:.2e} px over {self.pairs} pairs"


def real_frame_pairs(height: int, width: int, count: int = 3, seed: int = 1234):
    """Frame pairs from real photos with known motion (the synthetic generator, no augmentation)."""
    from edgeflow.synthetic import SyntheticFlowGenerator

    gen = SyntheticFlowGenerator(height, width, seed=seed, augment=False)
    return [(s.frame1, s.frame2) for s in (gen.sample(i) for i in range(count))]


def torch_flow(module: torch.nn.Module, frame1: np.ndarray, frame2: np.ndarray, pad_multiple: int,
               input_shape: tuple = (1, 3, None, None), conventions=None) -> np.ndarray:
    """Run the PyTorch model the same way the runtime feeds the graph (pad to the multiple or
    resize to a static graph's size, the model's input conventions, crop)."""
    geo = plan_geometry(frame1.shape[:2], input_shape, pad_multiple, conventions)
    with torch.no_grad():
        out = module(torch.from_numpy(geo.to_network(frame1)), torch.from_numpy(geo.to_network(frame2)))
    return geo.to_frame(out.float().numpy())


def onnx_flow(runner: OnnxRuntimeRunner, frame1: np.ndarray, frame2: np.ndarray, pad_multiple: int, conventions=None) -> np.ndarray:
    geo = plan_geometry(frame1.shape[:2], runner.inputs[0].shape, pad_multiple, conventions)
    names = runner.input_names
    out = runner.infer({names[0]: geo.to_network(frame1), names[1]: geo.to_network(frame2)})
    return geo.to_frame(out[runner.output_names[0]].astype(np.float32))


def compare_flows(reference: list[np.ndarray], candidate: list[np.ndarray], tol_epe: float, tol_max_abs: float) -> ParityResult:
    epes, max_abs = [], 0.0
    for ref, cand in zip(reference, candidate):
        diff = cand.astype(np.float64) - ref.astype(np.float64)
        epes.append(end_point_error(cand, ref))
        max_abs = max(max_abs, float(np.abs(diff).max()))
    epe = np.concatenate([e.ravel() for e in epes])
    return ParityResult(len(reference), max_abs, float(epe.mean()), float(epe.max()), tol_epe, tol_max_abs)


def check_parity(module, onnx_path, pairs, pad_multiple: int, tol_epe: float = 1e-2, tol_max_abs: float = 0.5,
                 threads: int | None = None, conventions=None) -> ParityResult:
    """``module`` should be the user's ORIGINAL model (not the copy with swapped correlation
    layers): parity then covers the recognizers too. Static graphs (traces) are fed resized
    frames on both sides, as the runtime will."""
    runner = OnnxRuntimeRunner(SessionLoader(onnx_path, threads=threads))
    shape = tuple(runner.inputs[0].shape)
    static = all(isinstance(d, int) and d > 0 for d in shape[2:4])
    from edgeflow.console import progress_bar

    ref, got = [], []
    for a, b in progress_bar(pairs, len(pairs), "parity pairs"):
        ref.append(torch_flow(module, a, b, pad_multiple, shape if static else (1, 3, None, None), conventions))
        got.append(onnx_flow(runner, a, b, pad_multiple, conventions))
    return compare_flows(ref, got, tol_epe, tol_max_abs)
