// Correlation (cost volume) forward: the index math and the tiled-kernel building blocks.
//
// Everything in this header is `__host__ __device__` (or plain inline C++ when compiled by g++), so the
// exact code the GPU runs can also be compiled for the host and checked against the Python reference
// without a GPU (tests/test_plugin_build.py). The __global__ kernels and the launcher live in
// correlation_kernel.cu; they only glue these pieces together with __syncthreads().
//
// Semantics (FlowNet2 / PWC-Net, see docs/plugin.md):
//   kr = (k-1)/2, border = md + kr, r = md / s2, D = 2r + 1
//   H' = ceil((H + 2p - 2*border) / s1), W' likewise
//   out[b, i*D + j, y, x] = sum_{c, a, e} P1[b,c,cy+a,cx+e] * P2[b,c,cy+dy+a,cx+dx+e]   (a, e in [-kr, kr])
//   cy = y*s1 + border, cx = x*s1 + border, dy = (i-r)*s2, dx = (j-r)*s2; P1/P2 = inputs zero-padded by p;
//   divided by C*k*k when normalize. fp16 inputs are accumulated in fp32.
//
// In unpadded coordinates the top-left tap of output (y, x) is f1[y*s1 + md - p, x*s1 + md - p], which is
// why `md - p` shows up everywhere below instead of `border`.
#pragma once

#include <stdint.h>

#if defined(__CUDACC__) || defined(EDGEFLOW_HOST_HALF)
#include <cuda_fp16.h> // EDGEFLOW_HOST_HALF: host tests of the fp16 path (the header works with g++ too)
#endif

#if defined(__CUDACC__)
#define EF_HD __host__ __device__ __forceinline__
#if defined(__CUDA_ARCH__)
#define EF_UNROLL _Pragma("unroll")
#else
#define EF_UNROLL
#endif
#else
#define EF_HD inline
#define EF_UNROLL
#endif

namespace edgeflow
{
namespace corr
{

//! Status codes shared by the launcher, the C ABI and the TensorRT plugin.
enum Status : int
{
    kOK = 0,
    kBAD_KERNEL_SIZE = 1, //!< kernel_size must be odd and >= 1
    kBAD_STRIDE = 2,      //!< stride1 and stride2 must be >= 1
    kBAD_DISPLACEMENT = 3, //!< max_displacement must be >= 0
    kBAD_PAD = 4,         //!< pad_size must be >= 0
    kEMPTY_OUTPUT = 5,    //!< the input is too small for max_displacement / kernel_size / pad_size
    kBAD_SHAPE = 6,       //!< batch / channels / height / width must be >= 1
    kBAD_DTYPE = 7,       //!< only fp32 and fp16 are implemented
    kCUDA_ERROR = 8,      //!< the launch failed; see cudaGetLastError()
};

inline char const* statusString(int status)
{
    switch (status)
    {
    case kOK: return "ok";
    case kBAD_KERNEL_SIZE: return "kernel_size must be odd and >= 1";
    case kBAD_STRIDE: return "stride1 and stride2 must be >= 1";
    case kBAD_DISPLACEMENT: return "max_displacement must be >= 0";
    case kBAD_PAD: return "pad_size must be >= 0";
    case kEMPTY_OUTPUT: return "input is too small for max_displacement, kernel_size and pad_size (empty output)";
    case kBAD_SHAPE: return "batch, channels, height and width must be >= 1";
    case kBAD_DTYPE: return "only float32 and float16 tensors are supported";
    case kCUDA_ERROR: return "CUDA launch failed";
    default: return "unknown status";
    }
}

//! Attributes plus every derived quantity the kernels need; built once on the host by makeParams().
struct Params
{
    int batch, channels, height, width;
    int maxDisplacement, kernelSize, stride1, stride2, pad, normalize;
    int kernelRadius; //!< kr
    int border;       //!< md + kr
    int gridRadius;   //!< r = md / s2
    int gridWidth;    //!< D = 2r + 1
    int outChannels;  //!< D * D
    int outHeight, outWidth;
    float scale; //!< 1 / (C k k) when normalize, else 1
};

EF_HD int ceilDiv(int a, int b)
{
    return (a + b - 1) / b;
}

EF_HD int minInt(int a, int b)
{
    return a < b ? a : b;
}

//! Output spatial size along one axis, or <= 0 when the input is too small.
EF_HD int outSize(int n, int md, int k, int s1, int pad)
{
    int const span = n + 2 * pad - 2 * (md + (k - 1) / 2);
    return span <= 0 ? 0 : ceilDiv(span, s1);
}

//! Validates the attributes and fills `p`. Returns a Status.
EF_HD int makeParams(Params* p, int batch, int channels, int height, int width, int maxDisplacement,
    int kernelSize, int stride1, int stride2, int pad, int normalize)
{
    if (kernelSize < 1 || kernelSize % 2 == 0)
        return kBAD_KERNEL_SIZE;
    if (stride1 < 1 || stride2 < 1)
        return kBAD_STRIDE;
    if (maxDisplacement < 0)
        return kBAD_DISPLACEMENT;
    if (pad < 0)
        return kBAD_PAD;
    if (batch < 1 || channels < 1 || height < 1 || width < 1)
        return kBAD_SHAPE;
    p->batch = batch;
    p->channels = channels;
    p->height = height;
    p->width = width;
    p->maxDisplacement = maxDisplacement;
    p->kernelSize = kernelSize;
    p->stride1 = stride1;
    p->stride2 = stride2;
    p->pad = pad;
    p->normalize = normalize ? 1 : 0;
    p->kernelRadius = (kernelSize - 1) / 2;
    p->border = maxDisplacement + p->kernelRadius;
    p->gridRadius = maxDisplacement / stride2;
    p->gridWidth = 2 * p->gridRadius + 1;
    p->outChannels = p->gridWidth * p->gridWidth;
    p->outHeight = outSize(height, maxDisplacement, kernelSize, stride1, pad);
    p->outWidth = outSize(width, maxDisplacement, kernelSize, stride1, pad);
    p->scale = normalize ? 1.0f / (float(channels) * float(kernelSize) * float(kernelSize)) : 1.0f;
    if (p->outHeight <= 0 || p->outWidth <= 0)
        return kEMPTY_OUTPUT;
    return kOK;
}

// ---- element types -------------------------------------------------------------------------------------

template <typename T>
EF_HD float toFloat(T v)
{
    return static_cast<float>(v);
}

template <typename T>
EF_HD T fromFloat(float v)
{
    return static_cast<T>(v);
}

#if defined(__CUDACC__) || defined(EDGEFLOW_HOST_HALF)
template <>
EF_HD float toFloat<__half>(__half v)
{
    return __half2float(v);
}

template <>
EF_HD __half fromFloat<__half>(float v)
{
    return __float2half_rn(v);
}
#endif

// ---- the per-output-element definition (naive kernel, host tests) ---------------------------------------

//! One output value out[b, q, y, x], straight from the definition. Reads f1/f2 (NCHW, unpadded);
//! taps that fall in the zero padding are skipped. fp32 accumulation for every T.
template <typename T>
EF_HD float correlationElement(T const* f1, T const* f2, Params const& p, int b, int q, int y, int x)
{
    int const i = q / p.gridWidth;
    int const j = q - i * p.gridWidth;
    int const dy = (i - p.gridRadius) * p.stride2;
    int const dx = (j - p.gridRadius) * p.stride2;
    int const y1 = y * p.stride1 + p.maxDisplacement - p.pad; // top-left tap in f1 (unpadded coords)
    int const x1 = x * p.stride1 + p.maxDisplacement - p.pad;
    int64_t const plane = int64_t(p.height) * p.width;
    float acc = 0.0f;
    for (int c = 0; c < p.channels; ++c)
    {
        T const* a1 = f1 + (int64_t(b) * p.channels + c) * plane;
        T const* a2 = f2 + (int64_t(b) * p.channels + c) * plane;
        for (int a = 0; a < p.kernelSize; ++a)
        {
            int const ya = y1 + a;
            int const yb = ya + dy;
            if (ya < 0 || ya >= p.height || yb < 0 || yb >= p.height)
                continue;
            for (int e = 0; e < p.kernelSize; ++e)
            {
                int const xa = x1 + e;
                int const xb = xa + dx;
                if (xa < 0 || xa >= p.width || xb < 0 || xb >= p.width)
                    continue;
                acc += toFloat(a1[int64_t(ya) * p.width + xa]) * toFloat(a2[int64_t(yb) * p.width + xb]);
            }
        }
    }
    return acc * p.scale;
}

//! Flat index of out[b, q, y, x] in the (B, D*D, H', W') output.
EF_HD int64_t outputIndex(Params const& p, int b, int q, int y, int x)
{
    return ((int64_t(b) * p.outChannels + q) * p.outHeight + y) * p.outWidth + x;
}

// ---- the tiled kernel ------------------------------------------------------------------------------------
//
// A block owns a kTileH x kTileW tile of output pixels (one thread per pixel), one batch item, and a group
// of `ni` consecutive vertical displacements i0 .. i0+ni-1 times ALL D horizontal displacements. Each
// thread keeps its NI x JM accumulators in registers for the whole channel loop. Per chunk of `cc`
// channels the block stages in shared memory (as fp32):
//   f1 tile: rows1 x cols1 = ((kTileH-1)*s1 + k) x ((kTileW-1)*s1 + k)
//   f2 tile: rows2 x cols2 = ((kTileH-1)*s1 + (ni-1)*s2 + k) x ((kTileW-1)*s1 + (JM-1)*s2 + k)
// i.e. the f2 tile covers the output tile plus the displacement halo of this group, so every f2 value a
// thread needs comes from shared memory, and each input byte is fetched from global memory once per
// block that covers it (see docs/plugin.md for the traffic this implies).

constexpr int kTileW = 32; //!< output columns per block = threads in x (one warp: coalesced rows)
constexpr int kTileH = 8;  //!< output rows per block = threads in y
constexpr int kThreads = kTileW * kTileH;
constexpr int kSmemBudget = 24 * 1024; //!< target bytes of shared memory per block (2+ blocks per SM)
constexpr int kSmemLimit = 48 * 1024;  //!< default dynamic shared memory limit without opt-in
constexpr int kMaxChannelChunk = 16;

//! Which kernel to run and how; chosen on the host (and mirrored by the host emulation in the tests).
struct Config
{
    int tiled;        //!< 1: tiled kernel, 0: naive one-thread-per-output kernel
    int ni;           //!< NI template argument: max vertical displacements per block
    int jm;           //!< JM template argument: max horizontal displacements (>= D)
    int s2;           //!< S2 template argument (1 or 2)
    int groups;       //!< vertical displacement groups: ceil(D / NI), more for small grids (see groupRange)
    int channelChunk; //!< channels staged per __syncthreads round
    int smemBytes;    //!< dynamic shared memory per block
};

//! Shared-memory extents of a block's tiles when it handles `ni` vertical displacement rows. The f2 tile is
//! `jm` (>= D) displacement columns wide so the unrolled inner loop needs no `j < D` predicate; the extra
//! columns only feed accumulators that are never stored.
EF_HD void tileExtents(Params const& p, int ni, int jm, int* rows1, int* cols1, int* rows2, int* cols2)
{
    *rows1 = (kTileH - 1) * p.stride1 + p.kernelSize;
    *cols1 = (kTileW - 1) * p.stride1 + p.kernelSize;
    *rows2 = (kTileH - 1) * p.stride1 + (ni - 1) * p.stride2 + p.kernelSize;
    *cols2 = (kTileW - 1) * p.stride1 + (jm - 1) * p.stride2 + p.kernelSize;
}

//! Instantiated (NI, JM) pairs: each keeps NI*JM <= 84 fp32 accumulators per thread in registers.
//! `numSMs` > 0 lets small problems split the displacement rows over more blocks (fewer rows per block,
//! less f2 reuse) until there are about two blocks per SM; 0 keeps the fewest groups.
EF_HD Config chooseConfig(Params const& p, int numSMs)
{
    Config c{};
    int const D = p.gridWidth;
    c.tiled = 0;
    c.s2 = p.stride2;
    if (p.stride2 > 2)
        return c;
    if (D <= 9)
    {
        c.ni = 9;
        c.jm = 9;
    }
    else if (D <= 21)
    {
        c.ni = 4;
        c.jm = 21;
    }
    else if (D <= 41)
    {
        c.ni = 2;
        c.jm = 41;
    }
    else
    {
        return c;
    }
    int rows1, cols1, rows2, cols2;
    tileExtents(p, c.ni, c.jm, &rows1, &cols1, &rows2, &cols2);
    int const perChannel = int(sizeof(float)) * (rows1 * cols1 + rows2 * cols2);
    if (perChannel > kSmemLimit)
        return c; // huge kernel_size / stride1: not worth a tiled variant
    int cc = kSmemBudget / perChannel;
    cc = cc < 1 ? 1 : cc;
    cc = minInt(cc, kMaxChannelChunk);
    cc = minInt(cc, p.channels);
    c.tiled = 1;
    c.groups = ceilDiv(D, c.ni);
    int64_t const tiles = int64_t(ceilDiv(p.outWidth, kTileW)) * ceilDiv(p.outHeight, kTileH) * p.batch;
    while (numSMs > 0 && c.groups < D && tiles * c.groups < 2 * int64_t(numSMs))
        ++c.groups;
    if (int64_t(p.batch) * c.groups > 65535 || ceilDiv(p.outHeight, kTileH) > 65535)
    {
        c.tiled = 0; // grid.z / grid.y limits; the naive kernel's 1-D grid-stride loop has none
        return c;
    }
    c.channelChunk = cc;
    c.smemBytes = cc * perChannel;
    return c;
}

//! Compile-time shape of a tiled-kernel instantiation.
template <int NI_, int JM_, int S2_>
struct TiledShape
{
    static constexpr int NI = NI_;
    static constexpr int JM = JM_;
    static constexpr int S2 = S2_;
};

//! Call fn(TiledShape<NI, JM, S2>{}) for the instantiation chooseConfig() picked (host side; the one table
//! of instantiations shared by the CUDA launcher and the host replay in the tests).
template <typename Fn>
inline auto dispatchTiled(Config const& cfg, Fn&& fn) -> decltype(fn(TiledShape<9, 9, 1>{}))
{
    bool const s1 = cfg.s2 == 1;
    if (cfg.jm == 9)
        return s1 ? fn(TiledShape<9, 9, 1>{}) : fn(TiledShape<9, 9, 2>{});
    if (cfg.jm == 21)
        return s1 ? fn(TiledShape<4, 21, 1>{}) : fn(TiledShape<4, 21, 2>{});
    return s1 ? fn(TiledShape<2, 41, 1>{}) : fn(TiledShape<2, 41, 2>{});
}

//! Rows [i0, i0 + ni) of the D x D displacement grid handled by group g of `groups` (sizes differ by <= 1).
EF_HD void groupRange(int D, int groups, int g, int* i0, int* ni)
{
    *i0 = g * D / groups;
    *ni = (g + 1) * D / groups - *i0;
}

//! Geometry of one block: output tile origin, displacement rows, and where its tiles start in f1/f2.
struct Tile
{
    int b;           //!< batch item
    int y0, x0;      //!< first output row / column
    int i0, ni;      //!< vertical displacement rows i0 .. i0+ni-1
    int rows1, cols1, rows2, cols2;
    int org1y, org1x; //!< unpadded f1 coordinates of f1 tile element (0, 0)
    int org2y, org2x; //!< unpadded f2 coordinates of f2 tile element (0, 0)
    int cc;           //!< channels per chunk
};

//! Block (bx, by, bz) of the grid (ceil(W'/kTileW), ceil(H'/kTileH), B * groups).
EF_HD Tile makeTile(Params const& p, Config const& cfg, int bx, int by, int bz)
{
    Tile t;
    t.b = bz / cfg.groups;
    int const g = bz - t.b * cfg.groups;
    groupRange(p.gridWidth, cfg.groups, g, &t.i0, &t.ni);
    t.y0 = by * kTileH;
    t.x0 = bx * kTileW;
    tileExtents(p, t.ni, cfg.jm, &t.rows1, &t.cols1, &t.rows2, &t.cols2); // ni <= NI: fits the allocation
    t.org1y = t.y0 * p.stride1 + p.maxDisplacement - p.pad;
    t.org1x = t.x0 * p.stride1 + p.maxDisplacement - p.pad;
    t.org2y = t.org1y + (t.i0 - p.gridRadius) * p.stride2;
    t.org2x = t.org1x - p.gridRadius * p.stride2;
    t.cc = cfg.channelChunk;
    return t;
}

//! Stage channels [c0, c0 + cc) of both tiles in shared memory (fp32), zero outside the image or past C.
//! Called by every thread (tx, ty) of the block; rows are strided over ty, columns over tx so each warp
//! reads one contiguous row segment (coalesced).
template <typename T>
EF_HD void loadChunk(T const* f1, T const* f2, Params const& p, Tile const& t, int c0, float* s1, float* s2,
    int tx, int ty)
{
    int64_t const plane = int64_t(p.height) * p.width;
    int const valid = minInt(t.cc, p.channels - c0);
    for (int row = ty; row < t.cc * t.rows1; row += kTileH)
    {
        int const cc = row / t.rows1;
        int const gy = t.org1y + (row - cc * t.rows1);
        float* dst = s1 + row * t.cols1;
        if (cc < valid && gy >= 0 && gy < p.height)
        {
            T const* src = f1 + (int64_t(t.b) * p.channels + c0 + cc) * plane + int64_t(gy) * p.width;
            for (int col = tx; col < t.cols1; col += kTileW)
            {
                int const gx = t.org1x + col;
                dst[col] = (gx >= 0 && gx < p.width) ? toFloat(src[gx]) : 0.0f;
            }
        }
        else
        {
            for (int col = tx; col < t.cols1; col += kTileW)
                dst[col] = 0.0f;
        }
    }
    for (int row = ty; row < t.cc * t.rows2; row += kTileH)
    {
        int const cc = row / t.rows2;
        int const gy = t.org2y + (row - cc * t.rows2);
        float* dst = s2 + row * t.cols2;
        if (cc < valid && gy >= 0 && gy < p.height)
        {
            T const* src = f2 + (int64_t(t.b) * p.channels + c0 + cc) * plane + int64_t(gy) * p.width;
            for (int col = tx; col < t.cols2; col += kTileW)
            {
                int const gx = t.org2x + col;
                dst[col] = (gx >= 0 && gx < p.width) ? toFloat(src[gx]) : 0.0f;
            }
        }
        else
        {
            for (int col = tx; col < t.cols2; col += kTileW)
                dst[col] = 0.0f;
        }
    }
}

//! Thread (tx, ty) adds the products of the staged channel chunk into acc[ii][j] (row i0+ii, column j).
//! The inner two loops are fully unrolled so acc stays in registers; S2 is a template argument so each
//! shared-memory load is base + immediate offset, and the j loop has no predicate: one LDS + one FFMA
//! per multiply-add.
template <int NI, int JM, int S2>
EF_HD void accumulateChunk(Params const& p, Tile const& t, float const* s1, float const* s2, int c0, int tx,
    int ty, float (&acc)[NI][JM])
{
    int const valid = minInt(t.cc, p.channels - c0);
    int const k = p.kernelSize;
    int const plane1 = t.rows1 * t.cols1;
    int const plane2 = t.rows2 * t.cols2;
    int const rowStep = S2 * t.cols2;
    for (int cc = 0; cc < valid; ++cc)
    {
        float const* a1 = s1 + cc * plane1 + (ty * p.stride1) * t.cols1 + tx * p.stride1;
        float const* a2 = s2 + cc * plane2 + (ty * p.stride1) * t.cols2 + tx * p.stride1;
        for (int a = 0; a < k; ++a)
        {
            for (int e = 0; e < k; ++e)
            {
                float const v = a1[a * t.cols1 + e];
                float const* base = a2 + a * t.cols2 + e;
                EF_UNROLL
                for (int ii = 0; ii < NI; ++ii)
                {
                    if (ii < t.ni)
                    {
                        float const* row = base + ii * rowStep;
                        EF_UNROLL
                        for (int j = 0; j < JM; ++j)
                            acc[ii][j] += v * row[j * S2]; // columns j >= D are computed, never stored
                    }
                }
            }
        }
    }
}

//! Thread (tx, ty) writes its ni x D results (scaled, converted to T). Pixels past H'/W' write nothing.
template <typename T, int NI, int JM>
EF_HD void storeTile(Params const& p, Tile const& t, int tx, int ty, float const (&acc)[NI][JM], T* out)
{
    int const y = t.y0 + ty;
    int const x = t.x0 + tx;
    if (y >= p.outHeight || x >= p.outWidth)
        return;
    EF_UNROLL
    for (int ii = 0; ii < NI; ++ii)
    {
        if (ii < t.ni)
        {
            EF_UNROLL
            for (int j = 0; j < JM; ++j)
            {
                if (j < p.gridWidth)
                {
                    int const q = (t.i0 + ii) * p.gridWidth + j;
                    out[outputIndex(p, t.b, q, y, x)] = fromFloat<T>(acc[ii][j] * p.scale);
                }
            }
        }
    }
}

} // namespace corr
} // namespace edgeflow
