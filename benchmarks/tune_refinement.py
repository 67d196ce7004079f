"""Issue 14: how the default model's Lucas-Kanade refinement settings were chosen.

Every candidate setting of :mod:`converters.zoo.refine` runs on the *tuning set*
(:func:`edgeflow.synthetic.tuning_eval.tuning_set`: the unseen set's kinds of pairs made from
training material only), with the shipped network weights, next to the bare network and OpenCV
DIS on the same pairs. The unseen set is never read here: it is measured once, afterwards, by
``edgeflow eval`` and ``benchmarks/bench_default_candidates.py``.

    python benchmarks/tune_refinement.py [--json out.json] [--markdown out.md]

Latency is not measured here (it depends on onnxruntime's kernels, not on PyTorch's): the
candidates that fit are timed side by side with pwc-lite by ``bench_default_candidates.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: name -> (scales, iterations, windows, smoothing windows); "bare" is the network alone.
CANDIDATES = {
    "bare": ((), (), (), ()),
    "1/2 x1": ((2,), (1,), (11,), (9,)),
    "1/2 x2": ((2,), (2,), (11,), (9,)),
    "1/2 x3": ((2,), (3,), (11,), (9,)),
    "1/2 x3, no smoothing": ((2,), (3,), (11,), (1,)),
    "1/2 x3, window 15": ((2,), (3,), (15,), (9,)),
    "1/4 x1, 1/2 x1": ((4, 2), (1, 1), (9, 9), (9, 9)),
    "1/4 x2, 1/2 x1": ((4, 2), (2, 1), (9, 9), (9, 9)),
    "1/4 x1, 1/2 x2": ((4, 2), (1, 2), (9, 9), (9, 9)),
    "1/4 x2, 1/2 x2": ((4, 2), (2, 2), (9, 9), (9, 9)),
    "1/4 x2, 1/2 x3": ((4, 2), (2, 3), (9, 11), (9, 9)),
    "1/2 x3, full x1": ((2, 1), (3, 1), (11, 7), (9, 5)),
    "1/2 x3, full x2": ((2, 1), (3, 2), (11, 7), (9, 5)),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)

    import tempfile

    import torch

    from converters.eager import EagerFlowModel
    from converters.load import save_checkpoint
    from converters.zoo import get_model
    from converters.zoo.neuflow import DEFAULT_CONFIG
    from edgeflow.datasets.base import MemoryDataset
    from edgeflow.datasets.builtin import as_flow_pair
    from edgeflow.evaluation.evaluate import Method, baseline_method, evaluate
    from edgeflow.synthetic.tuning_eval import tuning_set

    torch.set_num_threads(1)
    dataset = MemoryDataset("tuning", "tuning", [as_flow_pair(p, i) for i, p in enumerate(tuning_set())])
    network = get_model("default")
    shipped = {}
    with tempfile.TemporaryDirectory() as tmp:
        # Each setting as an edgeflow checkpoint (same weights, its own config), scored by the
        # same eager path and evaluation loop as `edgeflow eval CHECKPOINT`.
        methods = []
        for name, (scales, iterations, windows, smooth) in CANDIDATES.items():
            config = dataclasses.replace(DEFAULT_CONFIG, lk_scales=scales, lk_iterations=iterations,
                                         lk_windows=windows, lk_smooth=smooth)
            shipped[name] = config == DEFAULT_CONFIG
            path = save_checkpoint(network, Path(tmp) / f"candidate{len(methods)}.pt", arch="neuflow",
                                   config=dataclasses.asdict(config))
            model = EagerFlowModel(path)
            methods.append(Method(name, "model", model.infer, model.info, model.close))
        methods += [baseline_method(preset) for preset in ("dis-ultrafast", "dis-fast", "dis-medium")]
        report = evaluate(dataset, methods, data_label="tuning")
    rows = [{"setting": m.name, "shipped": shipped.get(m.name, False),
             "tuning_epe": report.metric(m.name, "epe", average="pair")} for m in methods]
    for row in rows:
        print(f"{row['setting']:28s} {row['tuning_epe']:.3f}{'  (shipped)' if row['shipped'] else ''}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"pairs": len(dataset), "rows": rows}, indent=2) + "\n")
    if args.markdown:
        lines = ["| refinement (scale x iterations) | tuning-set mean EPE (px) |", "|---|---:|"]
        lines += [f"| {r['setting']}{' **(shipped)**' if r['shipped'] else ''} | {r['tuning_epe']:.3f} |" for r in rows]
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(lines) + f"\n\n{len(dataset)} tuning pairs (training material only), "
                                 "eager PyTorch, mean EPE per pair.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
