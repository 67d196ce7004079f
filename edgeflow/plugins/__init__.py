"""Native plugins: the CUDA correlation kernel and the TensorRT ``Correlation`` plugin.

Sources ship in ``csrc/`` (installed with the wheel); ``edgeflow build-plugin`` compiles them on the
device (see :mod:`edgeflow.plugins.build`). This module only finds and loads the result, with the
standard library: it is imported by the device runtime, which never has torch.

Search order for a library name: ``$EDGEFLOW_PLUGIN_PATH`` (``os.pathsep``-separated files or
directories; an explicit override wins), this package's directory, then ``~/.cache/edgeflow`` (the
default output of ``edgeflow build-plugin``).
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path

from edgeflow.errors import EdgeflowError

PLUGIN_LIBRARY = "libedgeflow_plugins.so"
KERNEL_LIBRARY = "libedgeflow_correlation.so"
PLUGIN_NAME = "Correlation"
PLUGIN_NAMESPACE = "edgeflow"
PLUGIN_VERSION = "1"
CACHE_DIR = Path.home() / ".cache" / "edgeflow"

_loaded: dict[str, ctypes.CDLL] = {}
_lock = threading.Lock()


def search_paths(name: str = PLUGIN_LIBRARY) -> list[Path]:
    """Candidate files for `name`, in search order (they need not exist)."""
    paths: list[Path] = []
    for entry in os.environ.get("EDGEFLOW_PLUGIN_PATH", "").split(os.pathsep):
        if entry:
            p = Path(entry).expanduser()
            if p.is_dir():
                paths.append(p / name)
            elif p.name == name:
                paths.append(p)
    paths.append(Path(__file__).resolve().parent / name)
    paths.append(CACHE_DIR / name)
    return paths


def find_plugin_library(name: str = PLUGIN_LIBRARY) -> Path | None:
    """First existing file named by :func:`search_paths`, or None."""
    return next((p for p in search_paths(name) if p.is_file()), None)


def load_plugin_library(path: str | os.PathLike | None = None, name: str = PLUGIN_LIBRARY) -> ctypes.CDLL:
    """Load the plugin library once per process with RTLD_GLOBAL and return its handle.

    Loading registers the ``Correlation`` creator in TensorRT's global plugin registry, so the ONNX
    parser and engine deserialization find it. For the TensorRT library, ``tensorrt`` is imported
    first when available so libnvinfer from the pip wheel is already mapped when the loader resolves
    our dependency on it.
    """
    if path is None:
        found = find_plugin_library(name)
        if found is None:
            where = ", ".join(str(p.parent) for p in search_paths(name))
            raise EdgeflowError(f"{name} not found in {where}: run `edgeflow build-plugin` on this device first")
        path = found
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise EdgeflowError(f"plugin library {path} does not exist: run `edgeflow build-plugin` or fix the path")
    key = str(path)
    with _lock:
        if key in _loaded:
            return _loaded[key]
        if path.name != KERNEL_LIBRARY:
            try:
                import tensorrt  # noqa: F401  (maps libnvinfer before our library needs it)
            except ImportError:
                pass
        try:
            handle = ctypes.CDLL(key, mode=ctypes.RTLD_GLOBAL)
        except OSError as err:
            raise EdgeflowError(
                f"cannot load {path}: {err}; rebuild it with `edgeflow build-plugin` for this TensorRT/CUDA, "
                "or add TensorRT's lib directory to LD_LIBRARY_PATH"
            ) from None
        _loaded[key] = handle
        return handle


def plugin_tensorrt_version(handle: ctypes.CDLL) -> str | None:
    """TensorRT version the plugin library was compiled against ('10.3.0'), or None for the kernel library."""
    try:
        fn = handle.edgeflow_plugin_tensorrt_version
    except AttributeError:
        return None
    fn.restype = ctypes.c_int
    v = int(fn())
    return f"{v // 10000}.{v // 100 % 100}.{v % 100}"
