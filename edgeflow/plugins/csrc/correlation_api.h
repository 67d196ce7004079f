// C ABI of the correlation kernel: what the TensorRT plugin calls from enqueue(), and what Python reaches
// through ctypes in libedgeflow_correlation.so (edgeflow build-plugin --kernel-only). Plain C types only,
// so the same declarations work from C++, ctypes and any FFI.
#pragma once

#include <stdint.h>

#if defined(_WIN32)
#define EDGEFLOW_EXPORT __declspec(dllexport)
#else
#define EDGEFLOW_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

//! dtype codes for edgeflow_correlation_forward.
enum
{
    EDGEFLOW_DTYPE_FLOAT32 = 0,
    EDGEFLOW_DTYPE_FLOAT16 = 1,
};

//! algo codes for edgeflow_correlation_forward.
enum
{
    EDGEFLOW_CORR_AUTO = 0,  //!< tiled shared-memory kernel when an instantiation fits, else naive
    EDGEFLOW_CORR_NAIVE = 1, //!< one thread per output element (the reference kernel)
};

//! Version of this C ABI; bump when a signature changes.
EDGEFLOW_EXPORT int edgeflow_correlation_abi_version(void);

//! Output shape for the given input size and attributes. Returns 0 or a status code (see
//! edgeflow_correlation_status_string) without touching the GPU.
EDGEFLOW_EXPORT int edgeflow_correlation_output_shape(int height, int width, int max_displacement, int kernel_size,
    int stride1, int stride2, int pad_size, int* out_channels, int* out_height, int* out_width);

//! Enqueue the forward correlation on `stream` (a cudaStream_t, NULL = default stream).
//! f1, f2: device pointers to (batch, channels, height, width) NCHW tensors of `dtype`;
//! out: device pointer to the (batch, D*D, H', W') output of the same dtype. Returns 0 or a status code;
//! it does not synchronize.
EDGEFLOW_EXPORT int edgeflow_correlation_forward(void const* f1, void const* f2, void* out, int dtype, int batch,
    int channels, int height, int width, int max_displacement, int kernel_size, int stride1, int stride2,
    int pad_size, int normalize, int algo, void* stream);

//! Human-readable text for a status code (static storage).
EDGEFLOW_EXPORT char const* edgeflow_correlation_status_string(int status);

//! Text of the last CUDA error seen by edgeflow_correlation_forward in this thread ("" if none).
EDGEFLOW_EXPORT char const* edgeflow_correlation_last_cuda_error(void);

#ifdef __cplusplus
}
#endif
