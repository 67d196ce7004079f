"""``edgeflow convert``: load -> [prune] -> export -> validate -> [quantize] -> report -> artifact.

Each stage is a small function with explicit inputs and outputs; :class:`ConvertJob` only orders
them, shows progress, and writes the artifact. Nothing is marked valid until parity against the
PyTorch model has passed (and, for FP16 / INT8, the accuracy guard of
:mod:`converters.quantize.guard`): a failed check still writes the directory (for inspection) but
with ``valid: false``, which the runtime refuses, and convert exits non-zero.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch

import edgeflow
from converters.byo import InputOptions
from converters.export import DEFAULT_OPSET, export_onnx
from converters.ops.onnx_function import DEFAULT_FORMULATION
from converters.progress import Steps
from converters.quantize.pipeline import QuantizeRequest, quantize_stage
from converters.validate import ParityResult, check_parity, real_frame_pairs
from converters.variants import Variant, measure_variants
from edgeflow.artifact import ArtifactWriter, check_output_dir
from edgeflow.backends.onnxruntime import OnnxRuntimeRunner, SessionLoader
from edgeflow.errors import EdgeflowError, InputError, first_line
from edgeflow.tensorrt_engines import TensorRTOptions, TensorRTResult

INPUT_NAMES = ["frame1", "frame2"]
OUTPUT_NAMES = ["flow"]
log = logging.getLogger("edgeflow.converters.convert")


#: The CLI flag of every option :meth:`ConvertOptions.validate` can refuse (``group.field`` -> flag):
#: an error names what the person typed, a Python caller finds the field beside it.
FLAGS = {
    "export.height": "--height", "export.width": "--width", "export.exporter": "--exporter",
    "export.pad_multiple": "--pad-multiple",
    "quantize.calib": "--calib", "quantize.calib_frames": "--calib-frames", "quantize.calib_method": "--calib-method",
    "quantize.per_channel": "--per-tensor", "quantize.int8_scheme": "--int8-scheme",
    "quantize.max_epe_increase": "--max-epe-increase",
    "prune.ratio": "--prune", "prune.finetune_steps": "--finetune-steps",
    "check.parity_pairs": "--parity-pairs", "check.latency_iterations": "--latency-iterations",
    "check.latency_threads": "--threads",
    "inputs.layout": "--input-layout", "inputs.input_range": "--input-range", "inputs.color_order": "--color-order",
    "inputs.mean": "--mean", "inputs.std": "--std",
    "tensorrt.dla_core": "--dla", "tensorrt.workspace_gb": "--workspace",
}

#: What each output precision accepts (the idea of Ultralytics' ``export_formats()``: one table, read by
#: one validation step, :meth:`ConvertOptions.validate`). An option set away from its default for a
#: precision that does not list it is a one-line error naming the flag, instead of being ignored.
PRECISION_OPTIONS = {
    "fp32": (),
    "fp16": ("quantize.max_epe_increase", "tensorrt.dla_core"),
    "int8": ("quantize.calib", "quantize.calib_frames", "quantize.calib_method", "quantize.per_channel",
             "quantize.int8_scheme", "quantize.max_epe_increase", "tensorrt.dla_core"),
}
#: Allowed values of the options with a fixed set (argparse's ``choices`` say the same to the CLI;
#: this says it to a Python caller).
CHOICES = {
    "export.exporter": ("torchscript", "dynamo"),
    "quantize.calib_method": ("minmax", "entropy", "percentile"),
    "quantize.int8_scheme": (None, "u8s8", "s8s8"),
    "inputs.layout": (None, "pair", "stacked", "ptlflow"),
    "inputs.input_range": (None, "0-255", "0-1"),
    "inputs.color_order": (None, "RGB", "BGR"),
}
#: Inclusive (low, high) bounds of the numeric options (None: unbounded; an option left None is not checked).
RANGES = {
    "export.height": (16, 16384), "export.width": (16, 16384), "export.pad_multiple": (1, 256),
    "quantize.calib_frames": (1, None), "prune.finetune_steps": (0, None),
    "check.parity_pairs": (1, None), "check.latency_iterations": (1, None), "check.latency_threads": (1, None),
    "tensorrt.dla_core": (0, None), "tensorrt.workspace_gb": (0.01, None),
}


@dataclass
class ExportOptions:
    """How the graphs are exported: the frame size export, parity and latency use, opset, exporter."""

    height: int = 240
    width: int = 320
    opset: int = DEFAULT_OPSET
    exporter: str = "torchscript"
    formulation: str = DEFAULT_FORMULATION
    split: bool = True  # also export encoder.onnx / decoder.onnx for feature caching
    pad_multiple: int | None = None  # for models that do not declare one (default 64)
    # Correlation function body for onnxruntime: "band_matmul" (converters.ops.band_correlation,
    # several times faster on CPUs) or None to keep the exporter's formulation.
    cpu_correlation: str | None = "band_matmul"


@dataclass
class PruneOptions:
    """Structured channel pruning (converters.prune); ``ratio`` None: no pruning."""

    ratio: float | None = None
    finetune_steps: int = 0  # distillation steps from the unpruned model after pruning


@dataclass
class CheckOptions:
    """The checks and measurements: parity against PyTorch, latency, the slowest-ops profile."""

    parity_pairs: int = 3
    tol_epe: float = 1e-2  # max mean EPE (px) between ONNX and PyTorch
    tol_max_abs: float = 0.5
    latency_iterations: int = 10
    latency_threads: int | None = None  # None: all cores
    profile_ops: bool = True  # report the slowest ops of the converted graph (onnxruntime profiler)


@dataclass
class RecognizeOptions:
    """Bring your own model (converters.byo, converters.recognize; docs/byo.md)."""

    enabled: bool = True  # swap recognized third-party correlation layers for edgeflow's op
    correlations: list = field(default_factory=list)  # escape hatch: "module.path:max_displacement=4,..."


def _fields(obj, prefix: str = "") -> dict:
    """``{"group.field": value}`` over the nested option groups (a group set to None: ``{"group": None}``)."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out.update(_fields(value, f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = value
    return out


@dataclass
class ConvertOptions:
    """Everything one conversion needs, grouped by concern; every group has defaults, so a Python
    caller names only what it changes::

        ConvertOptions("pwc-lite", out=Path("art"), export=ExportOptions(height=48, width=64),
                       quantize=QuantizeRequest(int8=True), check=CheckOptions(parity_pairs=1))

    :meth:`validate` checks all of it in one place (``ConvertJob.run`` calls it first)."""

    model: str
    out: Path | None = None
    force: bool = False  # replace --out even when it is not empty and not a previous artifact (edgeflow.artifact)
    trust_pickle: bool = False
    export: ExportOptions = field(default_factory=ExportOptions)
    quantize: QuantizeRequest = field(default_factory=QuantizeRequest)
    prune: PruneOptions = field(default_factory=PruneOptions)
    check: CheckOptions = field(default_factory=CheckOptions)
    inputs: InputOptions = field(default_factory=InputOptions)
    recognize: RecognizeOptions = field(default_factory=RecognizeOptions)
    # TensorRT engines built on this machine after the ONNX artifact is written (edgeflow.tensorrt_engines);
    # None: ONNX only. Checked before the conversion starts, so a machine without TensorRT fails at once.
    tensorrt: TensorRTOptions | None = None

    @property
    def precision(self) -> str:
        return self.quantize.precision

    def validate(self) -> ConvertOptions:
        """Every option checked in one place, before any work (ConvertJob.run calls it): ranges,
        fixed choices (``CHOICES``) and what the chosen precision accepts (``PRECISION_OPTIONS``).
        Each refusal is one line naming the CLI flag (``FLAGS``)."""
        from converters.quantize.guard import EpeBudget

        values = _fields(self)
        defaults = _fields(ConvertOptions(self.model, tensorrt=TensorRTOptions() if self.tensorrt else None))

        def refuse(name: str, text: str):
            raise InputError(f"{FLAGS[name]} {text}")

        for name, allowed in CHOICES.items():
            if name in values and values[name] not in allowed:
                refuse(name, f"{values[name]!r}: use one of {', '.join(str(a) for a in allowed if a is not None)}")
        for name, (low, high) in RANGES.items():
            value = values.get(name)
            if value is not None and not (low <= value and (high is None or value <= high)):
                refuse(name, f"must be >= {low}" + (f" and <= {high}" if high is not None else "") + f", got {value}")
        for name in ("inputs.mean", "inputs.std"):
            if values[name] is not None and len(values[name]) != 3:
                refuse(name, f"takes three comma-separated numbers (one per channel), got {len(values[name])}")
        if self.inputs.std is not None and 0 in self.inputs.std:
            refuse("inputs.std", "must not contain 0 (the input is divided by it)")
        try:
            EpeBudget.parse(self.quantize.max_epe_increase)
        except EdgeflowError as err:
            raise InputError(str(err)) from None
        ratio = self.prune.ratio
        if ratio is not None and not 0.0 < ratio < 1.0:
            refuse("prune.ratio", f"takes a fraction of channels to remove in (0, 1), got {ratio}")
        if ratio is None and self.prune.finetune_steps:
            refuse("prune.finetune_steps", "fine-tunes a pruned model: add --prune RATIO, or drop --finetune-steps")
        accepted = PRECISION_OPTIONS[self.precision]
        for name in sorted({n for names in PRECISION_OPTIONS.values() for n in names}):
            if name in values and values[name] != defaults[name] and name not in accepted:
                takers = [p for p, names in PRECISION_OPTIONS.items() if name in names]
                flag = FLAGS[name]
                raise InputError(f"{flag} applies to {' and '.join(p.upper() for p in takers)} conversions, not "
                                 f"{self.precision.upper()}: add {' or '.join('--' + p for p in takers[::-1])}, or drop {flag}")
        return self


@dataclass
class ConvertResult:
    out: Path
    valid: bool
    manifest: dict
    report: dict
    parity: dict = field(default_factory=dict)
    tensorrt: TensorRTResult | None = None  # the engines' record, when ConvertOptions.tensorrt asked for them


def _tool_versions(opset: int) -> dict:
    import onnx
    import onnxruntime

    return {
        "edgeflow": edgeflow.__version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
        "opset": opset,
    }


def _tensor_specs(onnx_path: Path, inputs: bool) -> list[dict]:
    runner = OnnxRuntimeRunner(SessionLoader(onnx_path, threads=1, optimization="none"))
    specs = runner.inputs if inputs else runner.outputs
    return [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in specs]


def model_size(module, onnx_path: Path, height: int, width: int, pad_multiple: int) -> dict:
    """Size on disk, parameters and multiply-accumulates at the artifact's (padded) resolution."""
    info = {"size_mb": onnx_path.stat().st_size / 1e6, "params_m": sum(p.numel() for p in module.parameters()) / 1e6, "gmacs": None}
    try:
        from converters.zoo.complexity import count_macs

        from edgeflow.preprocess import padded_size

        h, w = padded_size(height, width, pad_multiple)
        info["gmacs"] = count_macs(module, h, w)["total"] / 1e9
    except Exception:  # MACs are counted by module hooks; opaque (TorchScript) models have none
        pass
    return info


class _DecoderInputs(torch.nn.Module):
    """Flattens ``decoder(feats1, feats2)`` to positional tensors so it exports as one graph."""

    def __init__(self, decoder: torch.nn.Module, levels: int):
        super().__init__()
        self.decoder = decoder
        self.levels = levels

    def forward(self, *feats):
        return self.decoder(list(feats[: self.levels]), list(feats[self.levels :]))


class _EncoderOutputs(torch.nn.Module):
    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, frame):
        return tuple(self.encoder(frame))


def _dynamic(names, dims=(2, 3)) -> dict:
    return {n: {d: f"{n}_{'h' if d == 2 else 'w'}" for d in dims} for n in names}


def export_graphs(module, pad_multiple: int, opts: ConvertOptions, writer: ArtifactWriter, static: bool = False,
                  example=None) -> dict:
    """Export model.onnx (and encoder/decoder when the model is split) into the staging dir.

    ``static``: no dynamic H/W (a trace replays its recorded shapes; converters.byo).
    """
    h = -(-opts.export.height // pad_multiple) * pad_multiple
    w = -(-opts.export.width // pad_multiple) * pad_multiple
    x = torch.rand(1, 3, h, w) * 255 if example is None else example
    dyn = None if static else {"frame1": {2: "height", 3: "width"}, "frame2": {2: "height", 3: "width"}, "flow": {2: "height", 3: "width"}}
    main = export_onnx(module, (x, x.clone()), writer.path("model.onnx"), INPUT_NAMES, OUTPUT_NAMES, dyn,
                       opset=opts.export.opset, exporter=opts.export.exporter, formulation=opts.export.formulation)
    writer.add("model.onnx", "model")
    info = {"correlation": main.correlation, "correlation_nodes": main.correlation_nodes, "split": False}
    encoder, decoder = getattr(module, "encoder", None), getattr(module, "decoder", None)
    if opts.export.split and isinstance(encoder, torch.nn.Module) and isinstance(decoder, torch.nn.Module):
        with torch.no_grad():
            feats = list(encoder(x))
        levels = len(feats)
        enc_out = [f"feat_{i}" for i in range(levels)]
        export_onnx(_EncoderOutputs(encoder), (x,), writer.path("encoder.onnx"), ["frame"], enc_out,
                    {"frame": {2: "height", 3: "width"}, **_dynamic(enc_out)}, opset=opts.export.opset,
                    exporter=opts.export.exporter, formulation=opts.export.formulation, expected_correlations=0)
        dec_in = [f"feat1_{i}" for i in range(levels)] + [f"feat2_{i}" for i in range(levels)]
        export_onnx(_DecoderInputs(decoder, levels), tuple(feats + [f.clone() for f in feats]), writer.path("decoder.onnx"),
                    dec_in, OUTPUT_NAMES, {**_dynamic(dec_in), "flow": {2: "height", 3: "width"}}, opset=opts.export.opset,
                    exporter=opts.export.exporter, formulation=opts.export.formulation)
        writer.add("encoder.onnx", "encoder")
        writer.add("decoder.onnx", "decoder")
        info["split"] = True
        info["feature_levels"] = levels
    return info


def check_split_parity(module, writer: ArtifactWriter, pairs, pad_multiple: int, opts: ConvertOptions) -> ParityResult:
    """encoder.onnx + decoder.onnx must reproduce the PyTorch model too (the runtime's cached path)."""
    from converters.validate import compare_flows, torch_flow
    from edgeflow.preprocess import plan_geometry

    enc = OnnxRuntimeRunner(SessionLoader(writer.path("encoder.onnx")))
    dec = OnnxRuntimeRunner(SessionLoader(writer.path("decoder.onnx")))
    ref, got = [], []
    for f1, f2 in pairs:
        geo = plan_geometry(f1.shape[:2], (1, 3, None, None), pad_multiple)
        e1 = enc.infer({"frame": geo.to_network(f1)})
        e2 = enc.infer({"frame": geo.to_network(f2)})
        feed = {}
        for name in dec.input_names:
            side, idx = name.split("_")
            feed[name] = (e1 if side == "feat1" else e2)[f"feat_{idx}"]
        got.append(geo.to_frame(dec.infer(feed)["flow"]))
        ref.append(torch_flow(module, f1, f2, pad_multiple))
    return compare_flows(ref, got, opts.check.tol_epe, opts.check.tol_max_abs)


def _net_hw(opts: ConvertOptions, pad_multiple: int) -> tuple[int, int]:
    return -(-opts.export.height // pad_multiple) * pad_multiple, -(-opts.export.width // pad_multiple) * pad_multiple


def _rewrite_bodies(path: Path) -> int:
    import onnx

    from converters.ops.band_correlation import use_band_bodies

    model = onnx.load(str(path))
    count = use_band_bodies(model)
    if count:
        onnx.save(model, str(path))
    return count


def use_cpu_correlation(writer: ArtifactWriter, split: bool) -> str:
    """Give the exported graphs the band-MatMul correlation body (same node, faster on CPUs)."""
    names = ["model.onnx"] + (["decoder.onnx"] if split else [])
    counts = [_rewrite_bodies(writer.path(n)) for n in names]
    return "band_matmul" if any(counts) else "exporter"


def prune_stage(module, opts: ConvertOptions):
    """(unpruned teacher, pruned student, manifest record) -- see converters.prune."""
    import copy

    from converters.prune import distill, prune_model
    from converters.zoo.complexity import count_parameters

    teacher = copy.deepcopy(module).eval()
    result = prune_model(module, opts.prune.ratio)
    steps = opts.prune.finetune_steps
    finetune = distill(result.model, teacher, steps, **result.distill_options) if steps else {}
    record = {"ratio": opts.prune.ratio, "method": "L1-norm structured channel pruning (converters.prune)",
              "config_before": result.config_before, "config_after": result.config_after,
              "params_before": count_parameters(teacher), "params_after": count_parameters(result.model),
              "finetune": finetune or None}
    return teacher, result.model.eval(), record


def _evaluator(opts: ConvertOptions, pad_multiple: int):
    from converters.quantize.accuracy import FlowEvaluator, validation_pairs

    return FlowEvaluator(validation_pairs(opts.export.height, opts.export.width), pad_multiple)


def _budget(opts: ConvertOptions) -> str:
    from converters.quantize.guard import EpeBudget

    return EpeBudget.parse(opts.quantize.max_epe_increase).describe()


def _quant_note(quant) -> str:
    acc = quant.accuracy.get(quant.precision, {})
    text = f"EPE vs FP32 {acc.get('epe_vs_fp32', float('nan')):.3f} px"
    if acc.get("increase") is not None:
        budget = f"{acc['allowed']:.3f} px" if acc.get("allowed") is not None else "off"
        text += f", vs GT {acc['increase']:+.3f} px (budget {budget})"
    excluded = (quant.quantization or {}).get("excluded_nodes")
    if excluded:
        text += f", {len(excluded)} conv(s) kept float"
    return text


def _scratch_dir():
    """A temp folder for graphs that are measured but not shipped (the unpruned original under
    ``--prune``), removed when measuring ends, however it ends: every pruned conversion used to
    leave a 5.7 MB ``edgeflow-unpruned-*`` folder in the temp directory."""
    import tempfile

    return tempfile.TemporaryDirectory(prefix="edgeflow-unpruned-")


def _byo_stage(loaded, module, pad_multiple: int, opts: ConvertOptions, steps):
    """Recognized correlation layers, input conventions, trace handling (converters.byo)."""
    from converters.byo import prepare

    if loaded.kind in ("torchscript", "export") and not opts.export.pad_multiple and not loaded.pad_multiple:
        pad_multiple = 1  # a trace / static program runs at the size it was recorded at: no padding by default
    plan = prepare(loaded, module, pad_multiple, opts.export.height, opts.export.width, opts.inputs,
                   opts.recognize.correlations, opts.recognize.enabled)
    replaced = len(plan.recognition.replaced) if plan.recognition else 0
    steps.note(f"{replaced} correlation layer(s) replaced" if replaced else "no third-party correlation layer")
    return plan


def _conventions(plan):
    from edgeflow.preprocess import Conventions

    conv = Conventions.from_preprocessing(plan.preprocessing)
    return None if conv.identity else conv


def _example(plan, opts: ConvertOptions):
    """Export input: random frames mapped through the model's conventions (BGR, 0..1, mean/std)."""
    import numpy as np

    from edgeflow.preprocess import Conventions

    h, w = _net_hw(opts, plan.pad_multiple)
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, h, w)).astype(np.float32)
    return torch.from_numpy(Conventions.from_preprocessing(plan.preprocessing).apply(x))


def _second_size(opts: ConvertOptions) -> tuple[int, int]:
    """A second parity resolution (3/4 of the requested size, even): dynamic axes must hold there too."""
    return max(16, opts.export.height * 3 // 4 // 2 * 2), max(16, opts.export.width * 3 // 4 // 2 * 2)


def _second_parity(reference, path, pairs, pad_multiple: int, opts: ConvertOptions, conventions) -> ParityResult:
    """Parity at the second size; a graph that cannot even run there (baked shapes, e.g. a Concat of
    mismatched sizes) counts as failing, so convert falls back to a static export."""
    try:
        return check_parity(reference, path, pairs, pad_multiple, opts.check.tol_epe, opts.check.tol_max_abs, conventions=conventions)
    except Exception:
        return ParityResult(len(pairs), 1e9, 1e9, 1e9, opts.check.tol_epe, opts.check.tol_max_abs)  # finite: manifest JSON


def _zero_node_warning(plan, nodes: int):
    from converters.byo import zero_node_warning

    return zero_node_warning(plan, nodes)


def _profile(writer, evaluator, pad_multiple: int, conventions, opts: ConvertOptions) -> dict | None:
    """Slowest ops of model.onnx on a real pair (converters.byo.slowest_ops); None if profiling fails."""
    from converters.byo import slowest_ops
    from edgeflow.preprocess import plan_geometry

    try:
        runner = OnnxRuntimeRunner(SessionLoader(writer.path("model.onnx"), threads=1, optimization="none"))
        names, shape = runner.input_names, runner.inputs[0].shape
        pair = evaluator.pairs[0]
        geo = plan_geometry(pair.frame1.shape[:2], shape, pad_multiple, conventions)
        feed = {names[0]: geo.to_network(pair.frame1), names[1]: geo.to_network(pair.frame2)}
        return slowest_ops(writer.path("model.onnx"), feed, runs=max(1, min(3, opts.check.latency_iterations)), threads=opts.check.latency_threads)
    except Exception as err:  # a report nicety: never fail a conversion over it
        return {"error": first_line(err)}


def _log_lines(lines) -> None:
    """A step's detail lines (recognized layers, notes, slowest ops), indented under the step."""
    for line in lines:
        log.info("      %s", line)


class ConvertJob:
    """Runs the stages in order and writes the artifact."""

    def __init__(self, opts: ConvertOptions):
        self.opts = opts

    def run(self) -> ConvertResult:
        from converters.load import load_model

        opts = self.opts.validate()
        if opts.tensorrt is not None:  # fail before a long conversion when no engine can be built here
            from edgeflow.tensorrt_engines import preflight

            preflight()
        torch.manual_seed(0)
        steps = Steps(6 + bool(opts.prune.ratio) + (opts.precision != "fp32"))
        with steps.step(f"Loading {opts.model}"):
            loaded = load_model(opts.model, trust_pickle=opts.trust_pickle)
            module = loaded.module.eval()
            pad_multiple = int(opts.export.pad_multiple or loaded.pad_multiple or 64)
            steps.note(f"{loaded.kind}, {sum(p.numel() for p in module.parameters()) / 1e6:.2f} M params")
        with steps.step("Looking for correlation layers and input conventions"):
            plan = _byo_stage(loaded, module, pad_multiple, opts, steps)
        _log_lines(plan.notes + (plan.recognition.lines() if plan.recognition else []) + plan.warnings)
        module, reference, pad_multiple = plan.export_module, plan.reference, plan.pad_multiple
        conventions = _conventions(plan)
        name = loaded.name or loaded.arch or Path(str(opts.model)).stem
        out = Path(opts.out) if opts.out else Path(f"{name}-{opts.precision}")
        check_output_dir(out, opts.force)  # before minutes of work, not after: never delete what we did not write
        unpruned, pruning = None, None
        if opts.prune.ratio:
            with steps.step(f"Pruning {opts.prune.ratio:.0%} of the channels" + (f", distilling {opts.prune.finetune_steps} steps" if opts.prune.finetune_steps else "")):
                unpruned, module, pruning = prune_stage(module, opts)
                # Pruning changes the network on purpose: the artifact must match the pruned, fine-tuned
                # model it ships, not the unpruned original (whose distance the report rows show).
                reference = module
                steps.note(f"{pruning['params_before'] / 1e6:.2f} -> {pruning['params_after'] / 1e6:.2f} M params")
        with ArtifactWriter(out, force=opts.force) as writer:
            with steps.step("Exporting ONNX"):
                graphs = export_graphs(module, pad_multiple, opts, writer, static=plan.static, example=_example(plan, opts))
                if opts.export.cpu_correlation:
                    graphs["correlation_body"] = use_cpu_correlation(writer, graphs["split"])
                steps.note(f"{graphs['correlation_nodes']} Correlation node(s)" + (", encoder/decoder split" if graphs["split"] else ""))
            _log_lines([w for w in [_zero_node_warning(plan, graphs["correlation_nodes"])] if w])
            with steps.step("Checking parity against PyTorch on real frames"):
                pairs = real_frame_pairs(opts.export.height, opts.export.width, opts.check.parity_pairs)
                # Against the ORIGINAL model (recognized layers are swapped only in the exported copy),
                # at the requested size and at a second one (dynamic axes must hold there too).
                results = {"model": check_parity(reference, writer.path("model.onnx"), pairs, pad_multiple, opts.check.tol_epe,
                                                 opts.check.tol_max_abs, conventions=conventions)}
                h2, w2 = _second_size(opts)
                second = f"model@{w2}x{h2}"
                results[second] = _second_parity(reference, writer.path("model.onnx"), real_frame_pairs(h2, w2, 1, seed=99),
                                                 pad_multiple, opts, conventions)
                if results["model"].passed and not results[second].passed and not plan.static and not graphs["split"]:
                    # The graph does not hold at other sizes (the model computes sizes in Python and the
                    # exporter's trace baked them in): never declare dynamic axes it cannot honour.
                    plan.static = True
                    graphs = export_graphs(module, pad_multiple, opts, writer, static=True, example=_example(plan, opts))
                    if opts.export.cpu_correlation:
                        graphs["correlation_body"] = use_cpu_correlation(writer, graphs["split"])
                    for key, frames in (("model", pairs), (second, real_frame_pairs(h2, w2, 1, seed=99))):
                        results[key] = check_parity(reference, writer.path("model.onnx"), frames, pad_multiple, opts.check.tol_epe,
                                                    opts.check.tol_max_abs, conventions=conventions)
                    h1, w1 = _net_hw(opts, pad_multiple)
                    plan.notes.append(f"the graph is exact at {w1}x{h1} but not at {w2}x{h2} (sizes computed in Python are "
                                      f"baked into the export): exported for {w1}x{h1} only, other frame sizes are resized")
                    _log_lines(plan.notes[-1:])
                if graphs["split"]:
                    results["encoder_decoder"] = check_split_parity(module, writer, pairs, pad_multiple, opts)
                parity_info = {k: r.as_dict() for k, r in results.items()}
                failed = [f"{k}: {r.summary()}" for k, r in results.items() if not r.passed]
                valid = not failed
                parity = results["model"]
                steps.note(parity.summary())
            reason = None if valid else "parity check failed: " + "; ".join(failed)
            evaluator = _evaluator(opts, pad_multiple)
            quant = None
            if opts.precision != "fp32" and valid:
                from converters.quantize.guard import AccuracyBudgetError

                with steps.step(f"Quantizing to {opts.precision.upper()} (accuracy guard {_budget(opts)})"):
                    try:
                        quant = quantize_stage(opts.quantize, writer, module, pad_multiple, opts.export.height,
                                               opts.export.width, evaluator, graphs["split"])
                    except AccuracyBudgetError as err:
                        valid, reason = False, str(err)
                        steps.note("over the accuracy budget: nothing will be marked valid")
                    else:
                        graphs["split"] = graphs["split"] and not quant.dropped_split
                        steps.note(_quant_note(quant))
            report = {"variants": []}
            if valid:
                with steps.step("Measuring size, latency and accuracy of each graph"), _scratch_dir() as scratch:
                    variants = self._variants(writer, module, unpruned, quant, pad_multiple, Path(scratch))
                    rows = measure_variants(variants, evaluator, opts.export.height, opts.export.width, pad_multiple,
                                            opts.check.latency_iterations, opts.check.latency_threads)
                    report = {"variants": rows, "resolution": [opts.export.width, opts.export.height],
                              "validation": "builtin_eval_set (EPE = mean over pairs of mean over valid pixels)"}
                    main_row = next(r for r in rows if r["file"] == "model.onnx")
                    steps.note(f"{main_row['name']}: median {main_row['latency']['median_ms']:.1f} ms, p95 {main_row['latency']['p95_ms']:.1f} ms")
                    if graphs["split"]:
                        report["feature_caching"] = self._caching(writer, evaluator, pad_multiple)
                    if opts.check.profile_ops:
                        report["slowest_ops"] = _profile(writer, evaluator, pad_multiple, conventions, opts)
            if (report.get("slowest_ops") or {}).get("ops"):
                from converters.byo import slowest_ops_lines

                _log_lines(slowest_ops_lines(report["slowest_ops"]))
            with steps.step(f"Writing artifact {out}"):
                manifest = self._manifest(loaded, name, graphs, pad_multiple, writer, parity_info)
                manifest["preprocessing"].update(plan.preprocessing)
                manifest["recognition"] = plan.record()
                if valid:  # what the frames the model was validated on look like (edgeflow.drift)
                    from converters.reference import reference_stage

                    manifest["input_reference"] = reference_stage(module, pad_multiple, opts.export.height, opts.export.width)
                manifest["precision"] = opts.precision
                if graphs.get("correlation_body") == "band_matmul":
                    manifest["correlation_formulation"] = "band_matmul"
                if quant is not None:
                    manifest["quantization"] = quant.quantization or None
                    manifest["accuracy"] = quant.accuracy
                if pruning is not None:
                    manifest["pruning"] = pruning
                    manifest["model"]["config"] = module.config_dict()
                report["parity"] = parity_info
                writer.commit(manifest, report, valid=valid, invalid_reason=reason)
        if not valid:
            if reason and reason.startswith("parity"):
                raise EdgeflowError(f"{reason}; the artifact at {out} is marked invalid (tolerance: EPE {opts.check.tol_epe} px, max {opts.check.tol_max_abs} px)")
            raise EdgeflowError(f"{reason}; the artifact at {out} is marked invalid")
        engines = None
        if opts.tensorrt is not None:
            from edgeflow.tensorrt_engines import add_engines_after_convert

            # --int8 --fp16: FP16 is the hint for the engine's float layers (docs/quantization.md)
            fallback = opts.tensorrt.fp16_fallback or (opts.quantize.int8 and opts.quantize.fp16)
            engines = add_engines_after_convert(out, dataclasses.replace(opts.tensorrt, fp16_fallback=fallback))
        return ConvertResult(out, valid, manifest, report, parity_info, engines)

    def _caching(self, writer, evaluator, pad_multiple) -> dict:
        """Encoder / decoder / whole-pair timings of the stored graphs: the gain feature caching will give."""
        from converters.caching import caching_estimate
        from edgeflow.preprocess import plan_geometry

        pair = evaluator.pairs[0]
        geo = plan_geometry(pair.frame1.shape[:2], (1, 3, None, None), pad_multiple)
        return caching_estimate(writer.path("model.onnx"), writer.path("encoder.onnx"), writer.path("decoder.onnx"),
                                geo.to_network(pair.frame1), geo.to_network(pair.frame2),
                                self.opts.check.latency_iterations, self.opts.check.latency_threads)

    def _variants(self, writer, module, unpruned, quant, pad_multiple, scratch: Path) -> list:
        """Report rows: the unpruned original (exported to ``scratch``, outside the artifact), FP32,
        then quant."""
        rows = []
        fp32_file = "model.onnx" if self.opts.precision == "fp32" else "model_fp32.onnx"
        if unpruned is not None:
            path = export_onnx(unpruned, (torch.rand(1, 3, *_net_hw(self.opts, pad_multiple)) * 255,) * 2, scratch / "unpruned.onnx",
                               INPUT_NAMES, OUTPUT_NAMES, None, opset=self.opts.export.opset, exporter=self.opts.export.exporter,
                               formulation=self.opts.export.formulation).path
            if self.opts.export.cpu_correlation:
                _rewrite_bodies(path)
            rows.append(Variant("fp32", "fp32", path, module=unpruned))
            rows.append(Variant(f"fp32-pruned{int(round(self.opts.prune.ratio * 100))}", "fp32", writer.path(fp32_file), module=module,
                                reference="fp32", file=fp32_file))
            ref = rows[-1].name
        else:
            rows.append(Variant("fp32", "fp32", writer.path(fp32_file), module=module, file=fp32_file))
            ref = "fp32"
        for v in quant.variants if quant else []:
            v.reference = ref
            if unpruned is not None:
                v.name = f"{v.name}-pruned{int(round(self.opts.prune.ratio * 100))}"
            rows.append(v)
        return rows

    def _manifest(self, loaded, name, graphs, pad_multiple, writer, parity_info) -> dict:
        module = loaded.module
        config = loaded.config if loaded.config is not None else (module.config_dict() if hasattr(module, "config_dict") else None)
        return {
            "model": {"name": name, "arch": loaded.arch, "config": config},
            "inputs": _tensor_specs(writer.path("model.onnx"), True),
            "outputs": _tensor_specs(writer.path("model.onnx"), False),
            "preprocessing": {"color_order": "RGB", "layout": "NCHW", "dtype": "float32", "input_range": [0, 255],
                              "pad_multiple": pad_multiple, "pad_mode": "edge"},
            "postprocessing": {"flow_units": "pixels", "convention": "frame1 (x, y) -> (x + u, y + v)"},
            "precision": "fp32",
            "resolution": [self.opts.export.width, self.opts.export.height],
            "correlation": graphs["correlation"],
            "correlation_formulation": self.opts.export.formulation,
            "split": {"encoder": "encoder.onnx", "decoder": "decoder.onnx", "levels": graphs.get("feature_levels")} if graphs["split"] else None,
            "plugins": [{"name": "Correlation", "namespace": "edgeflow", "version": "1"}] if graphs["correlation_nodes"] else [],
            "source": {"kind": loaded.kind, "path": str(loaded.source_path) if loaded.source_path else None, "sha256": loaded.sha256},
            "tools": _tool_versions(self.opts.export.opset),
            "tensorrt": None,
            "parity": parity_info,
        }
