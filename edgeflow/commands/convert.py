"""``edgeflow convert MODEL``: PyTorch model -> validated artifact directory (host side, needs torch)."""

from __future__ import annotations

from pathlib import Path

NAME = "convert"
HELP = "convert a PyTorch model (file or zoo name) into a validated artifact directory"
DESCRIPTION = """\
Convert a PyTorch optical-flow model into an edgeflow artifact: ONNX graph(s), manifest.json with
sha256 of every file, and report.json with parity and latency numbers.

MODEL is one of:
  a zoo name           pwc-lite, pwc, flownetc-s (bundled weights when shipped)
  an edgeflow checkpoint  {"arch", "config", "state_dict"} saved with torch.save (loaded weights-only)
  a TorchScript archive   torch.jit.save(...)
  a torch.export program  .pt2 (torch.export.save)
  a pickled nn.Module     only with --trust-pickle: unpickling can run arbitrary code

The exported graph is checked against PyTorch on real frames before the artifact is marked valid;
a failed check exits non-zero and leaves the directory marked invalid (the runtime refuses it).

examples:
  edgeflow convert pwc-lite --out pwc-lite-fp32
  edgeflow convert my_checkpoint.pt --height 480 --width 640 --out flow640
"""


def add_arguments(p):
    p.add_argument("model", help="zoo name or model file (see above)")
    p.add_argument("--out", type=Path, help="artifact directory to write (default: ./<name>-fp32)")
    p.add_argument("--height", type=int, default=240, help="frame height used for export, parity and latency (default 240)")
    p.add_argument("--width", type=int, default=320, help="frame width (default 320)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17; TensorRT 10.3 parses up to 20)")
    p.add_argument("--exporter", choices=["torchscript", "dynamo"], default="torchscript",
                   help="torch ONNX exporter; dynamo is checked and refused if it drops the correlation op")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow loading a pickled whole nn.Module (can execute code: only for files you trust)")
    p.add_argument("--no-split", action="store_true", help="do not export encoder/decoder graphs for feature caching")
    p.add_argument("--parity-pairs", type=int, default=3, help="real frame pairs used for the parity check (default 3)")
    p.add_argument("--parity-epe", type=float, default=1e-2, help="max mean EPE (px) between ONNX and PyTorch (default 0.01)")
    p.add_argument("--pad-multiple", type=int, help="input size multiple for models that do not declare one (default 64)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def run(args) -> int:
    from converters.convert import ConvertJob, ConvertOptions
    from converters.report import print_conversion_report

    opts = ConvertOptions(
        model=args.model, out=args.out, height=args.height, width=args.width, opset=args.opset,
        exporter=args.exporter, trust_pickle=args.trust_pickle, split=not args.no_split,
        parity_pairs=args.parity_pairs, tol_epe=args.parity_epe, pad_multiple=args.pad_multiple, quiet=args.quiet,
    )
    result = ConvertJob(opts).run()
    print_conversion_report(result)
    print(f"done: {result.out}")
    return 0
