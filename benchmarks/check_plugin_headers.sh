#!/usr/bin/env bash
# Compile-check the TensorRT Correlation plugin against one TensorRT include/ directory.
#
#   benchmarks/check_plugin_headers.sh TENSORRT_INCLUDE_DIR
#
# Compiles edgeflow/plugins/csrc/correlation_plugin.cpp with the host compiler (-Wall -Wextra -Werror; the
# TensorRT and CUDA headers are -isystem so only our code can fail the check), then again through nvcc -c
# when nvcc is available. With LINK=1 it also links the kernel + plugin into a shared library WITHOUT
# libnvinfer and lists the symbols left for libnvinfer to provide. Downloads nothing: fetch the headers
# yourself, e.g. `git archive release/10.3 include | tar -x -C third_party/tensorrt-10.3` from a TensorRT
# clone (third_party/ is git-ignored; never commit the headers).
#
# Environment: CXX (default g++), NVCC (default: nvcc on PATH, else /usr/local/cuda/bin/nvcc),
# CUDA_INCLUDE (default /usr/local/cuda/include), LINK=1, CUDA_ARCH (default 87, for LINK=1).
set -euo pipefail

inc=${1:?usage: $0 TENSORRT_INCLUDE_DIR}
if [[ ! -f "$inc/NvInfer.h" || ! -f "$inc/NvInferVersion.h" ]]; then
    echo "error: $inc has no NvInfer.h / NvInferVersion.h; pass a TensorRT include/ directory" >&2
    exit 2
fi
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
csrc=$repo/edgeflow/plugins/csrc
cuda_inc=${CUDA_INCLUDE:-/usr/local/cuda/include}
if [[ ! -f "$cuda_inc/cuda_runtime_api.h" ]]; then
    echo "error: CUDA headers not found in $cuda_inc; set CUDA_INCLUDE" >&2
    exit 2
fi
cxx=${CXX:-g++}
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}

# NvInferVersion.h: 10.x defines the numbers directly, 11.x through TRT_*_ENTERPRISE.
version=$(printf '#include "NvInferVersion.h"\nEF_VERSION NV_TENSORRT_MAJOR.NV_TENSORRT_MINOR.NV_TENSORRT_PATCH\n' |
    "$cxx" -E -P -I "$inc" -x c++ - | sed -n 's/^EF_VERSION \([0-9]*\) *\. *\([0-9]*\) *\. *\([0-9]*\).*/\1.\2.\3/p')
echo "TensorRT headers: $inc (version ${version:-unknown})"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

flags=(-std=c++17 -O2 -fPIC -fvisibility=hidden -isystem "$inc" -isystem "$cuda_inc" -I "$csrc")
cmd=("$cxx" "${flags[@]}" -Wall -Wextra -Werror -c "$csrc/correlation_plugin.cpp" -o "$work/plugin_gxx.o")
echo "+ ${cmd[*]}"
"${cmd[@]}"
echo "host compiler: OK"

if [[ -x "$nvcc" ]]; then
    cmd=("$nvcc" -std=c++17 -O2 -isystem "$inc" -I "$csrc" -Xcompiler -fPIC,-fvisibility=hidden,-Wall,-Wextra,-Werror
        -c "$csrc/correlation_plugin.cpp" -o "$work/plugin_nvcc.o")
    echo "+ ${cmd[*]}"
    "${cmd[@]}"
    echo "nvcc -c: OK"
    if [[ "${LINK:-0}" == 1 ]]; then
        arch=${CUDA_ARCH:-87}
        cmd=("$nvcc" -std=c++17 -O3 -shared -isystem "$inc" -I "$csrc" -Xcompiler -fPIC,-fvisibility=hidden
            -gencode "arch=compute_$arch,code=sm_$arch" "$csrc/correlation_kernel.cu" "$csrc/correlation_plugin.cpp"
            -o "$work/libedgeflow_plugins.so")
        echo "+ ${cmd[*]}"
        "${cmd[@]}"
        echo "exported: $(nm -D --defined-only "$work/libedgeflow_plugins.so" | awk '$2 == "T" {print $3}' | sort | tr '\n' ' ')"
        # Unversioned undefined symbols are the ones no system library provides: TensorRT's.
        echo "left for libnvinfer: $(nm -D --undefined-only "$work/libedgeflow_plugins.so" |
            awk '$2 !~ /@/ && $2 !~ /^_ITM_|^__gmon_start__$/ {print $2}' | sort | tr '\n' ' ')"
    fi
else
    echo "nvcc not found ($nvcc): skipped the nvcc -c check"
fi
echo "OK: correlation_plugin.cpp compiles against TensorRT ${version:-unknown} headers"
