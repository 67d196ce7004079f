"""Bring your own model: what convert does before export for a user's (non-zoo) model.

* **Recognize** third-party correlation layers and swap them for edgeflow's op in a copy
  (:mod:`converters.recognize`); the original stays the parity reference.
* **Input conventions**: the model's own input layout (two tensors, one stacked ``(B, 2, 3, H, W)``
  tensor, PTLFlow's ``{"images": ...}`` dict) is adapted inside the graph, which always takes
  two frames; value range, colour order and mean/std are recorded in ``manifest.preprocessing``
  and applied by the runtime in numpy (:class:`edgeflow.preprocess.Conventions`), and by the
  parity check through the same code. PTLFlow models are detected (BGR, 0..1, dict, their
  ``output_stride``).
* **Traces are fixed to their size**: a TorchScript trace replays the shapes it was recorded
  at, so its graph is exported with static H/W at the requested size (never dynamic axes), and a
  trace that does not reproduce that size is refused with one line.
* **Where the time goes**: :func:`slowest_ops` profiles the converted graph in onnxruntime.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from edgeflow.errors import EdgeflowError, first_line

LAYOUTS = ("pair", "stacked", "ptlflow")
RANGES = {"0-255": [0, 255], "0-1": [0, 1]}


def _flow(out):
    """The flow tensor (B, 2, H, W) of whatever a model returns (dict, list, 5-D)."""
    if isinstance(out, dict):
        for key in ("flows", "flow", "flow_preds", "flow_up"):
            if key in out:
                out = out[key]
                break
        else:
            raise EdgeflowError(f"the model returned a dict without a flow ({', '.join(map(str, out))}); "
                                "wrap it so it returns the flow tensor")
    if isinstance(out, (list, tuple)):
        out = out[0]
    if out.dim() == 5:
        out = out[:, -1]
    return out


class InputAdapter(nn.Module):
    """Two frames (B, 3, H, W) in, the model's own input layout, flow (B, 2, H, W) out."""

    def __init__(self, model: nn.Module, layout: str = "pair"):
        super().__init__()
        self.model, self.layout = model, layout

    def forward(self, f1, f2):
        if self.layout == "pair":
            out = self.model(f1, f2)
        elif self.layout == "stacked":
            out = self.model(torch.stack([f1, f2], 1))
        else:
            out = self.model({"images": torch.stack([f1, f2], 1)})
        return _flow(out)

    def train(self, mode: bool = True):  # torch.export modules refuse mode switches
        self.training = mode
        try:
            self.model.train(mode)
        except NotImplementedError:
            pass
        return self


def is_ptlflow(model) -> bool:
    return any((getattr(c, "__module__", "") or "").startswith("ptlflow.") for c in type(model).__mro__)


@dataclass
class InputOptions:
    """The convert flags for input conventions (None: detect or default)."""

    layout: str | None = None  # pair | stacked | ptlflow
    input_range: str | None = None  # 0-255 | 0-1
    color_order: str | None = None  # RGB | BGR
    mean: tuple | None = None
    std: tuple | None = None


def conventions_for(model, opts: InputOptions) -> tuple[str, dict, list[str]]:
    """(layout, preprocessing record, notes) from the flags, PTLFlow detection and defaults."""
    notes = []
    detected = {}
    if is_ptlflow(model):
        detected = {"layout": "ptlflow", "input_range": "0-1", "color_order": "BGR"}
        notes.append("PTLFlow model detected: {'images': (B, 2, 3, H, W)} BGR 0..1 in, 'flows' out")
    layout = opts.layout or detected.get("layout", "pair")
    rng = opts.input_range or detected.get("input_range", "0-255")
    order = (opts.color_order or detected.get("color_order", "RGB")).upper()
    if layout not in LAYOUTS:
        raise EdgeflowError(f"--input-layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    if rng not in RANGES:
        raise EdgeflowError(f"--input-range {rng!r}: use 0-255 or 0-1")
    if order not in ("RGB", "BGR"):
        raise EdgeflowError(f"--color-order {order!r}: use RGB or BGR")
    record = {"color_order": order, "input_range": RANGES[rng], "model_input": layout}
    for name in ("mean", "std"):
        value = getattr(opts, name)
        if value is not None:
            if len(value) != 3:
                raise EdgeflowError(f"--{name} takes three numbers (one per channel, in the model's colour order), got {value}")
            if name == "std" and any(float(v) == 0 for v in value):
                raise EdgeflowError("--std values must be non-zero")
            record[name] = [float(v) for v in value]
    return layout, record, notes


def parse_triplet(text: str | None, flag: str = "value"):
    """``"0.485,0.456,0.406"`` -> a 3-tuple; a bad value is one line that names ``flag``."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise EdgeflowError(f"{flag} takes three comma-separated numbers (R,G,B), got {text!r}")
    return values


# ---------------------------------------------------------------------------------------------
# Traces
# ---------------------------------------------------------------------------------------------


def probe_trace(module, net_hw: tuple[int, int], conventions, layout: str) -> None:
    """A trace must reproduce the network size it is converted at; one line when it does not."""
    from edgeflow.preprocess import Conventions

    h, w = net_hw
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, h, w)).astype(np.float32)
    Conventions.from_preprocessing(conventions).apply(x)
    t = torch.from_numpy(x)
    try:
        with torch.no_grad():
            out = InputAdapter(module, layout)(t, t.clone())
    except Exception as err:
        raise EdgeflowError(
            f"the TorchScript trace does not run at {w}x{h} ({first_line(err)[:120]}): a trace is fixed to the size it "
            "was recorded at; pass that size with --width/--height, or convert the pickled model or a .pt2") from None
    if tuple(out.shape[-2:]) != (h, w):
        raise EdgeflowError(
            f"the TorchScript trace returns a {out.shape[-1]}x{out.shape[-2]} flow for {w}x{h} frames: it was recorded at "
            "another size and replays that size's shapes; pass the traced size with --width/--height (and --pad-multiple 1), "
            "or convert the pickled model or a .pt2")


def exported_size(module) -> tuple[int, int] | None:
    """(H, W) a torch.export program was captured for, when its first input's H/W are concrete."""
    graph = getattr(module, "graph", None)
    for node in getattr(graph, "nodes", []):
        if node.op == "placeholder":
            val = node.meta.get("val")
            shape = getattr(val, "shape", None)
            if shape is not None and len(shape) == 4:
                h, w = shape[2], shape[3]
                return (h, w) if isinstance(h, int) and isinstance(w, int) else None
    return None


# ---------------------------------------------------------------------------------------------
# Where the time goes
# ---------------------------------------------------------------------------------------------

BODY_PREFIX = "edgeflow_correlation/"


def slowest_ops(onnx_path, feed: dict, runs: int = 3, top: int = 8, threads: int | None = None) -> dict:
    """onnxruntime's profiler on the converted graph: time per node, correlation bodies grouped.

    Returns ``{"total_ms", "runs", "ops": [{"node", "op_type", "ms", "share"}], "rest": {"nodes", "ms",
    "share"}}`` (per run): ``ops`` holds the ``top`` slowest nodes, ``rest`` the others, so the shares of
    both always add up to 1 and a reader can see how much of the run the list leaves out.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="edgeflow-profile-") as tmp:
        so.profile_file_prefix = os.path.join(tmp, "profile")
        if threads:
            so.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        sess.run(None, feed)  # warm-up (not profiled separately; excluded below by run count)
        for _ in range(runs):
            sess.run(None, feed)
        path = sess.end_profiling()
        with open(path) as handle:
            events = json.load(handle)
    per_node: dict[str, dict] = {}
    for ev in events:
        if ev.get("cat") != "Node" or not str(ev.get("name", "")).endswith("_kernel_time"):
            continue
        name = ev["name"][: -len("_kernel_time")]
        op = ev.get("args", {}).get("op_name", "?")
        if BODY_PREFIX in name or "_inlfunc_Correlation" in name:
            key, op = "edgeflow::Correlation (function body)", "Correlation"
        else:
            key = name
        slot = per_node.setdefault(key, {"node": key, "op_type": op, "us": 0.0})
        slot["us"] += float(ev.get("dur", 0))
    total = sum(v["us"] for v in per_node.values()) or 1.0
    ordered = sorted(per_node.values(), key=lambda v: -v["us"])
    ranked, rest = ordered[:top], ordered[top:]
    rest_us = sum(v["us"] for v in rest)
    n = runs + 1
    return {"total_ms": total / n / 1000.0, "runs": n,
            "ops": [{"node": v["node"], "op_type": v["op_type"], "ms": v["us"] / n / 1000.0, "share": v["us"] / total} for v in ranked],
            "rest": {"nodes": len(rest), "ms": rest_us / n / 1000.0, "share": rest_us / total}}


def slowest_ops_lines(profile: dict, top: int = 5) -> list[str]:
    lines = [f"slowest ops (onnxruntime profile, {profile['total_ms']:.1f} ms of kernel time per run):"]
    for op in profile["ops"][:top]:
        lines.append(f"  {op['share'] * 100:5.1f}%  {op['ms']:7.2f} ms  {op['op_type']:<14} {op['node'][:60]}")
    shown = profile["ops"][:top]
    left = len(profile["ops"]) - len(shown) + profile.get("rest", {}).get("nodes", 0)
    if left:
        share = 1.0 - sum(op["share"] for op in shown)
        lines.append(f"  {share * 100:5.1f}%  {profile['total_ms'] * share:7.2f} ms  ({left} other nodes)")
    return lines


# ---------------------------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------------------------


@dataclass
class ByoPlan:
    export_module: nn.Module  # exported: swapped copy behind the input adapter
    reference: nn.Module  # parity: the ORIGINAL model behind the same adapter
    pad_multiple: int
    static: bool  # export without dynamic H/W (traces)
    preprocessing: dict
    recognition: object | None = None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def record(self) -> dict:
        rec = self.recognition.as_dict() if self.recognition is not None else {"layers": [], "warnings": []}
        rec["warnings"] = list(dict.fromkeys(rec.get("warnings", []) + self.warnings))
        rec["static_shape"] = self.static
        rec["notes"] = list(self.notes)
        return rec


def prepare(loaded, module: nn.Module, pad_multiple: int, height: int, width: int, inputs: InputOptions,
            declared: list[str] | None = None, recognize: bool = True) -> ByoPlan:
    """Recognition, conventions and trace handling for ``module`` (zoo models pass straight through)."""
    from converters.recognize import parse_declaration
    from converters.recognize import recognize as run_recognize
    from edgeflow.preprocess import Conventions, padded_size

    layout, pre, notes = conventions_for(module, inputs)
    if is_ptlflow(module) and not getattr(loaded, "pad_multiple", None):
        pad_multiple = int(getattr(module, "output_stride", pad_multiple) or pad_multiple)
    static = loaded.kind == "torchscript"
    program_hw = exported_size(module) if loaded.kind == "export" else None
    if program_hw is not None:
        static = True
        if program_hw != padded_size(height, width, pad_multiple):
            raise EdgeflowError(
                f"the .pt2 program was exported with static shapes for {program_hw[1]}x{program_hw[0]} frames: convert it with "
                f"--width {program_hw[1]} --height {program_hw[0]} --pad-multiple 1, or export it with dynamic_shapes")
        notes.append(f"torch.export program with static shapes: exported for {program_hw[1]}x{program_hw[0]} only "
                     "(other frame sizes are resized)")
    h, w = padded_size(height, width, pad_multiple)
    if static and program_hw is None:
        probe_trace(module, (h, w), pre, layout)
        notes.append(f"TorchScript trace: exported for {w}x{h} only (a trace replays its recorded shapes; "
                     "other frame sizes are resized)")
    x = np.random.default_rng(1).uniform(0, 255, (1, 3, h, w)).astype(np.float32)
    Conventions.from_preprocessing(pre).apply(x)
    example = (torch.from_numpy(x), torch.from_numpy(x[:, :, ::-1].copy()))
    decl = dict(parse_declaration(d) for d in (declared or []))

    def runner(model, args):
        return InputAdapter(model, layout)(*args)

    rec = run_recognize(module, example, declared=decl, runner=runner, enabled=recognize) if (recognize or decl) else None
    swapped = rec.module if rec is not None else module
    reference = module
    warnings = []
    if rec is not None and any(layer.status == "unverified" and "could not run" in (layer.reason or "") for layer in rec.layers):
        reference = swapped
        warnings.append("the original model cannot run on this machine (CUDA-only kernels): parity compares the graph with "
                        "the swapped PyTorch model, and each swap rests on the API's documented semantics")
    # A TorchScript module is exported as it is (a Python wrapper around a loaded trace breaks the
    # exporter's own trace); anything else gets the adapter when its layout or outputs need it.
    wrap = layout != "pair" or is_ptlflow(module) or (swapped is not module and not isinstance(swapped, torch.jit.ScriptModule))
    export_module = InputAdapter(swapped, layout) if wrap else swapped
    ref_module = InputAdapter(reference, layout) if export_module is not swapped else reference
    return ByoPlan(export_module, ref_module, pad_multiple, static, pre, rec, notes, warnings)


def zero_node_warning(plan: ByoPlan, nodes: int) -> str | None:
    """One line when a model with a recognizable correlation exported without the op."""
    rec = plan.recognition
    if nodes:
        return None
    lost = [layer.path for layer in (rec.layers if rec else []) if layer.status == "skipped"]
    traced = rec is not None and rec.warnings
    if lost or traced:
        where = ", ".join(lost[:3]) if lost else "the trace"
        return (f"warning: 0 edgeflow::Correlation nodes, but the model has a correlation layer ({where}): it was exported as "
                "standard ops, so the fast bodies, the TensorRT plugin and INT8 handling do not reach it (docs/byo.md)")
    return None
