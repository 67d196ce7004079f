"""onnxruntime backend: the portable path (Pi, x86, any CPU; CUDA/TensorRT EPs where installed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgeflow.backends.base import Runner, TensorSpec
from edgeflow.errors import ArtifactError, EdgeflowError, InputError, first_line

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

    ``threads`` pins intra-op threads; ``spinning`` says whether its workers spin-wait:
    ``"run"`` inside a run only (stopped when it returns, ``session.force_spinning_stop``),
    ``"on"`` (onnxruntime's default: also after runs), ``"off"``. Both default to ``None``:
    onnxruntime's own choice (all cores, spinning), which is what a bare session gets; the
    runtime passes the :mod:`edgeflow.budget` decision instead (see docs/streaming.md).
    """

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int | None = None,
                 optimization: str = "all", profile_prefix: str | None = None, spinning: str | None = None):
        self.path = Path(path)
        self.providers = providers
        self.threads = threads
        self.spinning = spinning
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
        if self.spinning is not None:
            from edgeflow.budget import session_config

            for key, value in session_config(self.spinning).items():
                opts.add_session_config_entry(key, value)
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
    """Runs one graph on an ``onnxruntime.InferenceSession``; active from construction.

    Given a loader (:class:`SessionLoader`) it can be deactivated and activated again; given a
    ready session, the session is its own and is dropped on deactivate.
    """

    backend = "onnxruntime"

    def __init__(self, session_or_loader):
        self._loader = session_or_loader if callable(session_or_loader) else None
        self._given = None if self._loader is not None else session_or_loader
        self.name = str(getattr(session_or_loader, "path", "the onnxruntime graph"))
        self.activate()

    def activate_impl(self) -> None:
        if self._loader is None and self._given is None:
            raise EdgeflowError(f"{self.name}: this runner was given a session, which deactivate() released; make a new one")
        self.session = self._loader() if self._loader is not None else self._given
        self._given = None
        self._inputs = [self._spec(i) for i in self.session.get_inputs()]
        self._outputs = [self._spec(o) for o in self.session.get_outputs()]

    def deactivate_impl(self) -> None:
        self.session = None

    @staticmethod
    def _spec(arg) -> TensorSpec:
        return TensorSpec(arg.name, tuple(arg.shape), _ORT_TO_NUMPY.get(arg.type, arg.type))

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = self.session.run(self.output_names, {n: feed[n] for n in self.input_names})
        except Exception as err:
            msg = first_line(err)
            raise InputError(f"onnxruntime failed to run the model: {msg}") from None
        return dict(zip(self.output_names, values))

    def end_profiling(self) -> str | None:
        return self.session.end_profiling()
