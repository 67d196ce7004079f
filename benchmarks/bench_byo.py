"""Bring-your-own-model benchmark: PTLFlow models through `edgeflow convert` (issue 13).

Runs in the separate PTLFlow venv (`make test-ptlflow` / `make bench-byo` create it: PTLFlow needs
torchvision, i.e. the multi-GB CUDA build of torch, which stays out of `make test`). For each
model (random weights, the thinnest wrapper a user writes: two RGB 0..255 frames in, flow out)
it saves the model as a TorchScript trace, a pickle and a torch.export .pt2, converts each with
`edgeflow convert`, and checks:

* every artifact has as many ``edgeflow::Correlation`` nodes as the model makes correlation calls
  (counted by running the eager model with the recognized layers swapped);
* parity passed (against the original, unmodified model);
* onnxruntime latency at 320x240: the artifact vs the same model exported plainly
  (``torch.onnx.export(wrapper, args, f, dynamo=False)``), measured alternately in one run;
  with ``--int8`` also the INT8 artifact vs the FP32 one (pickle), in the same round-robin.

Goals (issue 13), printed and written under ``goals``: pwcnet and fastflownet artifacts at least
2x faster than the plain export, and each INT8 artifact faster than its FP32 one.

Raw results go to benchmarks/results/bench_byo.json; docs/byo.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ("pwcnet", "fastflownet", "neuflow")
FORMATS = ("pickle", "pt2", "trace")


class Wrapper(torch.nn.Module):
    """What a user writes around a PTLFlow model: RGB 0..255 frames in, (B, 2, H, W) flow out."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, frame1, frame2):
        images = torch.stack([frame1, frame2], 1)[:, :, [2, 1, 0]] / 255.0  # PTLFlow: BGR, 0..1
        return self.model({"images": images})["flows"][:, 0]


def build(name: str) -> Wrapper:
    import ptlflow

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ptlflow.get_model(name)
    # The importable class (not __main__'s), so the pickle loads in `edgeflow convert`.
    from benchmarks.bench_byo import Wrapper as Importable

    return Importable(model.eval()).eval()


def save_all(name: str, folder: Path, h: int, w: int) -> dict:
    wrapper = build(name)
    x = torch.rand(1, 3, h, w) * 255
    paths = {}
    torch.save(wrapper, folder / f"{name}.pickle.pt")
    paths["pickle"] = folder / f"{name}.pickle.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(wrapper, (x, x.clone()))
        torch.export.save(program, str(folder / f"{name}.pt2"))
        paths["pt2"] = folder / f"{name}.pt2"
        # Lightning modules raise on `.trainer` while being traced unless told they are being
        # scripted (what Lightning's own to_torchscript does).
        wrapper.model._jit_is_scripting = True
        with torch.no_grad():
            traced = torch.jit.trace(wrapper, (x, x.clone()), check_trace=False)
        wrapper.model._jit_is_scripting = False
        torch.jit.save(traced, str(folder / f"{name}.trace.pt"))
        paths["trace"] = folder / f"{name}.trace.pt"
        plain = folder / f"{name}.plain.onnx"
        with torch.no_grad():
            torch.onnx.export(wrapper, (x, x.clone()), str(plain), dynamo=False, opset_version=17,
                              input_names=["frame1", "frame2"], output_names=["flow"])
        paths["plain"] = plain
    return paths


def expected_calls(name: str, h: int, w: int) -> int:
    """Correlation calls of one forward: the recognized layers swapped, edgeflow's op counting."""
    from converters.ops.correlation import count_calls
    from converters.recognize import recognize

    wrapper = build(name)
    x = torch.rand(1, 3, h, w) * 255
    rec = recognize(wrapper, (x, x.clone()))
    with torch.no_grad(), count_calls() as n:
        rec.module(x, x.clone())
    return n[0]


def convert(path: Path, out: Path, fmt: str, h: int, w: int, int8: bool = False) -> dict:
    cmd = [sys.executable, "-m", "edgeflow.cli", "convert", str(path), "--out", str(out), "--height", str(h), "--width", str(w),
           "--force", "--latency-iterations", "3", "--parity-pairs", "2", "--no-split"]
    if fmt == "pickle":
        cmd.append("--trust-pickle")
    if fmt == "trace":
        cmd += ["--pad-multiple", "1"]
    if int8:
        cmd += ["--int8", "--calib-frames", "8", "--max-epe-increase", "off"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    record = {"cmd": " ".join(cmd[1:]), "rc": proc.returncode, "seconds": time.perf_counter() - start,
              "log": (proc.stdout + proc.stderr)[-4000:]}
    if proc.returncode == 0:
        manifest = json.loads((out / "manifest.json").read_text())
        import onnx

        # INT8 CPU graphs expand the correlation for uint8 (converters/quantize/inline_correlation.py);
        # the validated FP32 graph beside them holds the nodes.
        graph = onnx.load(str(out / ("model_fp32.onnx" if int8 else "model.onnx")))
        record["correlation_nodes"] = sum(1 for n in graph.graph.node if n.domain == "edgeflow" and n.op_type == "Correlation")
        record["parity"] = {k: {"passed": v["passed"], "epe_mean": v["epe_mean"], "max_abs": v["max_abs"]}
                            for k, v in manifest["parity"].items()}
        record["recognized"] = [layer["path"] for layer in manifest.get("recognition", {}).get("layers", []) if layer["status"] != "skipped"]
        record["warnings"] = manifest.get("recognition", {}).get("warnings", [])
    return record


def alternate(paths: dict[str, Path], h: int, w: int, rounds: int, threads: int) -> dict:
    """Median session.run latency of each graph, measured round-robin in one process."""
    import onnxruntime as ort

    from edgeflow.preprocess import plan_geometry

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(2)]
    sessions, feeds = {}, {}
    for key, path in paths.items():
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        shape = sess.get_inputs()[0].shape
        geo = plan_geometry((h, w), shape, 64 if not isinstance(shape[2], int) else 1)
        feeds[key] = {i.name: geo.to_network(f) for i, f in zip(sess.get_inputs(), frames)}
        sessions[key] = sess
        sess.run(None, feeds[key])
    times = {key: [] for key in paths}
    for _ in range(rounds):
        for key, sess in sessions.items():
            start = time.perf_counter()
            sess.run(None, feeds[key])
            times[key].append((time.perf_counter() - start) * 1000)
    return {key: statistics.median(v) for key, v in times.items()}


def markdown(results: dict) -> str:
    """The docs/byo.md table."""
    rows = ["| model | format | Correlation nodes / calls | parity | ORT ms (plain export) | ORT ms (artifact) | speed-up |",
            "|---|---|---|---|---:|---:|---:|"]
    for name, entry in results["models"].items():
        lat = entry.get("latency_ms", {})
        for fmt, rec in entry["formats"].items():
            if rec.get("rc") != 0:
                rows.append(f"| {name} | {fmt} | convert failed | | {lat.get('plain', float('nan')):.1f} | | |")
                continue
            ok = all(v["passed"] for v in rec["parity"].values())
            rows.append(f"| {name} | {fmt} | {rec['correlation_nodes']} / {entry['expected_correlation_calls']} | "
                        f"{'passed' if ok else 'FAILED'} | {lat.get('plain', float('nan')):.1f} | {lat.get(fmt, float('nan')):.1f} | "
                        f"{entry['speedup_vs_plain'].get(fmt, float('nan')):.2f}x |")
    return "\n".join(rows)


def goals(results: dict) -> dict[str, bool]:
    """Issue 13's speed goals, from the ratios of this run (each measured round-robin)."""
    out = {}
    for name, entry in results["models"].items():
        if name in ("pwcnet", "fastflownet"):
            for fmt, ratio in entry.get("speedup_vs_plain", {}).items():
                if fmt != "pickle-int8":
                    out[f"{name} {fmt} >= 2x the plain export ({ratio:.2f}x)"] = ratio >= 2.0
        if "int8_speedup_vs_fp32" in entry:
            ratio = entry["int8_speedup_vs_fp32"]
            out[f"{name} INT8 faster than its FP32 artifact ({ratio:.2f}x)"] = ratio > 1.0
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--formats", default=",".join(FORMATS))
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--int8", default="pwcnet,fastflownet", help="models also converted with --int8 (comma list, '' for none)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_byo.json")
    p.add_argument("--check", action="store_true",
                   help="exit 1 unless every artifact converted, has one Correlation node per correlation call and passed parity")
    args = p.parse_args(argv)
    h, w = args.height, args.width
    results = {"host_load_before": os.getloadavg(), "torch": torch.__version__, "resolution": [w, h],
               "threads": args.threads, "models": {}}
    with tempfile.TemporaryDirectory(prefix="edgeflow-bench-byo-") as tmp:
        tmp = Path(tmp)
        for name in filter(None, args.models.split(",")):
            entry = results["models"][name] = {"expected_correlation_calls": expected_calls(name, h, w), "formats": {}}
            paths = save_all(name, tmp, h, w)
            timed = {"plain": paths["plain"]}
            for fmt in filter(None, args.formats.split(",")):
                rec = convert(paths[fmt], tmp / f"{name}-{fmt}", fmt, h, w)
                entry["formats"][fmt] = rec
                print(f"{name} {fmt}: rc {rec['rc']}, {rec.get('correlation_nodes')} Correlation node(s) "
                      f"(expected {entry['expected_correlation_calls']}), parity "
                      f"{all(v['passed'] for v in rec.get('parity', {}).values()) if rec['rc'] == 0 else rec['log'][-300:]}", flush=True)
                if rec["rc"] == 0:
                    timed[fmt] = tmp / f"{name}-{fmt}" / "model.onnx"
            if name in args.int8.split(",") and "pickle" in timed:
                rec = convert(paths["pickle"], tmp / f"{name}-int8", "pickle", h, w, int8=True)
                entry["formats"]["pickle-int8"] = rec
                if rec["rc"] == 0:
                    timed["pickle-int8"] = tmp / f"{name}-int8" / "model.onnx"
                print(f"{name} int8: rc {rec['rc']}", flush=True)
            entry["latency_ms"] = alternate(timed, h, w, args.rounds, args.threads)
            base = entry["latency_ms"]["plain"]
            entry["speedup_vs_plain"] = {k: base / v for k, v in entry["latency_ms"].items() if k != "plain"}
            if "pickle-int8" in entry["latency_ms"]:
                entry["int8_speedup_vs_fp32"] = entry["latency_ms"]["pickle"] / entry["latency_ms"]["pickle-int8"]
            print(f"{name} latency ms: " + ", ".join(f"{k} {v:.1f}" for k, v in entry["latency_ms"].items()), flush=True)
    results["host_load_after"] = os.getloadavg()
    results["goals"] = goals(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for entry in results["models"].values():
        for rec in entry["formats"].values():
            rec.pop("log", None) if rec.get("rc") == 0 else None
    args.out.write_text(json.dumps(results, indent=2, default=float))
    print(f"wrote {args.out}")
    problems = []
    for name, entry in results["models"].items():
        for fmt, rec in entry["formats"].items():
            if rec.get("rc") != 0:
                problems.append(f"{name} {fmt}: convert failed")
            elif rec.get("correlation_nodes") != entry["expected_correlation_calls"]:
                problems.append(f"{name} {fmt}: {rec.get('correlation_nodes')} Correlation nodes, expected {entry['expected_correlation_calls']}")
            elif not all(v["passed"] for v in rec.get("parity", {}).values()):
                problems.append(f"{name} {fmt}: parity failed")
    print(markdown(results))
    for line, met in results["goals"].items():
        print(f"goal {'met' if met else 'NOT MET'}: {line}")
    for line in problems:
        print(f"FAIL {line}")
    print(f"{sum(len(e['formats']) for e in results['models'].values()) - len(problems)} passed, {len(problems)} failed")
    return 1 if (args.check and problems) else 0


if __name__ == "__main__":
    sys.exit(main())
