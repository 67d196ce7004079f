// Correlation forward kernels (fp32, fp16) and their launcher / C ABI.
//
// The math and the tiling live in correlation_kernel.cuh as __host__ __device__ functions; this file only
// adds the __global__ wrappers (which insert the __syncthreads() between staging and accumulating), picks
// an instantiation, and exposes the C ABI declared in correlation_api.h.
#include "correlation_api.h"
#include "correlation_kernel.cuh"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace edgeflow
{
namespace corr
{
namespace
{

thread_local char const* gLastCudaError = "";

//! Reference kernel: one thread per output element, grid-stride over B*D*D*H'*W'.
template <typename T>
__global__ void correlationNaiveKernel(T const* __restrict__ f1, T const* __restrict__ f2, T* __restrict__ out,
    Params p)
{
    int64_t const total = int64_t(p.batch) * p.outChannels * p.outHeight * p.outWidth;
    for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
         idx += int64_t(gridDim.x) * blockDim.x)
    {
        int const x = int(idx % p.outWidth);
        int64_t rest = idx / p.outWidth;
        int const y = int(rest % p.outHeight);
        rest /= p.outHeight;
        int const q = int(rest % p.outChannels);
        int const b = int(rest / p.outChannels);
        out[idx] = fromFloat<T>(correlationElement(f1, f2, p, b, q, y, x));
    }
}

//! Tiled kernel: stage a channel chunk of the f1 tile and the haloed f2 tile in shared memory, accumulate
//! NI x JM displacements per thread in registers, repeat over channels, store once.
template <typename T, int NI, int JM, int S2>
__global__ void __launch_bounds__(kThreads) correlationTiledKernel(
    T const* __restrict__ f1, T const* __restrict__ f2, T* __restrict__ out, Params p, Config cfg)
{
    extern __shared__ float smem[];
    Tile const t = makeTile(p, cfg, blockIdx.x, blockIdx.y, blockIdx.z);
    float* s1 = smem;
    float* s2 = smem + t.cc * t.rows1 * t.cols1;
    int const tx = threadIdx.x;
    int const ty = threadIdx.y;
    float acc[NI][JM];
#pragma unroll
    for (int ii = 0; ii < NI; ++ii)
    {
#pragma unroll
        for (int j = 0; j < JM; ++j)
            acc[ii][j] = 0.0f;
    }
    for (int c0 = 0; c0 < p.channels; c0 += t.cc)
    {
        loadChunk(f1, f2, p, t, c0, s1, s2, tx, ty);
        __syncthreads();
        accumulateChunk<NI, JM, S2>(p, t, s1, s2, c0, tx, ty, acc);
        __syncthreads();
    }
    storeTile<T, NI, JM>(p, t, tx, ty, acc, out);
}

template <typename T, int NI, int JM, int S2>
cudaError_t launchTiled(T const* f1, T const* f2, T* out, Params const& p, Config const& cfg, cudaStream_t stream)
{
    dim3 const block(kTileW, kTileH, 1);
    dim3 const grid(ceilDiv(p.outWidth, kTileW), ceilDiv(p.outHeight, kTileH), p.batch * cfg.groups);
    correlationTiledKernel<T, NI, JM, S2><<<grid, block, cfg.smemBytes, stream>>>(f1, f2, out, p, cfg);
    return cudaGetLastError();
}

template <typename T>
cudaError_t launchNaive(T const* f1, T const* f2, T* out, Params const& p, cudaStream_t stream)
{
    int64_t const total = int64_t(p.batch) * p.outChannels * p.outHeight * p.outWidth;
    int const threads = 256;
    int64_t blocks = (total + threads - 1) / threads;
    blocks = blocks > 65535 * 8 ? 65535 * 8 : blocks; // grid-stride loop covers the rest
    correlationNaiveKernel<T><<<unsigned(blocks), threads, 0, stream>>>(f1, f2, out, p);
    return cudaGetLastError();
}

int multiprocessorCount()
{
    int device = 0;
    int count = 0;
    if (cudaGetDevice(&device) != cudaSuccess
        || cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess)
    {
        cudaGetLastError(); // clear; fall back to the fewest groups
        return 0;
    }
    return count;
}

template <typename T>
cudaError_t launch(T const* f1, T const* f2, T* out, Params const& p, int algo, cudaStream_t stream)
{
    Config const cfg = chooseConfig(p, algo == EDGEFLOW_CORR_NAIVE ? 0 : multiprocessorCount());
    if (algo == EDGEFLOW_CORR_NAIVE || !cfg.tiled)
        return launchNaive<T>(f1, f2, out, p, stream);
    return dispatchTiled(cfg, [&](auto shape) {
        using S = decltype(shape);
        return launchTiled<T, S::NI, S::JM, S::S2>(f1, f2, out, p, cfg, stream);
    });
}

} // namespace
} // namespace corr
} // namespace edgeflow

using namespace edgeflow::corr;

extern "C" EDGEFLOW_EXPORT int edgeflow_correlation_abi_version(void)
{
    return 1;
}

extern "C" EDGEFLOW_EXPORT int edgeflow_correlation_output_shape(int height, int width, int max_displacement,
    int kernel_size, int stride1, int stride2, int pad_size, int* out_channels, int* out_height, int* out_width)
{
    Params p{};
    int const status
        = makeParams(&p, 1, 1, height, width, max_displacement, kernel_size, stride1, stride2, pad_size, 1);
    if (status != kOK && status != kEMPTY_OUTPUT)
        return status;
    if (out_channels)
        *out_channels = p.outChannels;
    if (out_height)
        *out_height = p.outHeight;
    if (out_width)
        *out_width = p.outWidth;
    return status;
}

extern "C" EDGEFLOW_EXPORT int edgeflow_correlation_forward(void const* f1, void const* f2, void* out, int dtype,
    int batch, int channels, int height, int width, int max_displacement, int kernel_size, int stride1,
    int stride2, int pad_size, int normalize, int algo, void* stream)
{
    Params p{};
    int const status = makeParams(
        &p, batch, channels, height, width, max_displacement, kernel_size, stride1, stride2, pad_size, normalize);
    if (status != kOK)
        return status;
    cudaStream_t const s = static_cast<cudaStream_t>(stream);
    cudaError_t err;
    if (dtype == EDGEFLOW_DTYPE_FLOAT32)
    {
        err = launch<float>(static_cast<float const*>(f1), static_cast<float const*>(f2), static_cast<float*>(out),
            p, algo, s);
    }
    else if (dtype == EDGEFLOW_DTYPE_FLOAT16)
    {
        err = launch<__half>(static_cast<__half const*>(f1), static_cast<__half const*>(f2),
            static_cast<__half*>(out), p, algo, s);
    }
    else
    {
        return kBAD_DTYPE;
    }
    if (err != cudaSuccess)
    {
        gLastCudaError = cudaGetErrorString(err);
        return kCUDA_ERROR;
    }
    gLastCudaError = "";
    return kOK;
}

extern "C" EDGEFLOW_EXPORT char const* edgeflow_correlation_status_string(int status)
{
    return statusString(status);
}

extern "C" EDGEFLOW_EXPORT char const* edgeflow_correlation_last_cuda_error(void)
{
    return gLastCudaError;
}
