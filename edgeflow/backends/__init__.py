"""Backends: onnxruntime (portable) and TensorRT (Jetson / NVIDIA GPUs, optional)."""

from __future__ import annotations

from edgeflow.backends.base import Runner, TensorSpec
from edgeflow.errors import EdgeflowError

BACKENDS = ("auto", "onnxruntime", "tensorrt")


def tensorrt_available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except Exception:
        return False
    return True


def create_runner(artifact, role: str = "model", backend: str = "auto", threads: int | None = None,
                  providers: list[str] | None = None, spinning: str | None = None) -> Runner:
    """A runner for one graph of an opened :class:`~edgeflow.artifact.Artifact`.

    ``auto`` picks the TensorRT engine when the artifact has one and TensorRT is importable,
    otherwise onnxruntime on the portable ONNX graph. ``threads`` / ``spinning``: see
    :class:`~edgeflow.backends.onnxruntime.SessionLoader` (``None``: onnxruntime's defaults).
    """
    if backend not in BACKENDS:
        raise EdgeflowError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    engine_role = "engine" if role == "model" else f"{role}_engine"
    use_trt = backend == "tensorrt" or (backend == "auto" and artifact.has(engine_role) and tensorrt_available())
    if use_trt:
        if not artifact.has(engine_role):
            raise EdgeflowError(
                f"{artifact.root} has no TensorRT engine: build one on this device with "
                f"`edgeflow convert MODEL --target tensorrt`"
            )
        from edgeflow.backends.tensorrt import TensorRTRunner

        return TensorRTRunner.from_artifact(artifact, engine_role)
    from edgeflow.backends.onnxruntime import OnnxRuntimeRunner, SessionLoader

    return OnnxRuntimeRunner(SessionLoader(artifact.graph(role), providers=providers, threads=threads,
                                           spinning=spinning))


__all__ = ["BACKENDS", "Runner", "TensorSpec", "create_runner", "tensorrt_available"]
