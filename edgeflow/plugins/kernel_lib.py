"""ctypes binding of the correlation kernel's C ABI (``csrc/correlation_api.h``).

Works on raw device pointers and a CUDA stream handle, so it needs neither torch nor TensorRT: the
benchmark passes ``tensor.data_ptr()``, a CUDA-python or CuPy user their own pointers. Both
``libedgeflow_correlation.so`` and ``libedgeflow_plugins.so`` export this ABI.
"""

from __future__ import annotations

import ctypes

from edgeflow.errors import InputError
from edgeflow.plugins import KERNEL_LIBRARY, load_plugin_library

DTYPES = {"float32": 0, "float16": 1}
ALGOS = {"auto": 0, "naive": 1}
STATUS_CUDA_ERROR = 8


class CorrelationKernel:
    """Enqueue the forward correlation on device buffers; see correlation_api.h for the contract."""

    def __init__(self, handle: ctypes.CDLL | None = None):
        self.lib = handle if handle is not None else load_plugin_library(name=KERNEL_LIBRARY)
        i, p = ctypes.c_int, ctypes.c_void_p
        ip = ctypes.POINTER(ctypes.c_int)
        self.lib.edgeflow_correlation_output_shape.argtypes = [i] * 7 + [ip, ip, ip]
        self.lib.edgeflow_correlation_output_shape.restype = i
        self.lib.edgeflow_correlation_forward.argtypes = [p, p, p] + [i] * 12 + [p]
        self.lib.edgeflow_correlation_forward.restype = i
        self.lib.edgeflow_correlation_status_string.argtypes = [i]
        self.lib.edgeflow_correlation_status_string.restype = ctypes.c_char_p
        self.lib.edgeflow_correlation_last_cuda_error.argtypes = []
        self.lib.edgeflow_correlation_last_cuda_error.restype = ctypes.c_char_p

    def _error(self, status: int) -> InputError:
        text = self.lib.edgeflow_correlation_status_string(status).decode()
        if status == STATUS_CUDA_ERROR:
            text += f" ({self.lib.edgeflow_correlation_last_cuda_error().decode()})"
        return InputError(f"correlation kernel: {text}")

    def output_shape(self, height, width, max_displacement, kernel_size=1, stride1=1, stride2=1, pad_size=None):
        """(D*D, H', W') for an input of (height, width)."""
        pad = max_displacement if pad_size is None else pad_size
        c, h, w = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        status = self.lib.edgeflow_correlation_output_shape(
            height, width, max_displacement, kernel_size, stride1, stride2, pad, ctypes.byref(c), ctypes.byref(h), ctypes.byref(w)
        )
        if status != 0:
            raise self._error(status)
        return c.value, h.value, w.value

    def forward(self, f1_ptr, f2_ptr, out_ptr, dtype, shape, max_displacement, kernel_size=1, stride1=1, stride2=1,
                pad_size=None, normalize=True, algo="auto", stream=0):  # fmt: skip
        """Enqueue on `stream` (an int cudaStream_t; 0 = default stream). Does not synchronize."""
        if dtype not in DTYPES:
            raise InputError(f"correlation kernel: dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        b, c, h, w = (int(v) for v in shape)
        pad = max_displacement if pad_size is None else pad_size
        status = self.lib.edgeflow_correlation_forward(
            f1_ptr, f2_ptr, out_ptr, DTYPES[dtype], b, c, h, w, max_displacement, kernel_size, stride1, stride2,
            pad, int(bool(normalize)), ALGOS[algo], stream or None,
        )  # fmt: skip
        if status != 0:
            raise self._error(status)
