"""edgeflow: the device runtime.

This package must never import torch: device apps embed it with numpy + onnxruntime only
(TensorRT where present). The host-side toolchain lives in the separate ``converters`` package.
"""

from edgeflow.version import __version__  # noqa: F401  (kept in edgeflow/version.py: modules below read it there)
# Our distribution's name. PyPI's "edgeflow" is an unrelated project that installs an `edgeflow`
# import package too; the CLI checks this marker to tell which package it got.
__distribution__ = "edgeflow-sdk"
SUMMARY_PREFIX = "Take optical-flow"  # start of our pyproject description: tells our own old "edgeflow" dists apart

from edgeflow.errors import ArtifactError, EdgeflowError, InputError  # noqa: E402


def foreign_distributions(where=None) -> list:
    """``"name version"`` of each *other* project's distribution that installs an ``edgeflow`` package
    next to this one (so may have overwritten its files, or shadow it on a Python >= 3.12).

    Only the folder holding this package is scanned (one directory listing, not every installed
    distribution: this runs at import on a Pi). Our own distributions (edgeflow-sdk, or an
    ``edgeflow`` built from this source before the rename) are recognised by their summary.
    """
    import os

    where = where or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:  # cheap pre-check: importlib.metadata itself costs tens of ms to import on a Pi
        names = os.listdir(where)
    except OSError:
        return []
    if not any(n.lower().startswith("edgeflow-") and n.endswith((".dist-info", ".egg-info")) for n in names):
        return []
    from importlib import metadata

    found = []
    try:
        for dist in metadata.distributions(path=[where]):
            name = (dist.metadata["Name"] or "").lower().replace("_", "-")
            if name != "edgeflow":
                continue
            if (dist.metadata["Summary"] or "").startswith(SUMMARY_PREFIX):
                continue
            found.append(f"{dist.metadata['Name']} {dist.version}")
    except Exception:  # noqa: BLE001 - a damaged dist-info must not stop the runtime from importing
        return []
    return found


def _warn_foreign() -> None:
    import logging

    for other in foreign_distributions():
        # A warning on the package's logger: without any logging set up Python's last-resort
        # handler still prints it on stderr; the CLI's console handler formats it like its others.
        logging.getLogger("edgeflow").warning(
            f"the unrelated PyPI project {other} is installed beside edgeflow-sdk and also provides the `edgeflow` "
            f"package (its files may replace ours): pip uninstall edgeflow, then reinstall the edgeflow-sdk wheel")


_warn_foreign()


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
