"""``edgeflow build-plugin``: compile the TensorRT Correlation plugin (or just the CUDA kernel) on this machine."""

from __future__ import annotations

NAME = "build-plugin"
HELP = "compile the CUDA correlation kernel and TensorRT plugin with nvcc"
DESCRIPTION = """\
Compile libedgeflow_plugins.so (CUDA correlation kernel + TensorRT IPluginV3 'Correlation',
namespace 'edgeflow') with one nvcc call. Run it on the device that will run the engine: the
library must match that device's TensorRT and GPU architecture.

TensorRT is looked for in --tensorrt-root, $TENSORRT_ROOT, JetPack's /usr/include/aarch64-linux-gnu
and /usr/lib/aarch64-linux-gnu, the x86_64 equivalents, and the `tensorrt` Python package.
--kernel-only builds libedgeflow_correlation.so (kernel + C ABI for ctypes) without TensorRT.

examples:
  edgeflow build-plugin                         # on a Jetson Orin: sm_87, JetPack's TensorRT
  edgeflow build-plugin --cuda-arch 87 90 --tensorrt-root /opt/TensorRT-10.3.0
  edgeflow build-plugin --kernel-only --cuda-arch 90 --out build/
"""


def add_arguments(p) -> None:
    p.add_argument("--tensorrt-root", metavar="DIR", help="TensorRT install with include/ and lib/ (default: search)")
    p.add_argument(
        "--cuda-arch",
        nargs="+",
        metavar="CC",
        help="compute capabilities to compile for, e.g. 87 (Orin) 90 (H100); default: the local GPU",
    )
    p.add_argument("--out", metavar="DIR", help="output directory (default: ~/.cache/edgeflow, searched by the runtime)")
    p.add_argument("--kernel-only", action="store_true", help="build only the kernel + C ABI library (no TensorRT)")
    p.add_argument("--nvcc", metavar="PATH", help="nvcc to use (default: PATH, $CUDA_HOME, /usr/local/cuda)")


def run(args) -> int:
    from edgeflow.plugins import build

    if args.kernel_only:
        result = build.build_kernel_library(args.out, args.cuda_arch, args.nvcc)
    else:
        result = build.build_plugin_library(args.out, args.cuda_arch, args.tensorrt_root, args.nvcc)
    archs = " ".join(f"sm_{a}" for a in result.cuda_archs)
    print(f"built {result.library}")
    print(f"  cuda archs : {archs} (nvcc {result.nvcc_version})")
    if result.tensorrt is not None:
        t = result.tensorrt
        print(f"  tensorrt   : {t.version} (headers {t.include_dir}, library {t.library})")
    print(f"  sha256     : {result.sha256}")
    if result.tensorrt is not None:
        print("load it with:")
        print("  python: edgeflow.plugins.load_plugin_library()  (or ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL))")
        print(f"  trtexec: --staticPlugins={result.library}  or  --dynamicPlugins={result.library}")
    return 0
