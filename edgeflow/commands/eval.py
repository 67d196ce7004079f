"""``edgeflow eval [MODEL|ARTIFACT] --data PATH|builtin``: accuracy against ground truth, with baselines."""

from __future__ import annotations

import sys
from pathlib import Path

NAME = "eval"
HELP = "measure flow accuracy (EPE, 1/3/5px, Fl-all) on Sintel, KITTI, Middlebury, triples or the built-in set"
DESCRIPTION = """\
Score an optical-flow model against ground truth, optionally next to OpenCV's classical methods
run on the same pairs in the same run. Prints a table per sequence and overall; --json writes
every number (per pair, per sequence, overall; both pixel and pair averages).

MODEL|ARTIFACT is one of:
  (omitted)        the bundled default artifact (default)
  an artifact dir  a folder with manifest.json (from `edgeflow convert`): runs through the runtime
  a zoo name       default, pwc-lite, pwc, flownetc-s, ...: eager PyTorch (host only, needs torch)
  a model file     an edgeflow checkpoint, TorchScript or .pt2 file: eager PyTorch (host only)

--data PATH is detected from its layout (override with --format):
  sintel       <root>/training/{clean,final}/SEQ/frame_NNNN.png + training/flow/SEQ/frame_NNNN.flo
  kitti        <root>/training/image_2/NNNNNN_10.png, _11.png + training/flow_occ/NNNNNN_10.png
  middlebury   <root>/other-data/SEQ/frame10.png, frame11.png + other-gt-flow/SEQ/flow10.flo
  triples      one folder of NAME_frame1.png, NAME_frame2.png, NAME_flow.flo (or KITTI .png)
  builtin      --data builtin: real photos with known motion + the Middlebury motorcycle stereo pair
  unseen       --data unseen: held-out photos and texture families no training recipe uses + the motorcycle pair

examples:
  edgeflow eval --data builtin --baseline dis-medium,dis-ultrafast
  edgeflow eval pwc-lite-fp32/ --data ~/data/MPI-Sintel-complete --pass final --json sintel.json
  edgeflow eval --no-model --data builtin --baseline all --save-vis vis/
See docs/eval.md.
"""


def add_arguments(p):
    from edgeflow.evaluation.baselines import BASELINES

    p.add_argument("model", nargs="?", metavar="MODEL|ARTIFACT",
                   help="artifact directory, zoo name or model file (default: the bundled default artifact)")
    p.add_argument("--data", required=True, metavar="PATH|builtin|unseen",
                   help="data-set folder, 'builtin', or 'unseen' (held-out material no training recipe uses)")
    p.add_argument("--format", choices=["sintel", "kitti", "middlebury", "triples", "builtin", "unseen"],
                   help="data layout (default: detected from the folder)")
    p.add_argument("--pass", dest="sintel_pass", choices=["clean", "final", "both"], default="clean",
                   help="Sintel render pass (default clean)")
    p.add_argument("--kitti-gt", choices=["occ", "noc"], default="occ",
                   help="KITTI ground truth: occ = all pixels with GT (default), noc = non-occluded only")
    p.add_argument("--baseline", metavar="LIST",
                   help=f"comma-separated OpenCV baselines to run on the same pairs: {', '.join(BASELINES)}, or all")
    p.add_argument("--no-model", action="store_true", help="run only the --baseline methods")
    p.add_argument("--max-pairs", type=int, metavar="N", help="evaluate only the first N pairs")
    p.add_argument("--average", choices=["pixel", "pair"], default="pixel",
                   help="average the table shows: pixel (every valid pixel weighs the same, default) or pair "
                        "(every pair weighs the same); the JSON has both")
    p.add_argument("--save-vis", type=Path, metavar="DIR",
                   help="write frame1 | estimate | ground truth | error PNG panels per pair and method")
    p.add_argument("--json", type=Path, metavar="FILE", help="write all results as JSON")
    p.add_argument("--backend", choices=["auto", "onnxruntime", "tensorrt"], default="auto",
                   help="runtime backend for an artifact (default auto)")
    p.add_argument("--threads", type=int, help="inference threads for an artifact (default: all cores)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow loading a pickled whole nn.Module (can execute code: only for files you trust)")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def _model_method(args):
    from edgeflow.errors import ArtifactError, EdgeflowError
    from edgeflow.evaluation.evaluate import Method, artifact_method

    if args.no_model:
        if args.model:
            raise EdgeflowError(f"--no-model contradicts MODEL {args.model!r}; drop one of them")
        return None
    if args.model is None:
        try:
            return artifact_method(None, threads=args.threads, backend=args.backend)
        except ArtifactError as err:
            if "bundled default model is missing" not in str(err):
                raise
            raise ArtifactError(
                "the bundled default model is not installed; pass MODEL or ARTIFACT, or --no-model --baseline LIST"
            ) from None
    path = Path(args.model).expanduser()
    if path.is_dir():
        return artifact_method(path, threads=args.threads, backend=args.backend)
    try:
        from converters.eager import EagerFlowModel  # host only: imports torch
    except ImportError as err:
        raise EdgeflowError(
            f"evaluating {args.model} eagerly needs PyTorch ({err.name or err}); install the host toolchain (pip install '.[convert]' in the edgeflow checkout), "
            "or convert it with `edgeflow convert` and pass the artifact directory"
        ) from None
    model = EagerFlowModel(args.model, trust_pickle=args.trust_pickle)
    if model.warning:
        print(f"edgeflow eval: warning: {model.warning}", file=sys.stderr)
    return Method(model.name, "model", model.infer, model.info, model.close)


def _progress(quiet: bool):
    """The evaluation loop's ``progress(index, total, key)`` as the shared bar (edgeflow.console):
    drawn only where the console handler writes to a terminal, so log lines never land on it."""
    if quiet:
        return None
    from edgeflow.console import progress_bar

    state = {}

    def show(index: int, total: int, key: str) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = progress_bar(total=total, desc="eval")
        bar.update(index - bar.n)
        if index >= total:
            bar.close()
        else:
            bar.set_postfix(pair=key)

    return show


def run(args) -> int:
    from edgeflow.evaluation.baselines import parse_baselines
    from edgeflow.datasets import open_dataset
    from edgeflow.errors import InputError
    from edgeflow.evaluation.evaluate import baseline_method, evaluate

    baselines = parse_baselines(args.baseline)  # validate everything cheap before loading anything
    if args.no_model and not baselines:
        raise InputError("--no-model needs --baseline LIST (there is nothing else to evaluate)")
    if args.max_pairs is not None and args.max_pairs < 1:
        raise InputError(f"--max-pairs must be at least 1, got {args.max_pairs}")
    dataset = open_dataset(args.data, args.format, sintel_pass=args.sintel_pass, kitti_gt=args.kitti_gt)
    methods = []
    try:
        model = _model_method(args)
        if model is not None:
            methods.append(model)
        methods += [baseline_method(name) for name in baselines]
        subset = dataset.head(args.max_pairs)
        print(f"data: {subset.describe()}: {len(subset)} pairs, {len(subset.sequences())} sequences")
        print(f"methods: {', '.join(f'{m.name} ({m.kind})' for m in methods)}")
        report = evaluate(subset, methods, vis_dir=args.save_vis, progress=_progress(args.quiet), data_label=args.data)
    finally:
        for method in methods:
            if method.close is not None:
                method.close()
    print()
    print(report.format_table(args.average))
    if len(methods) > 1:
        print()
        print(report.format_epe_matrix(args.average))
    print()
    print(f"Averaged per {args.average} ({'every valid pixel' if args.average == 'pixel' else 'every pair'} weighs the same).")
    print(report_legend())
    if args.json:
        print(f"wrote {report.write_json(args.json, args.average)}")
    if args.save_vis:
        print(f"wrote {len(report.pairs) * len(methods)} panels under {args.save_vis}")
    return 0


def report_legend() -> str:
    from edgeflow.evaluation.report import LEGEND

    return LEGEND
