"""``edgeflow convert MODEL``: PyTorch model -> validated artifact directory (host side, needs torch)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

NAME = "convert"
HELP = "convert a PyTorch model (file or zoo name) into a validated artifact directory"
DESCRIPTION = """\
Convert a PyTorch optical-flow model into an edgeflow artifact: ONNX graph(s), manifest.json with
sha256 of every file, and report.json with parity and latency numbers, and for split artifacts the
throughput gain feature caching will give this model (encoder vs decoder time).

MODEL is one of:
  a zoo name           default, pwc-lite, pwc, flownetc-s, neuflow-lite, rapid-lite, fastflow-lite
                       (bundled weights when shipped)
  an edgeflow checkpoint  {"arch", "config", "state_dict"} saved with torch.save (loaded weights-only)
  a TorchScript archive   torch.jit.save(...)
  a torch.export program  .pt2 (torch.export.save)
  a pickled nn.Module     only with --trust-pickle: unpickling can run arbitrary code
  an artifact directory   with --target tensorrt: build its TensorRT engine on this device

--out is written through a fresh staging folder beside it and swapped in at the end; it replaces
only an empty folder or a previous artifact (recognized by its manifest, holding only the files
the manifest lists). Anything else is refused before any work, saying what would be replaced;
--force replaces it anyway (never the current folder, its parents, home or /).

The exported graph is checked against PyTorch on real frames before the artifact is marked valid;
a failed check exits non-zero and leaves the directory marked invalid (the runtime refuses it).

Lower precision and pruning (see docs/quantization.md):
  --int8      static INT8 (QDQ, symmetric ranges) calibrated on consecutive frame pairs; model.onnx is
              the CPU-fastest form (x86: U8S8, ARM: S8S8), model_int8_trt.onnx the TensorRT-bound
              graph (signed INT8, zero point 0), model_fp32.onnx the validated FP32 graph
  --fp16      FP16 graph with float32 inputs/outputs (the precision hint for TensorRT builds)
  every FP16/INT8 graph is scored on the built-in evaluation set; if mean EPE vs ground truth rises
  by --max-epe-increase or more (default 5%), INT8 keeps its most sensitive convolutions in float
  until it does not, or convert fails and nothing is marked valid
  --prune R   remove a fraction R of the channels of every prunable layer, then --finetune-steps N
              of distillation from the unpruned model on synthetic pairs

TensorRT (docs/deploy_jetson.md): --target tensorrt adds an engine built on THIS device (engines are
tied to one TensorRT version and GPU model); on a Jetson, copy the artifact and convert it there.

examples:
  edgeflow convert pwc-lite --out pwc-lite-fp32
  edgeflow convert my_checkpoint.pt --height 480 --width 640 --out flow640
  edgeflow convert pwc-lite --int8 --calib drive.mp4 --calib-frames 64 --out pwc-lite-int8
  edgeflow convert pwc-lite --prune 0.5 --finetune-steps 6000 --int8 --out pwc-lite-small
  edgeflow convert my_pwcnet.pt --trust-pickle --out mine      # third-party correlation layers recognized
  edgeflow convert my_net.pt2 --correlation matcher:max_displacement=3 --input-range 0-1 --out mine

Your own model (docs/byo.md): correlation layers written against spatial-correlation-sampler, PTLFlow,
mmcv, flownet2, the cupy PWC-Net/LiteFlowNet ports or localcorr are swapped for edgeflow's op (each
checked numerically; convert lists them), parity is checked against your unmodified model at two sizes,
a TorchScript trace is exported for its size only, and the report lists the slowest ops of the graph.
"""

#: --finetune-steps when --prune is given without it: what benchmarks/bench_quantization.py measured
#: (docs/quantization.md: 50 % pruning within its accuracy budget).
DEFAULT_FINETUNE_STEPS = 6000


def add_arguments(p):
    p.add_argument("model", help="zoo name or model file, or an artifact directory with --target tensorrt (see above)")
    p.add_argument("--out", type=Path, help="artifact directory to write (default: ./<name>-<precision>); an existing "
                   "folder is replaced only when it is empty or a previous artifact")
    p.add_argument("--force", action="store_true",
                   help="replace --out even when it holds files that are not an edgeflow artifact (never the current "
                        "folder, home or /)")
    p.add_argument("--height", type=int, default=240, help="frame height used for export, parity and latency (default 240)")
    p.add_argument("--width", type=int, default=320, help="frame width (default 320)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17; TensorRT 10.3 parses up to 20)")
    p.add_argument("--exporter", choices=["torchscript", "dynamo"], default="torchscript",
                   help="torch ONNX exporter; both emit one Correlation node per call (checked); .pt2 programs always "
                        "use dynamo")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow loading a pickled whole nn.Module (can execute code: only for files you trust)")
    p.add_argument("--no-split", action="store_true", help="do not export encoder/decoder graphs for feature caching")
    p.add_argument("--parity-pairs", type=int, default=3, help="real frame pairs used for the parity check (default 3)")
    p.add_argument("--parity-epe", type=float, default=1e-2, help="max mean EPE (px) between ONNX and PyTorch (default 0.01)")
    p.add_argument("--pad-multiple", type=int, help="input size multiple for models that do not declare one (default 64)")
    p.add_argument("--quiet", action="store_true", help="warnings and errors only: no step lines, no progress bars")
    b = p.add_argument_group("your own model (docs/byo.md)")
    b.add_argument("--no-recognize", action="store_true",
                   help="do not swap third-party correlation layers (spatial-correlation-sampler, mmcv, flownet2, cupy, "
                        "localcorr) for edgeflow's op")
    b.add_argument("--correlation", action="append", default=[], metavar="PATH:ATTRS",
                   help="declare a module of your model as a correlation, e.g. decoder.corr:max_displacement=4,stride2=2,"
                        "normalize=0,output=5d (verified numerically; repeatable)")
    b.add_argument("--input-layout", choices=["pair", "stacked", "ptlflow"], default=None,
                   help="what the model takes: two tensors (pair), one (B,2,3,H,W) tensor (stacked) or PTLFlow's "
                        "{'images': ...} dict (default: detected, else pair)")
    b.add_argument("--input-range", choices=["0-255", "0-1"], default=None, help="pixel value range the model expects (default 0-255; PTLFlow: 0-1)")
    b.add_argument("--color-order", choices=["RGB", "BGR"], default=None, help="channel order the model expects (default RGB; PTLFlow: BGR)")
    b.add_argument("--mean", metavar="M1,M2,M3", default=None, help="per-channel mean subtracted after scaling to --input-range")
    b.add_argument("--std", metavar="S1,S2,S3", default=None, help="per-channel std divided after subtracting --mean")
    b.add_argument("--no-profile", action="store_true", help="skip the slowest-ops profile of the converted graph")
    q = p.add_argument_group("precision and pruning")
    q.add_argument("--int8", action="store_true", help="static INT8 quantization (QDQ) with the accuracy guard")
    q.add_argument("--calib", metavar="SOURCE", default=None,
                   help="calibration frames: a video file, an image folder/glob, a camera URI, or 'synthetic' (default)")
    q.add_argument("--calib-frames", type=int, default=32, metavar="N", help="consecutive frame pairs used for calibration (default 32)")
    q.add_argument("--calib-method", choices=["minmax", "entropy", "percentile"], default="minmax",
                   help="activation range estimation (default minmax)")
    q.add_argument("--per-channel", dest="per_channel", action="store_true", default=True,
                   help="per-output-channel weight scales (default)")
    q.add_argument("--per-tensor", dest="per_channel", action="store_false", help="one weight scale per tensor")
    q.add_argument("--int8-scheme", choices=["auto", "u8s8", "s8s8"], default="auto",
                   help="onnxruntime CPU representation: auto = U8S8 on x86, S8S8 on ARM")
    q.add_argument("--fp16", action="store_true", help="also (or only) produce an FP16 graph with float32 I/O")
    q.add_argument("--max-epe-increase", metavar="X", default=None,
                   help="accuracy budget of FP16/INT8 vs FP32 on mean EPE against ground truth: "
                        "a percentage (default 5%%), pixels (0.2px) or 'off'")
    q.add_argument("--prune", type=float, metavar="RATIO", default=None,
                   help="structured pruning: remove this fraction of the channels of each prunable layer (PWC and NeuFlow families)")
    q.add_argument("--finetune-steps", type=int, default=None, metavar="N",
                   help=f"distillation steps after --prune (default {DEFAULT_FINETUNE_STEPS}, ~70 min for pwc-lite, ~2-3 h for default (192x256 crops) on a 2-core CPU; 0 = none)")
    q.add_argument("--latency-iterations", type=int, default=10, help="timed runs per graph for the report (default 10)")
    q.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads for latency (default: all cores)")
    t = p.add_argument_group("TensorRT engine (built on the device that runs it)")
    t.add_argument("--target", choices=["onnx", "tensorrt"], default="onnx",
                   help="tensorrt: also build a TensorRT engine here (needs TensorRT, a GPU, `edgeflow build-plugin`)")
    t.add_argument("--workspace", type=float, metavar="GB", help="TensorRT builder workspace limit (default: TensorRT's)")
    t.add_argument("--dla", type=int, metavar="N", help="build for Jetson DLA core N with GPU fallback (needs --fp16 or --int8)")
    t.add_argument("--timing-cache", type=Path, metavar="FILE",
                   help="TensorRT timing cache to reuse (default: ~/.cache/edgeflow/, per TensorRT version and GPU)")


def tensorrt_options(args):
    """The engine flags (``None``: ``--target onnx``); --int8 / --fp16 pick an existing artifact's engine precision."""
    from edgeflow.tensorrt_engines import TensorRTOptions

    if args.target != "tensorrt":
        return None
    return TensorRTOptions(precision="int8" if args.int8 else "fp16" if args.fp16 else None, fp16_fallback=args.int8 and args.fp16,
                           workspace_gb=args.workspace, dla_core=args.dla, timing_cache=args.timing_cache,
                           split=not args.no_split)


def options_from_args(args):
    """The one place argparse's flags become :class:`converters.convert.ConvertOptions` (each group
    built field by field; ``ConvertOptions.validate`` then checks them all)."""
    from converters.byo import InputOptions, parse_triplet
    from converters.convert import CheckOptions, ConvertOptions, ExportOptions, PruneOptions, RecognizeOptions
    from converters.quantize.pipeline import QuantizeRequest

    finetune = args.finetune_steps
    if finetune is None:
        finetune = DEFAULT_FINETUNE_STEPS if args.prune is not None else 0
    return ConvertOptions(
        model=args.model, out=args.out, force=args.force, trust_pickle=args.trust_pickle,
        export=ExportOptions(height=args.height, width=args.width, opset=args.opset, exporter=args.exporter,
                             split=not args.no_split, pad_multiple=args.pad_multiple),
        quantize=QuantizeRequest(int8=args.int8, fp16=args.fp16, calib=args.calib, calib_frames=args.calib_frames,
                                 calib_method=args.calib_method, per_channel=args.per_channel,
                                 int8_scheme=None if args.int8_scheme == "auto" else args.int8_scheme,
                                 max_epe_increase=args.max_epe_increase),
        prune=PruneOptions(ratio=args.prune, finetune_steps=finetune),
        check=CheckOptions(parity_pairs=args.parity_pairs, tol_epe=args.parity_epe, latency_iterations=args.latency_iterations,
                           latency_threads=args.threads, profile_ops=not args.no_profile),
        inputs=InputOptions(layout=args.input_layout, input_range=args.input_range, color_order=args.color_order,
                            mean=parse_triplet(args.mean, "--mean"), std=parse_triplet(args.std, "--std")),
        recognize=RecognizeOptions(enabled=not args.no_recognize, correlations=list(args.correlation)),
        tensorrt=tensorrt_options(args),  # ConvertJob checks, builds, reports
    )


def run(args) -> int:
    if Path(args.model, "manifest.json").is_file():  # an existing artifact: build its engine on this device
        from edgeflow.tensorrt_engines import run_artifact_target

        engine = tensorrt_options(args)
        run_artifact_target(args.model, engine and dataclasses.replace(engine, out=args.out))
        return 0
    from converters.convert import ConvertJob
    from converters.report import conversion_report_text

    result = ConvertJob(options_from_args(args)).run()
    print(conversion_report_text(result))
    print(f"done: {result.out}")
    return 0
