"""CUDA for the TensorRT backend: which GPU this is, and pinned / device memory on one stream.

Two questions, two mechanisms:

* **identity** (name, compute capability) comes from the CUDA *driver* API through ctypes:
  ``libcuda.so.1`` ships with every NVIDIA driver, JetPack included, so the engine-compatibility
  check and ``edgeflow convert --target tensorrt`` need no Python CUDA package for it;
* **memory and streams** come from cuda-python (``cuda.bindings.runtime``, or ``cuda.cudart`` in
  releases before 12.6), behind the small :class:`CudaApi`, which is all
  :class:`~edgeflow.backends.tensorrt.TensorRTRunner` uses. The runtime API works in the device's
  primary context, the same one TensorRT uses. One library only (pycuda was a second code path
  that no test could reach; issue 16).

Never imported by the ONNX Runtime path; nothing here runs at import time.
"""

from __future__ import annotations

import ctypes
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from edgeflow.errors import EdgeflowError

_CU_ATTR_CC_MAJOR = 75  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
_CU_ATTR_CC_MINOR = 76  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
_CUDA_ERROR_NO_DEVICE = 100
_INSTALL_HINT = "pip install 'cuda-python>=12.6,<13' (CUDA 12 on JetPack 6; match your CUDA major version)"


@dataclass(frozen=True)
class GpuInfo:
    """What an engine is tied to: the GPU model and its compute capability ("8.7" = Orin)."""

    name: str
    compute_capability: str
    index: int = 0

    def as_dict(self) -> dict:
        return {"gpu": self.name, "compute_capability": self.compute_capability}


def gpu_info(device: int = 0) -> GpuInfo:
    """Name and compute capability of CUDA device ``device``, from the driver API."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        raise EdgeflowError(
            "no NVIDIA driver found (libcuda.so.1): TensorRT needs a CUDA GPU; on a machine without one use the "
            "onnxruntime backend (the artifact's ONNX graph)"
        ) from None
    rc = lib.cuInit(0)
    if rc != 0:
        why = "no CUDA device visible" if rc == _CUDA_ERROR_NO_DEVICE else f"cuInit failed with CUDA error {rc}"
        raise EdgeflowError(f"{why}: TensorRT needs a working GPU (check nvidia-smi / tegrastats and CUDA_VISIBLE_DEVICES)")
    count = ctypes.c_int(0)
    lib.cuDeviceGetCount(ctypes.byref(count))
    if device >= count.value:
        raise EdgeflowError(f"CUDA device {device} does not exist ({count.value} visible): check CUDA_VISIBLE_DEVICES")
    dev = ctypes.c_int(0)
    if lib.cuDeviceGet(ctypes.byref(dev), device) != 0:
        raise EdgeflowError(f"cannot open CUDA device {device}")
    name = ctypes.create_string_buffer(256)
    lib.cuDeviceGetName(name, 256, dev)
    major, minor = ctypes.c_int(0), ctypes.c_int(0)
    lib.cuDeviceGetAttribute(ctypes.byref(major), _CU_ATTR_CC_MAJOR, dev)
    lib.cuDeviceGetAttribute(ctypes.byref(minor), _CU_ATTR_CC_MINOR, dev)
    return GpuInfo(name.value.decode(errors="replace").strip(), f"{major.value}.{minor.value}", device)


class PinnedBuffer:
    """A page-locked host array (async copies need it) and the token that frees it."""

    __slots__ = ("array", "token")

    def __init__(self, array: np.ndarray, token):
        self.array = array
        self.token = token


class CudaApi(ABC):
    """The few CUDA calls the runner makes. Pointers are ints; streams are opaque handles."""

    name: str = "?"

    @abstractmethod
    def malloc(self, nbytes: int) -> int: ...

    @abstractmethod
    def free(self, ptr: int) -> None: ...

    @abstractmethod
    def pinned(self, shape: tuple, dtype) -> PinnedBuffer: ...

    @abstractmethod
    def free_pinned(self, buf: PinnedBuffer) -> None: ...

    @abstractmethod
    def stream_create(self): ...

    @abstractmethod
    def stream_handle(self, stream) -> int:
        """The ``cudaStream_t`` as an int, for ``execute_async_v3``."""

    @abstractmethod
    def stream_sync(self, stream) -> None: ...

    @abstractmethod
    def stream_destroy(self, stream) -> None: ...

    @abstractmethod
    def h2d_async(self, dst: int, src: np.ndarray, stream) -> None: ...

    @abstractmethod
    def d2h_async(self, dst: np.ndarray, src: int, stream) -> None: ...


class CudaPythonApi(CudaApi):
    """cuda-python's runtime bindings: every call returns ``(error, *results)``."""

    name = "cuda-python"

    def __init__(self, cudart):
        self.rt = cudart

    def _call(self, result, what: str):
        err, rest = result[0], result[1:]
        code = int(getattr(err, "value", err))
        if code != 0:
            try:
                label = self.rt.cudaGetErrorName(err)[1]
                label = label.decode() if isinstance(label, bytes) else str(label)
            except Exception:  # the error name is a nicety
                label = str(code)
            raise EdgeflowError(f"CUDA {what} failed: {label}")
        return rest[0] if len(rest) == 1 else (rest or None)

    def malloc(self, nbytes: int) -> int:
        return int(self._call(self.rt.cudaMalloc(max(int(nbytes), 1)), "cudaMalloc"))

    def free(self, ptr: int) -> None:
        self._call(self.rt.cudaFree(ptr), "cudaFree")

    def pinned(self, shape: tuple, dtype) -> PinnedBuffer:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        ptr = int(self._call(self.rt.cudaMallocHost(max(nbytes, 1)), "cudaMallocHost"))
        raw = (ctypes.c_ubyte * max(nbytes, 1)).from_address(ptr)
        array = np.frombuffer(raw, dtype=np.uint8, count=nbytes).view(dtype).reshape(shape)
        return PinnedBuffer(array, ptr)

    def free_pinned(self, buf: PinnedBuffer) -> None:
        self._call(self.rt.cudaFreeHost(buf.token), "cudaFreeHost")

    def stream_create(self):
        return self._call(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def stream_handle(self, stream) -> int:
        return int(stream)

    def stream_sync(self, stream) -> None:
        self._call(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def stream_destroy(self, stream) -> None:
        self._call(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def h2d_async(self, dst: int, src: np.ndarray, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call(self.rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, stream), "host-to-device copy")

    def d2h_async(self, dst: np.ndarray, src: int, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call(self.rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, stream), "device-to-host copy")


def cuda_api_installed() -> bool:
    """Whether cuda-python can be imported (checked without initializing CUDA)."""
    import importlib.util

    def found(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            return False

    return found("cuda.bindings") or found("cuda.cudart")


def require_cuda_api() -> None:
    if not cuda_api_installed():
        raise EdgeflowError(f"the TensorRT backend needs cuda-python for GPU buffers: {_INSTALL_HINT}")


def load_cuda_api(device: int = 0) -> CudaApi:
    """cuda-python's runtime API on ``device``; a one-line error saying what to install without it."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            raise EdgeflowError(f"the TensorRT backend needs cuda-python for GPU buffers: {_INSTALL_HINT}") from None
    api = CudaPythonApi(cudart)
    api._call(cudart.cudaSetDevice(device), "cudaSetDevice")
    return api
