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

import numpy as np

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


def mean_epe(model, pairs) -> float:
    import torch

    values = []
    for pair in pairs:
        frames = [torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1)[None].float() for f in (pair.frame1, pair.frame2)]
        with torch.no_grad():
            flow = model.forward_any_size(*frames)[0].permute(1, 2, 0).numpy()
        values.append(float(np.linalg.norm(flow - pair.flow, axis=-1)[np.asarray(pair.valid, bool)].mean()))
    return float(np.mean(values))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)

    import torch

    from converters.zoo import build_model, get_model
    from converters.zoo.neuflow import DEFAULT_CONFIG
    from edgeflow.evaluation.baselines import Baseline
    from edgeflow.synthetic.tuning_eval import tuning_set

    torch.set_num_threads(1)
    pairs = tuning_set()
    weights = get_model("default").state_dict()
    rows = []
    for name, (scales, iterations, windows, smooth) in CANDIDATES.items():
        config = dataclasses.replace(DEFAULT_CONFIG, lk_scales=scales, lk_iterations=iterations, lk_windows=windows,
                                     lk_smooth=smooth)
        model = build_model("neuflow", config)
        model.load_state_dict(weights)
        model.eval()
        rows.append({"setting": name, "shipped": config == DEFAULT_CONFIG, "tuning_epe": mean_epe(model, pairs)})
        print(f"{name:28s} {rows[-1]['tuning_epe']:.3f}{'  (shipped)' if rows[-1]['shipped'] else ''}", flush=True)
    for preset in ("dis-ultrafast", "dis-fast", "dis-medium"):
        method = Baseline(preset)
        epe = [float(np.linalg.norm(method(p.frame1, p.frame2) - p.flow, axis=-1)[np.asarray(p.valid, bool)].mean())
               for p in pairs]
        rows.append({"setting": preset, "shipped": False, "tuning_epe": float(np.mean(epe))})
        print(f"{preset:28s} {rows[-1]['tuning_epe']:.3f}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"pairs": len(pairs), "rows": rows}, indent=2) + "\n")
    if args.markdown:
        lines = ["| refinement (scale x iterations) | tuning-set mean EPE (px) |", "|---|---:|"]
        lines += [f"| {r['setting']}{' **(shipped)**' if r['shipped'] else ''} | {r['tuning_epe']:.3f} |" for r in rows]
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(lines) + f"\n\n{len(pairs)} tuning pairs (training material only), eager PyTorch.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
