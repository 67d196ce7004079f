"""edgeflow: the device runtime.

This package must never import torch: device apps embed it with numpy + onnxruntime only
(TensorRT where present). The host-side toolchain lives in the separate ``converters`` package.
"""

__version__ = "0.1.0"

from edgeflow.errors import ArtifactError, EdgeflowError, InputError  # noqa: E402


def load(path, **kwargs):
    """Load an artifact directory (or the bundled default when ``path`` is None) for inference.

    Returns a :class:`edgeflow.model.FlowModel` whose ``infer(frame1, frame2)`` maps two HxWx3
    uint8 RGB frames to an HxWx2 float32 flow.
    """
    from edgeflow.model import FlowModel

    return FlowModel.load(path, **kwargs)


def __getattr__(name):
    # Lazy: the streaming pipeline pulls in threads and sources only when asked for.
    if name == "Stream":
        from edgeflow.stream import Stream

        return Stream
    raise AttributeError(f"module 'edgeflow' has no attribute {name!r}")


__all__ = ["load", "Stream", "EdgeflowError", "ArtifactError", "InputError", "__version__"]
