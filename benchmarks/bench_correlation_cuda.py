#!/usr/bin/env python3
"""Benchmark the CUDA correlation kernel on a GPU: correctness, then time against two yardsticks.

For each case (PWC-Net and FlowNetC shapes, odd sizes, kernel_size 3, stride1 2, md 20 with stride2 1)
and dtype (fp32, fp16) it

1. builds ``libedgeflow_correlation.so`` for the local GPU (``edgeflow build-plugin --kernel-only``),
2. checks the tiled kernel and the naive kernel against a float64 reference computed on the GPU from
   the same (for fp16: fp16-rounded) inputs: max |out - ref| / max |ref| must be <= 1e-6 (fp32) or
   1e-3 (fp16); a tiny case is also checked against the numpy loop reference,
3. times them with CUDA events and compares with the memory-bandwidth floor (bytes that must move /
   peak DRAM bandwidth), the fp32 compute floor, and the PyTorch formulation of the same op
   (``converters.ops.correlation`` on CUDA),

prints a table and writes JSON. Without a CUDA GPU (or nvcc) it prints why and exits 0.

    python benchmarks/bench_correlation_cuda.py [--json out/bench_correlation_cuda.json] [--iters 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# name, (B, C, H, W), attributes. PWC-Net level 2 of a 448x1024 input is 112x256 with 32 channels;
# FlowNetC correlates conv3 features: 1/8 of 384x512 = 48x64, 256 channels.
CASES = [
    ("pwc_l2_448x1024", (1, 32, 112, 256), dict(max_displacement=4)),
    ("pwc_l2_384x512_b4", (4, 32, 96, 128), dict(max_displacement=4)),
    ("pwc_l6_448x1024", (1, 196, 7, 16), dict(max_displacement=4)),
    ("flownetc_384x512", (1, 256, 48, 64), dict(max_displacement=20, stride2=2, pad_size=20)),
    ("flownetc_384x512_b4", (4, 256, 48, 64), dict(max_displacement=20, stride2=2, pad_size=20)),
    ("md20_s2_1", (1, 64, 48, 64), dict(max_displacement=20, stride2=1, pad_size=20)),
    ("k3_s1_2_s2_2", (1, 64, 64, 96), dict(max_displacement=4, kernel_size=3, stride1=2, stride2=2, pad_size=5)),
    ("odd_sizes", (2, 48, 37, 53), dict(max_displacement=4)),
]

# Peak DRAM bandwidth (GB/s) and fp32 FMA throughput (TFLOP/s) by name fragment, first match wins.
GPU_PEAKS = [
    ("H200", 4800.0, 67.0),
    ("H100 PCIe", 2000.0, 51.0),
    ("H100", 3350.0, 67.0),  # SXM5
    ("A100-SXM4-80GB", 2039.0, 19.5),
    ("A100", 1555.0, 19.5),
    ("L40S", 864.0, 91.6),
    ("L4", 300.0, 30.3),
    ("RTX 4090", 1008.0, 82.6),
    ("Orin", 204.8, 5.3),  # AGX Orin 64GB: 2048 CUDA cores at 1.3 GHz
]


def _skip(reason: str) -> int:
    print(f"SKIP: {reason}")
    return 0


def _peaks(name: str, props, bw_override, tflops_override):
    bw, tf = None, None
    for fragment, b, t in GPU_PEAKS:
        if fragment in name:
            bw, tf = b, t
            break
    clock = getattr(props, "memory_clock_rate", None)  # kHz, newer torch only
    bus = getattr(props, "memory_bus_width", None)
    if bw is None and clock and bus:
        bw = 2 * clock * 1e3 * bus / 8 / 1e9
    return bw_override or bw, tflops_override or tf


def _time_ms(torch, fn, iters: int, reps: int = 5) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(reps):
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / iters)
    return statistics.median(samples)


def _cost(shape, out_shape, attrs, elem_bytes):
    b, c, h, w = shape
    k = attrs.get("kernel_size", 1)
    _, d2, ho, wo = out_shape
    bytes_moved = (2 * b * c * h * w + b * d2 * ho * wo) * elem_bytes
    flops = 2 * b * d2 * ho * wo * c * k * k
    return bytes_moved, flops


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=str(REPO / "out" / "bench_correlation_cuda.json"), help="where to write results")
    ap.add_argument("--iters", type=int, default=50, help="timed calls per repetition (5 repetitions, median)")
    ap.add_argument("--lib", help="use this libedgeflow_correlation.so instead of building one")
    ap.add_argument("--build-dir", default=str(REPO / "out" / "plugins"), help="where to build the kernel library")
    ap.add_argument("--peak-bw", type=float, help="peak DRAM bandwidth in GB/s (default: by GPU name)")
    ap.add_argument("--peak-tflops", type=float, help="peak fp32 TFLOP/s (default: by GPU name)")
    ap.add_argument("--cases", nargs="+", help="subset of case names")
    args = ap.parse_args(argv)

    try:
        import torch
    except ImportError:
        return _skip("torch is not installed")
    if not torch.cuda.is_available():
        return _skip("no CUDA GPU (torch.cuda.is_available() is False)")

    from edgeflow.errors import EdgeflowError
    from edgeflow.plugins import build as pbuild
    from edgeflow.plugins import load_plugin_library
    from edgeflow.plugins.kernel_lib import CorrelationKernel

    try:
        from converters.ops.correlation import correlation as torch_correlation
        from converters.ops.reference import correlation_reference as numpy_reference
    except ImportError as err:
        return _skip(f"converters.ops is needed for the reference and the PyTorch formulation: {err}")

    props = torch.cuda.get_device_properties(0)
    gpu = torch.cuda.get_device_name(0)
    cc = torch.cuda.get_device_capability(0)
    peak_bw, peak_tflops = _peaks(gpu, props, args.peak_bw, args.peak_tflops)

    if args.lib:
        lib_path, sha, nvcc_ver = Path(args.lib), pbuild.sha256_of(Path(args.lib)), "prebuilt"
    else:
        try:
            t0 = time.perf_counter()
            built = pbuild.build_kernel_library(args.build_dir, [f"{cc[0]}{cc[1]}"])
            print(f"built {built.library} for sm_{cc[0]}{cc[1]} in {time.perf_counter() - t0:.1f} s")
        except EdgeflowError as err:
            return _skip(str(err))
        lib_path, sha, nvcc_ver = built.library, built.sha256, built.nvcc_version
    kernel = CorrelationKernel(load_plugin_library(lib_path))
    stream = torch.cuda.current_stream()

    def run_kernel(t1, t2, out, attrs, algo):
        kernel.forward(t1.data_ptr(), t2.data_ptr(), out.data_ptr(), str(t1.dtype).replace("torch.", ""),
                       t1.shape, algo=algo, stream=stream.cuda_stream, **_c_attrs(attrs))  # fmt: skip

    failures = 0
    # Tiny case against the numpy loop reference (the spec's yardstick) before anything is timed.
    gen = torch.Generator(device="cuda").manual_seed(0)
    t1 = torch.randn((1, 8, 12, 20), device="cuda", generator=gen)
    t2 = torch.randn((1, 8, 12, 20), device="cuda", generator=gen)
    out = torch.empty((1, 81, 12, 20), device="cuda")
    run_kernel(t1, t2, out, dict(max_displacement=4), "auto")
    torch.cuda.synchronize()
    ref = numpy_reference(t1.cpu().numpy(), t2.cpu().numpy(), 4)
    tiny_err = float(abs(out.double().cpu().numpy() - ref).max() / abs(ref).max())
    print(f"tiny case vs numpy loop reference: rel err {tiny_err:.2e}")
    failures += tiny_err > 1e-6

    rows = []
    cases = [c for c in CASES if not args.cases or c[0] in args.cases]
    for name, shape, attrs in cases:
        for dtype in (torch.float32, torch.float16):
            gen = torch.Generator(device="cuda").manual_seed(1)
            f1 = torch.randn(shape, device="cuda", generator=gen).to(dtype)
            f2 = torch.randn(shape, device="cuda", generator=gen).to(dtype)
            d2, ho, wo = kernel.output_shape(shape[2], shape[3], **_shape_attrs(attrs))
            out_shape = (shape[0], d2, ho, wo)
            out = torch.empty(out_shape, dtype=dtype, device="cuda")
            ref = torch_correlation(f1.double(), f2.double(), **attrs)  # fp64 on the inputs the kernel sees
            tol = 1e-6 if dtype == torch.float32 else 1e-3
            errs = {}
            for algo in ("auto", "naive"):
                out.fill_(float("nan"))
                run_kernel(f1, f2, out, attrs, algo)
                torch.cuda.synchronize()
                errs[algo] = float((out.double() - ref).abs().max() / ref.abs().max())
            ok = all(e <= tol for e in errs.values())
            failures += not ok
            t_tiled = _time_ms(torch, lambda: run_kernel(f1, f2, out, attrs, "auto"), args.iters)
            t_naive = _time_ms(torch, lambda: run_kernel(f1, f2, out, attrs, "naive"), max(1, args.iters // 5))
            t_torch = _time_ms(torch, lambda: torch_correlation(f1, f2, **attrs), max(1, args.iters // 5))
            nbytes, flops = _cost(shape, out_shape, attrs, f1.element_size())
            mem_floor = nbytes / (peak_bw * 1e9) * 1e3 if peak_bw else None
            compute_floor = flops / (peak_tflops * 1e12) * 1e3 if peak_tflops else None
            floors = [f for f in (mem_floor, compute_floor) if f is not None]
            floor = max(floors) if floors else None
            rows.append(
                dict(
                    case=name, dtype=str(dtype).replace("torch.", ""), shape=list(shape), attrs=attrs,
                    out_shape=list(out_shape), bytes=nbytes, flops=flops,
                    err_tiled=errs["auto"], err_naive=errs["naive"], tolerance=tol, ok=ok,
                    tiled_ms=t_tiled, naive_ms=t_naive, torch_ms=t_torch,
                    mem_floor_ms=mem_floor, compute_floor_ms=compute_floor, floor_ms=floor,
                    achieved_gbs=nbytes / (t_tiled * 1e-3) / 1e9, achieved_tflops=flops / (t_tiled * 1e-3) / 1e12,
                    floor_fraction=(floor / t_tiled) if floor else None,
                    speedup_vs_torch=t_torch / t_tiled, speedup_vs_naive=t_naive / t_tiled,
                )  # fmt: skip
            )
            r = rows[-1]
            print(
                f"{name:22s} {r['dtype']:8s} err {r['err_tiled']:.1e}/{r['err_naive']:.1e} {'ok ' if ok else 'BAD'} "
                f"tiled {t_tiled * 1e3:9.1f} us  naive {t_naive * 1e3:9.1f} us  torch {t_torch * 1e3:9.1f} us  "
                f"floor {floor * 1e3 if floor else float('nan'):7.1f} us ({(r['floor_fraction'] or 0) * 100:4.0f}%)  "
                f"{r['achieved_gbs']:7.1f} GB/s {r['achieved_tflops']:6.2f} TFLOP/s  x{r['speedup_vs_torch']:.1f} vs torch",
                flush=True,
            )

    result = dict(
        gpu=gpu, compute_capability=f"{cc[0]}.{cc[1]}", peak_bw_gbs=peak_bw, peak_fp32_tflops=peak_tflops,
        nvcc=nvcc_ver, torch=torch.__version__, library=str(lib_path), library_sha256=sha,
        tiny_case_err=tiny_err, iters=args.iters, results=rows,
    )  # fmt: skip
    out_json = Path(args.json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=2))
    _print_table(result)
    print(f"wrote {out_json}")
    if failures:
        print(f"FAIL: {failures} correctness check(s) over tolerance")
    return 1 if failures else 0


def _c_attrs(attrs: dict) -> dict:
    keys = ("max_displacement", "kernel_size", "stride1", "stride2", "pad_size", "normalize")
    return {k: attrs[k] for k in keys if k in attrs}


def _shape_attrs(attrs: dict) -> dict:
    return {k: v for k, v in _c_attrs(attrs).items() if k != "normalize"}


def _print_table(result: dict) -> None:
    print()
    print(f"GPU: {result['gpu']} (sm_{result['compute_capability'].replace('.', '')}), "
          f"peak {result['peak_bw_gbs']} GB/s, {result['peak_fp32_tflops']} fp32 TFLOP/s")  # fmt: skip
    head = "| case | dtype | out | MB moved | GFLOP | tiled us | naive us | torch us | floor us | % of floor | vs torch | rel err |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in result["results"]:
        floor = f"{r['floor_ms'] * 1e3:.1f}" if r["floor_ms"] else "n/a"
        frac = f"{r['floor_fraction'] * 100:.0f}%" if r["floor_fraction"] else "n/a"
        print(
            f"| {r['case']} | {r['dtype']} | {'x'.join(map(str, r['out_shape']))} | {r['bytes'] / 1e6:.2f} | "
            f"{r['flops'] / 1e9:.3f} | {r['tiled_ms'] * 1e3:.1f} | {r['naive_ms'] * 1e3:.1f} | {r['torch_ms'] * 1e3:.1f} | "
            f"{floor} | {frac} | x{r['speedup_vs_torch']:.1f} | {r['err_tiled']:.1e} |"
        )


if __name__ == "__main__":
    sys.exit(main())
