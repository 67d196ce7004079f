"""FP32 vs FP16 vs INT8 vs pruned pwc-lite on this CPU, all measured in ONE run.

What it builds (the same stage functions ``edgeflow convert`` uses):
  fp32-slice_mean  FP32 graph with the exporter's per-displacement correlation body (reference)
  fp32             FP32 graph with the band-MatMul correlation body (what convert ships; the baseline)
  fp16             FP16 graph, float32 I/O
  int8             INT8 QDQ for onnxruntime CPU (U8S8 on x86, ReLUs folded, correlation in uint8),
                   after the accuracy guard
  int8-float-corr  the same with the correlation left as a float node
  int8-u8-zp128    uint8 with symmetric zero point 128 everywhere (ReLUs stay separate ops)
  int8-s8s8        the same calibration written as S8S8 (the x86 trap, for comparison)
  int8-trt         TensorRT-bound QDQ graph (signed, zero point 0), accuracy only (ORT-simulated)
  fp32-prunedNN    --prune R + --finetune-steps N (distilled from the unpruned model)
  int8-prunedNN    the pruned model quantized
Latency: onnxruntime CPU, ``--threads`` intra-op threads, graphs timed round-robin (see
converters/variants.py) at the artifact resolution; EPE on the built-in evaluation set.

    python benchmarks/bench_quantization.py [--model pwc-lite] [--height 240 --width 320]
        [--iterations 40] [--threads 1 2] [--prune 0.5] [--finetune-steps 6000]
        [--calib-frames 32] [--json out.json] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import onnx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from converters.convert import INPUT_NAMES, OUTPUT_NAMES, ConvertOptions, PruneOptions, prune_stage  # noqa: E402
from edgeflow.commands.convert import DEFAULT_FINETUNE_STEPS  # noqa: E402
from converters.export import export_onnx  # noqa: E402
from converters.ops.band_correlation import use_band_bodies  # noqa: E402
from converters.quantize.accuracy import FlowEvaluator, validation_pairs  # noqa: E402
from converters.quantize.calibration import PairFeeds, load_calibration  # noqa: E402
from converters.quantize.fp16 import convert_fp16  # noqa: E402
from converters.quantize.guard import AccuracyGuard, EpeBudget, Int8Repair  # noqa: E402
from converters.quantize.int8 import Int8Options, Int8Quantizer  # noqa: E402
from converters.report import conversion_table  # noqa: E402
from converters.variants import Variant, interleaved_latency, measure_variants  # noqa: E402

TARGETS = {"int8_latency_ratio": 0.7, "int8_cpu_time_ratio": 0.7, "int8_epe_increase": 0.05,
           "pruned_latency_ratio": 0.6, "pruned_cpu_time_ratio": 0.6, "pruned_epe_increase": 0.15}


def export(module, path: Path, h: int, w: int, body: str) -> Path:
    x = torch.rand(1, 3, h, w) * 255
    dyn = {n: {2: "height", 3: "width"} for n in INPUT_NAMES + OUTPUT_NAMES}
    export_onnx(module, (x, x.clone()), path, INPUT_NAMES, OUTPUT_NAMES, dyn)
    if body == "band_matmul":
        model = onnx.load(str(path))
        use_band_bodies(model)
        onnx.save(model, str(path))
    return path


def int8_graphs(fp32: Path, tmp: Path, tag: str, feeds, evaluator, budget, method: str, log, variants: bool = True):
    """The guarded INT8 CPU graph + TensorRT graph, and (``variants``) the representations it beat."""
    quantizer = Int8Quantizer(fp32, feeds, Int8Options(method=method))
    t0 = time.perf_counter()
    quantizer.calibrate()
    calib_s = time.perf_counter() - t0
    guard = AccuracyGuard(evaluator, fp32, budget)
    cpu = tmp / f"int8{tag}.onnx"
    quantizer.write(cpu, "cpu")
    repair = Int8Repair(quantizer, guard, log=log).run(cpu)
    graphs = {"int8": cpu, "int8-trt": quantizer.write(tmp / f"int8_trt{tag}.onnx", "tensorrt", repair.excluded).path}
    if variants:
        # Same ranges and exclusions, other representations: uint8 with zero point 128 everywhere
        # (ReLUs not folded), and S8S8 (the x86 trap); then the correlation left in float.
        graphs["int8-u8-zp128"] = quantizer.write(tmp / f"int8_zp128{tag}.onnx", "cpu", repair.excluded, relu_zero_point=False).path
        graphs["int8-s8s8"] = quantizer.write(tmp / f"int8_s8s8{tag}.onnx", "cpu", repair.excluded, scheme="s8s8").path
        floatcorr = Int8Quantizer(fp32, feeds, Int8Options(method=method, int8_correlation=False))
        excluded = [n for n in repair.excluded if n in floatcorr.quantizable]
        graphs["int8-float-corr"] = floatcorr.write(tmp / f"int8_floatcorr{tag}.onnx", "cpu", excluded).path
    info = {"calibration_seconds": round(calib_s, 1), "excluded": repair.excluded, "guard": repair.check.as_dict(),
            "sensitivity_px": repair.sensitivity, "scheme": quantizer.options.cpu_scheme, "options": quantizer.options.describe()}
    return graphs, info


def cpu_times(variants: list[Variant], evaluator, pad: int, iterations: int) -> dict[str, float]:
    """Median single-thread CPU time (ms) of one run per graph, round-robin.

    Wall-clock latency on a CPU shared with other jobs includes time the process was not running;
    the CPU time of the (only) inference thread does not, so its ratios are the contention-free
    comparison. Spinning is off so waiting is not counted as work.
    """
    import statistics

    import onnxruntime as ort

    from edgeflow.preprocess import plan_geometry

    pair = evaluator.pairs[0]
    geo = plan_geometry(pair.frame1.shape[:2], (1, 3, None, None), pad)
    feed = {INPUT_NAMES[0]: geo.to_network(pair.frame1), INPUT_NAMES[1]: geo.to_network(pair.frame2)}
    sessions = {}
    for v in variants:
        if not v.latency:
            continue
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        sessions[v.name] = ort.InferenceSession(str(v.path), opts, providers=["CPUExecutionProvider"])
        sessions[v.name].run(None, feed)
    times = {name: [] for name in sessions}
    for _ in range(iterations):
        for name, sess in sessions.items():
            start = time.thread_time()
            sess.run(None, feed)
            times[name].append((time.thread_time() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="pwc-lite")
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="onnxruntime intra-op threads; the first is the table's latency, the others are added as ratios")
    ap.add_argument("--prune", type=float, default=0.5)
    ap.add_argument("--finetune-steps", type=int, default=DEFAULT_FINETUNE_STEPS)
    ap.add_argument("--calib-frames", type=int, default=32)
    ap.add_argument("--calib-method", default="minmax")
    ap.add_argument("--max-epe-increase", default="5%")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.manual_seed(0)

    from converters.load import load_model

    log = lambda text: print(f"  {text}", file=sys.stderr, flush=True)  # noqa: E731
    loaded = load_model(args.model)
    module = loaded.module.eval()
    pad = int(module.pad_multiple)
    h, w = -(-args.height // pad) * pad, -(-args.width // pad) * pad
    tmp = Path(tempfile.mkdtemp(prefix="bench-quant-"))
    evaluator = FlowEvaluator(validation_pairs(args.height, args.width), pad)
    budget = EpeBudget.parse(args.max_epe_increase)
    calib = load_calibration(None, args.calib_frames, args.height, args.width)
    feeds = PairFeeds(calib.pairs, INPUT_NAMES, pad)
    info = {"model": args.model, "weights": str(loaded.source_path), "resolution": [args.width, args.height],
            "threads": args.threads[0], "extra_threads": args.threads[1:], "iterations": args.iterations, "cpu": platform.processor() or platform.machine(),
            "calibration": calib.describe(), "budget": budget.describe()}

    log("exporting FP32 (slice_mean and band_matmul bodies)")
    ref = export(module, tmp / "fp32_slice_mean.onnx", h, w, "slice_mean")
    fp32 = export(module, tmp / "fp32.onnx", h, w, "band_matmul")
    log("FP16")
    fp16 = convert_fp16(fp32, tmp / "fp16.onnx")
    log("INT8 (calibrate, guard, write the CPU / TensorRT graphs and the alternatives)")
    graphs, info["int8"] = int8_graphs(fp32, tmp, "", feeds, evaluator, budget, args.calib_method, log)
    variants = [
        Variant("fp32", "fp32", fp32, module=module),
        Variant("fp32-slice_mean", "fp32", ref, module=module, reference="fp32"),
        Variant("fp16", "fp16", fp16, reference="fp32"),
        Variant("int8", "int8", graphs["int8"], reference="fp32"),
        Variant("int8-float-corr", "int8", graphs["int8-float-corr"], reference="fp32"),
        Variant("int8-u8-zp128", "int8", graphs["int8-u8-zp128"], reference="fp32"),
        Variant("int8-s8s8", "int8", graphs["int8-s8s8"], reference="fp32"),
        Variant("int8-trt", "int8", graphs["int8-trt"], reference="fp32", latency=False),
    ]
    if args.prune:
        tag = f"pruned{int(round(args.prune * 100))}"
        log(f"pruning {args.prune:.0%}, distilling {args.finetune_steps} steps")
        opts = ConvertOptions(model=args.model, prune=PruneOptions(ratio=args.prune, finetune_steps=args.finetune_steps))
        _, pruned, record = prune_stage(copy.deepcopy(module), opts)
        info["pruning"] = record
        pfp32 = export(pruned, tmp / "fp32_pruned.onnx", h, w, "band_matmul")
        pgraphs, info["int8_pruned"] = int8_graphs(pfp32, tmp, "_pruned", feeds, evaluator, budget, args.calib_method, log, False)
        pi8 = pgraphs["int8"]
        variants += [Variant(f"fp32-{tag}", "fp32", pfp32, module=pruned, reference="fp32"),
                     Variant(f"int8-{tag}", "int8", pi8, module=pruned, reference="fp32")]
    log(f"measuring {len(variants)} graphs ({args.iterations} round-robin iterations, {args.threads[0]} thread(s))")
    rows = measure_variants(variants, evaluator, args.height, args.width, pad, args.iterations, args.threads[0])
    for threads in args.threads[1:]:
        log(f"latency with {threads} threads")
        timed = [v for v in variants if v.latency]
        pair = evaluator.pairs[0]
        from edgeflow.preprocess import plan_geometry

        geo = plan_geometry(pair.frame1.shape[:2], (1, 3, None, None), pad)
        feed = {INPUT_NAMES[0]: geo.to_network(pair.frame1), INPUT_NAMES[1]: geo.to_network(pair.frame2)}
        extra = interleaved_latency({v.name: v.path for v in timed}, feed, args.iterations, threads)
        for r in rows:
            if r["name"] in extra:
                r[f"latency_{threads}t"] = extra[r["name"]]
                r[f"latency_{threads}t_vs_fp32"] = extra[r["name"]]["median_ms"] / extra["fp32"]["median_ms"]
    log("single-thread CPU time per graph")
    cpu = cpu_times(variants, evaluator, pad, max(5, args.iterations // 2))
    for r in rows:
        if r["name"] in cpu:
            r["cpu_ms_1thread"] = cpu[r["name"]]
            r["cpu_vs_fp32"] = cpu[r["name"]] / cpu["fp32"]
    fp32_row = next(r for r in rows if r["name"] == "fp32")
    for r in rows:
        if r["epe_vs_gt"] is not None and fp32_row["epe_vs_gt"]:
            r["epe_vs_gt_change"] = r["epe_vs_gt"] / fp32_row["epe_vs_gt"] - 1.0
    by = {r["name"]: r for r in rows}
    checks = {"int8_latency_ratio": by["int8"]["latency_vs_fp32"], "int8_cpu_time_ratio": by["int8"]["cpu_vs_fp32"],
              **{f"int8_latency_ratio_{t}t": by["int8"][f"latency_{t}t_vs_fp32"] for t in args.threads[1:]},
              "int8_epe_increase": by["int8"]["epe_vs_gt_change"]}
    if args.prune:
        checks["pruned_latency_ratio"] = by[f"fp32-{tag}"]["latency_vs_fp32"]
        checks["pruned_cpu_time_ratio"] = by[f"fp32-{tag}"]["cpu_vs_fp32"]
        for t in args.threads[1:]:
            checks[f"pruned_latency_ratio_{t}t"] = by[f"fp32-{tag}"][f"latency_{t}t_vs_fp32"]
        checks["pruned_epe_increase"] = by[f"fp32-{tag}"]["epe_vs_gt_change"]
    target_of = lambda k: TARGETS[k.rsplit("_", 1)[0]] if k not in TARGETS else TARGETS[k]  # noqa: E731
    info["targets"] = {k: {"measured": v, "target": target_of(k), "met": v <= target_of(k)} for k, v in checks.items()}
    result = {"info": info, "variants": rows}
    table = markdown(rows, info)
    print(conversion_table(result))
    print()
    print(table)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    if args.markdown:
        args.markdown.write_text(table + "\n")
    return 0


def markdown(rows: list[dict], info: dict) -> str:
    extra = info.get("extra_threads", [])
    head = (f"| variant | size MB | params M | GMACs | ORT ms median ({info['threads']}t) | ORT ms p95 ({info['threads']}t) | "
            f"vs FP32 ({info['threads']}t) | " + "".join(f"ORT ms median ({t}t) | vs FP32 ({t}t) | " for t in extra)
            + "1-thread CPU ms | vs FP32 CPU | EPE vs FP32 | EPE vs GT | EPE vs GT change |")
    lines = [head, "|" + "---|" * (12 + 2 * len(extra))]
    f = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    for r in rows:
        lat = r.get("latency") or {}
        lines.append(f"| {r['name']} | {f(r['size_mb'], '.2f')} | {f(r['params_m'], '.2f')} | {f(r['gmacs'], '.2f')} | "
                     f"{f(lat.get('median_ms'), '.1f')} | {f(lat.get('p95_ms'), '.1f')} | {f(r.get('latency_vs_fp32'), '.2f')}x | "
                     + "".join(f"{f((r.get(f'latency_{t}t') or {}).get('median_ms'), '.1f')} | {f(r.get(f'latency_{t}t_vs_fp32'), '.2f')}x | " for t in extra) +
                     f"{f(r.get('cpu_ms_1thread'), '.1f')} | {f(r.get('cpu_vs_fp32'), '.2f')}x | "
                     f"{f(r['epe_vs_fp32'], '.3f')} | {f(r['epe_vs_gt'], '.3f')} | {f(100 * r['epe_vs_gt_change'] if r.get('epe_vs_gt_change') is not None else None, '+.1f')}% |")
    lines.append("")
    lines.append(f"{info['model']} ({info['weights']}) at {info['resolution'][0]}x{info['resolution'][1]}, onnxruntime CPU, "
                 f"{info['threads']} thread(s) (also {extra}), {info['iterations']} round-robin iterations, {info['cpu']}; "
                 f"calibration {info['calibration']['source']} x {info['calibration']['pairs']} pairs.")
    for k, t in info.get("targets", {}).items():
        lines.append(f"- {k}: measured {t['measured']:.3f}, target <= {t['target']} -> {'met' if t['met'] else 'NOT met'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
