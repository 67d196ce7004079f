"""onnxruntime backend: the portable path (Pi, x86, any CPU; CUDA/TensorRT EPs where installed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgeflow.backends.base import Runner, TensorSpec
from edgeflow.errors import ArtifactError, InputError, first_line

_ORT_TO_NUMPY = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
}


class SessionLoader:
    """Builds an ``onnxruntime.InferenceSession`` with explicit threading and optimization.

    ``threads`` pins intra-op threads (default: onnxruntime's choice, all cores); pinning matters on
    a Pi where the capture thread needs a core of its own.
    """

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int | None = None,
                 optimization: str = "all", profile_prefix: str | None = None):
        self.path = Path(path)
        self.providers = providers
        self.threads = threads
        self.optimization = optimization
        self.profile_prefix = profile_prefix

    def __call__(self):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = {
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.optimization]
        threads = self.threads or int(os.environ.get("EDGEFLOW_THREADS", "0") or 0)
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        if self.profile_prefix:
            opts.enable_profiling = True
            opts.profile_file_prefix = self.profile_prefix
        providers = self.providers or ["CPUExecutionProvider"]
        try:
            return ort.InferenceSession(str(self.path), sess_options=opts, providers=providers)
        except Exception as err:  # onnxruntime raises several private exception types
            msg = first_line(err)
            raise ArtifactError(f"onnxruntime cannot load {self.path}: {msg}") from None


class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"

    def __init__(self, session_or_loader):
        self.session = session_or_loader() if callable(session_or_loader) else session_or_loader
        self._inputs = [self._spec(i) for i in self.session.get_inputs()]
        self._outputs = [self._spec(o) for o in self.session.get_outputs()]

    @staticmethod
    def _spec(arg) -> TensorSpec:
        return TensorSpec(arg.name, tuple(arg.shape), _ORT_TO_NUMPY.get(arg.type, arg.type))

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.check_feed(feed)
        try:
            values = self.session.run(self.output_names, {n: feed[n] for n in self.input_names})
        except Exception as err:
            msg = first_line(err)
            raise InputError(f"onnxruntime failed to run the model: {msg}") from None
        return dict(zip(self.output_names, values))

    def end_profiling(self) -> str | None:
        return self.session.end_profiling()
