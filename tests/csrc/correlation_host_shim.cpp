// Host build of the correlation kernel's __host__ __device__ code, for tests without a GPU.
//
// ef_host_forward(mode=0) evaluates correlationElement() per output element (what the naive kernel runs);
// mode=1 replays the tiled kernel block by block: for every block, every thread runs loadChunk(), then every
// thread runs accumulateChunk() (the __syncthreads() in between becomes "finish the loop"), then storeTile().
// Same functions, same indices as on the GPU; only the scheduling is sequential. Shared memory is a vector
// of exactly Config::smemBytes followed by NaN guard words, so a tile extent that outgrows the allocation is
// reported and a read past what was staged shows up as NaN in the output. Compiled with
// -DEDGEFLOW_HOST_HALF, the fp16 path (half in, fp32 accumulation, half out) is exported too.
#include "correlation_kernel.cuh"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

using namespace edgeflow::corr;

namespace
{

constexpr int kGuard = 4096;
constexpr int kERR_SMEM_OVERFLOW = 100;
constexpr int kERR_NOT_TILED = 101;

template <typename T, int NI, int JM, int S2>
int emulateTiled(T const* f1, T const* f2, T* out, Params const& p, Config const& cfg)
{
    int const floats = cfg.smemBytes / int(sizeof(float));
    std::vector<float> smem(size_t(floats) + kGuard, std::numeric_limits<float>::quiet_NaN());
    std::vector<float> acc(size_t(kThreads) * NI * JM);
    int const gx = ceilDiv(p.outWidth, kTileW);
    int const gy = ceilDiv(p.outHeight, kTileH);
    int const gz = p.batch * cfg.groups;
    for (int bz = 0; bz < gz; ++bz)
    {
        for (int by = 0; by < gy; ++by)
        {
            for (int bx = 0; bx < gx; ++bx)
            {
                Tile const t = makeTile(p, cfg, bx, by, bz);
                int const used = t.cc * (t.rows1 * t.cols1 + t.rows2 * t.cols2);
                if (used > floats)
                    return kERR_SMEM_OVERFLOW;
                float* s1 = smem.data();
                float* s2 = smem.data() + t.cc * t.rows1 * t.cols1;
                std::fill(acc.begin(), acc.end(), 0.0f);
                for (int c0 = 0; c0 < p.channels; c0 += t.cc)
                {
                    std::fill(smem.begin(), smem.begin() + floats, std::numeric_limits<float>::quiet_NaN());
                    for (int ty = 0; ty < kTileH; ++ty)
                        for (int tx = 0; tx < kTileW; ++tx)
                            loadChunk(f1, f2, p, t, c0, s1, s2, tx, ty);
                    for (int ty = 0; ty < kTileH; ++ty)
                    {
                        for (int tx = 0; tx < kTileW; ++tx)
                        {
                            auto& a = *reinterpret_cast<float(*)[NI][JM]>(&acc[size_t(ty * kTileW + tx) * NI * JM]);
                            accumulateChunk<NI, JM, S2>(p, t, s1, s2, c0, tx, ty, a);
                        }
                    }
                }
                for (int ty = 0; ty < kTileH; ++ty)
                {
                    for (int tx = 0; tx < kTileW; ++tx)
                    {
                        auto const& a
                            = *reinterpret_cast<float const(*)[NI][JM]>(&acc[size_t(ty * kTileW + tx) * NI * JM]);
                        storeTile<T, NI, JM>(p, t, tx, ty, a, out);
                    }
                }
            }
        }
    }
    return kOK;
}

} // namespace

extern "C" {

//! info (7 ints, may be null): tiled, ni, jm, s2, groups, channelChunk, smemBytes of the chosen config.
int ef_host_config(int batch, int channels, int height, int width, int md, int k, int s1, int s2, int pad,
    int normalize, int numSMs, int* info)
{
    Params p{};
    int const status = makeParams(&p, batch, channels, height, width, md, k, s1, s2, pad, normalize);
    if (status != kOK)
        return status;
    Config const c = chooseConfig(p, numSMs);
    if (info)
    {
        int const v[7] = {c.tiled, c.ni, c.jm, c.s2, c.groups, c.channelChunk, c.smemBytes};
        for (int i = 0; i < 7; ++i)
            info[i] = v[i];
    }
    return kOK;
}

int ef_host_output_shape(int height, int width, int md, int k, int s1, int s2, int pad, int* shape3)
{
    Params p{};
    int const status = makeParams(&p, 1, 1, height, width, md, k, s1, s2, pad, 1);
    shape3[0] = p.outChannels;
    shape3[1] = p.outHeight;
    shape3[2] = p.outWidth;
    return status;
}

} // extern "C"

namespace
{

template <typename T>
int hostForward(T const* f1, T const* f2, T* out, int batch, int channels, int height, int width, int md, int k,
    int s1, int s2, int pad, int normalize, int mode, int numSMs)
{
    Params p{};
    int const status = makeParams(&p, batch, channels, height, width, md, k, s1, s2, pad, normalize);
    if (status != kOK)
        return status;
    if (mode == 0)
    {
        for (int b = 0; b < p.batch; ++b)
            for (int q = 0; q < p.outChannels; ++q)
                for (int y = 0; y < p.outHeight; ++y)
                    for (int x = 0; x < p.outWidth; ++x)
                        out[outputIndex(p, b, q, y, x)] = fromFloat<T>(correlationElement(f1, f2, p, b, q, y, x));
        return kOK;
    }
    Config const cfg = chooseConfig(p, numSMs);
    if (!cfg.tiled)
        return kERR_NOT_TILED;
    return dispatchTiled(cfg, [&](auto shape) {
        using S = decltype(shape);
        return emulateTiled<T, S::NI, S::JM, S::S2>(f1, f2, out, p, cfg);
    });
}

} // namespace

extern "C" {

//! mode 0: per-element definition; mode 1: tiled-kernel replay (kERR_NOT_TILED if the launcher would
//! pick the naive kernel for these attributes).
int ef_host_forward(float const* f1, float const* f2, float* out, int batch, int channels, int height, int width,
    int md, int k, int s1, int s2, int pad, int normalize, int mode, int numSMs)
{
    return hostForward<float>(f1, f2, out, batch, channels, height, width, md, k, s1, s2, pad, normalize, mode, numSMs);
}

#if defined(EDGEFLOW_HOST_HALF)
//! Same on IEEE fp16 bit patterns (uint16), through the kernel's __half specializations.
int ef_host_forward_half(uint16_t const* f1, uint16_t const* f2, uint16_t* out, int batch, int channels, int height,
    int width, int md, int k, int s1, int s2, int pad, int normalize, int mode, int numSMs)
{
    static_assert(sizeof(__half) == sizeof(uint16_t), "__half is 16 bits");
    return hostForward<__half>(reinterpret_cast<__half const*>(f1), reinterpret_cast<__half const*>(f2),
        reinterpret_cast<__half*>(out), batch, channels, height, width, md, k, s1, s2, pad, normalize, mode, numSMs);
}
#endif

} // extern "C"
