"""Mean EPE of checkpoints vs OpenCV DIS (ULTRAFAST, FAST, MEDIUM) on the built-in or unseen set.

A quick progress check while training (``edgeflow eval`` is the full tool): it runs the model
eagerly in PyTorch and the two DIS presets on the same pairs, and prints one table.

    python benchmarks/eval_default_vs_dis.py                          # the bundled pwc-lite
    python benchmarks/eval_default_vs_dis.py out/train/pwc-lite/model_step800.pt [more.pt ...]
    python benchmarks/eval_default_vs_dis.py --pairs 3 CKPT           # first 3 pairs + motorcycle
    python benchmarks/eval_default_vs_dis.py --json out.json CKPT
    python benchmarks/eval_default_vs_dis.py --data unseen default runs/default/model.pt

EPE: mean over valid pixels of each pair, then mean over pairs ("mean" row), plus the real
Middlebury motorcycle pair alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DIS_PRESETS = {"dis-ultrafast": 0, "dis-fast": 1, "dis-medium": 2}  # cv2.DISOPTICAL_FLOW_PRESET_* values


def epe(flow: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    err = np.sqrt(((flow - gt) ** 2).sum(-1))
    return float(err[valid.astype(bool)].mean())


def dis_flow(preset: str, frame1: np.ndarray, frame2: np.ndarray) -> np.ndarray:
    import cv2

    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    g1 = cv2.cvtColor(frame1, cv2.COLOR_RGB2GRAY)
    g2 = cv2.cvtColor(frame2, cv2.COLOR_RGB2GRAY)
    return dis.calc(g1, g2, None)


def model_flow(model, frame1: np.ndarray, frame2: np.ndarray) -> np.ndarray:
    import torch

    def tensor(frame):
        return torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1), np.float32))[None]

    with torch.no_grad():
        flow = model.forward_any_size(tensor(frame1), tensor(frame2))
    return flow[0].permute(1, 2, 0).numpy()


def load(spec: str):
    from converters.load import load_model

    return load_model(spec).module.eval()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*", default=["pwc-lite"], help="edgeflow checkpoints or zoo names")
    parser.add_argument("--pairs", type=int, help="use only the first N pairs (the motorcycle pair is always kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--json", type=Path, help="also write the table as JSON")
    parser.add_argument("--data", choices=["builtin", "unseen"], default="builtin",
                        help="built-in set (default) or the unseen set (held-out material, edgeflow.synthetic.unseen_eval)")
    args = parser.parse_args(argv)

    import torch

    from edgeflow.synthetic import builtin_eval_set

    torch.set_num_threads(args.threads)
    if args.data == "unseen":
        from edgeflow.synthetic.unseen_eval import unseen_eval_set

        pairs = unseen_eval_set()
    else:
        pairs = builtin_eval_set()
    if args.pairs is not None:
        pairs = pairs[: args.pairs] + [p for p in pairs[args.pairs :] if p.name.startswith("motorcycle")]
    methods = {name: (lambda f1, f2, n=name: dis_flow(n, f1, f2)) for name in DIS_PRESETS}
    for spec in args.checkpoints:
        model = load(spec)
        label = spec.replace("/model.pt", "").split("/")[-1] if spec.endswith(".pt") else spec
        methods[label] = lambda f1, f2, m=model: model_flow(m, f1, f2)

    table = {name: {} for name in methods}
    for pair in pairs:
        for name, method in methods.items():
            table[name][pair.name] = epe(method(pair.frame1, pair.frame2), pair.flow, pair.valid)
    for name in table:
        table[name]["mean"] = float(np.mean([table[name][p.name] for p in pairs]))

    width = max(len(n) for n in methods) + 2
    rows = [p.name for p in pairs] + ["mean"]
    print(f"{'EPE (px)':<26}" + "".join(f"{n:>{width}}" for n in methods))
    for row in rows:
        print(f"{row:<26}" + "".join(f"{table[n][row]:>{width}.3f}" for n in methods))
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
