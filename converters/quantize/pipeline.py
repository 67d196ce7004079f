"""The quantize stage of ``edgeflow convert``: FP32 graph in, FP16 / INT8 graphs + guard numbers out.

Artifact layout when a lower precision is asked for (``precision`` = int8 if ``--int8``, else
fp16 if ``--fp16``):

  model.onnx            the asked precision, for onnxruntime (INT8: the CPU-fastest QDQ form)
  model_fp32.onnx       role ``fp32``: the validated FP32 graph everything derives from
  model_fp16.onnx       role ``fp16``: with ``--int8 --fp16`` (FP16 is then the TensorRT hint)
  model_int8_trt.onnx   role ``trt_onnx``: INT8 QDQ graph for TensorRT (signed, zero point 0)
  encoder/decoder.onnx  in the asked precision too (feature caching): FP16 converted, INT8
                        calibrated on single frames / on the FP32 encoder's features and checked
                        by the guard through the split path; if that check fails they are
                        dropped (the runtime then runs the whole-pair graph), never mixed.

Every quantized graph passes the accuracy guard (:mod:`converters.quantize.guard`) before the
artifact can be valid; its numbers and the quantization details go into the manifest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from converters.quantize.accuracy import FlowEvaluator
from converters.quantize.guard import AccuracyBudgetError, AccuracyGuard, EpeBudget, Int8Repair
from converters.variants import Variant


@dataclass(kw_only=True)
class QuantizeRequest:
    """The quantization flags: ``converters.convert.ConvertOptions.quantize`` (checked by its ``validate``)."""

    int8: bool = False
    fp16: bool = False
    calib: str | None = None
    calib_frames: int = 32
    calib_method: str = "minmax"
    per_channel: bool = True
    int8_scheme: str | None = None  # None: by CPU architecture
    max_epe_increase: str | None = None  # None: the default budget

    @property
    def precision(self) -> str:
        return "int8" if self.int8 else "fp16" if self.fp16 else "fp32"


@dataclass
class QuantizeOutcome:
    precision: str
    variants: list[Variant] = field(default_factory=list)
    quantization: dict = field(default_factory=dict)
    accuracy: dict = field(default_factory=dict)
    dropped_split: bool = False


def quantize_stage(req: QuantizeRequest, writer, module, pad_multiple: int, height: int, width: int,
                   evaluator: FlowEvaluator, split: bool, log=None) -> QuantizeOutcome:
    """Write the lower-precision graphs into ``writer``'s staging dir; raises AccuracyBudgetError."""
    from converters.quantize.fp16 import convert_fp16

    log = log or (lambda text: None)
    outcome = QuantizeOutcome(req.precision)
    if req.precision == "fp32":
        return outcome
    os.replace(writer.path("model.onnx"), writer.path("model_fp32.onnx"))
    writer.roles.pop("model", None)
    writer.add("model_fp32.onnx", "fp32")
    fp32 = writer.path("model_fp32.onnx")
    budget = EpeBudget.parse(req.max_epe_increase)
    guard = AccuracyGuard(evaluator, fp32, budget)
    outcome.accuracy = {"budget": budget.describe(), "allowed_increase_px": guard.allowed,
                        "fp32": {"epe_vs_gt": guard.fp32["epe_vs_gt"], "pairs": guard.fp32["pairs"]},
                        "validation": "builtin_eval_set"}

    if req.fp16:
        name = "model.onnx" if req.precision == "fp16" else "model_fp16.onnx"
        convert_fp16(fp32, writer.path(name))
        writer.add(name, "model" if req.precision == "fp16" else "fp16")
        check = guard.check(writer.path(name), "fp16")
        outcome.accuracy["fp16"] = check.as_dict()
        log(f"fp16: {check.summary()}")
        if not check.passed:
            raise AccuracyBudgetError(f"FP16 exceeds --max-epe-increase {budget.describe()}: {check.summary()}")
        outcome.variants.append(Variant("fp16", "fp16", writer.path(name), reference="fp32", file=name))
        if req.precision == "fp16" and split:
            for part in ("encoder", "decoder"):
                convert_fp16(writer.path(f"{part}.onnx"), writer.path(f"{part}.onnx"))
                writer.add(f"{part}.onnx", part)
            check = guard.check_split(writer.path("encoder.onnx"), writer.path("decoder.onnx"), "fp16-split")
            outcome.accuracy["fp16_split"] = check.as_dict()
            if not check.passed:
                _drop_split(writer, outcome)

    if req.int8:
        outcome.quantization, calib, options, excluded = _int8(req, writer, fp32, pad_multiple, height, width, guard, log, outcome)
        if split:
            check = _int8_split(writer, calib.pairs, options, excluded, pad_multiple, guard)
            outcome.accuracy["int8_split"] = check.as_dict()
            log(f"int8 encoder/decoder: {check.summary()}")
            if not check.passed:  # never let the runtime cache features through a graph that failed
                _drop_split(writer, outcome)
    return outcome


def _drop_split(writer, outcome: QuantizeOutcome) -> None:
    for part in ("encoder", "decoder"):
        writer.path(f"{part}.onnx").unlink(missing_ok=True)
        writer.roles.pop(part, None)
    outcome.dropped_split = True


def _map_excluded(names: list[str], quantizable: list[str]) -> list[str]:
    """model.onnx node names -> the same layers in encoder.onnx / decoder.onnx (the encoder's
    second pass, ``/encoder_1/...`` in the pair graph, is ``/encoder/...`` there)."""
    import re

    wanted = {re.sub(r"^/encoder_\d+/", "/encoder/", n) for n in names}
    return [n for n in quantizable if n in wanted]


def _int8_split(writer, pairs, options, excluded, pad_multiple, guard):
    """INT8 encoder.onnx / decoder.onnx (feature caching), each calibrated on what it really sees:
    the encoder on single frames, the decoder on the FP32 encoder's features of the same pairs."""
    import shutil
    import tempfile
    from pathlib import Path

    from converters.quantize.int8 import Int8Quantizer
    from edgeflow.backends.onnxruntime import OnnxRuntimeRunner, SessionLoader
    from edgeflow.preprocess import plan_geometry

    enc = OnnxRuntimeRunner(SessionLoader(writer.path("encoder.onnx")))
    dec_names = OnnxRuntimeRunner(SessionLoader(writer.path("decoder.onnx"), optimization="none")).input_names
    frames, features = [], []
    for f1, f2 in pairs:
        geo = plan_geometry(f1.shape[:2], (1, 3, None, None), pad_multiple)
        x1, x2 = ({enc.input_names[0]: geo.to_network(f)} for f in (f1, f2))
        frames += [x1, x2]
        e1, e2 = enc.infer(x1), enc.infer(x2)
        features.append({n: (e1 if n.startswith("feat1_") else e2)[f"feat_{n.split('_')[1]}"] for n in dec_names})
    with tempfile.TemporaryDirectory(prefix="edgeflow-split-") as tmp:
        for part, feeds in (("encoder", frames), ("decoder", features)):
            src = Path(tmp) / f"{part}_fp32.onnx"
            shutil.copy2(writer.path(f"{part}.onnx"), src)
            quantizer = Int8Quantizer(src, feeds, options)
            quantizer.write(writer.path(f"{part}.onnx"), "cpu", _map_excluded(excluded, quantizer.quantizable))
            writer.add(f"{part}.onnx", part)
    return guard.check_split(writer.path("encoder.onnx"), writer.path("decoder.onnx"), "int8-split")


def _int8(req, writer, fp32, pad_multiple, height, width, guard, log, outcome):
    from converters.quantize.calibration import PairFeeds, load_calibration
    from converters.quantize.int8 import Int8Options, Int8Quantizer

    options = Int8Options(method=req.calib_method, per_channel=req.per_channel, cpu_scheme=req.int8_scheme)
    calib = load_calibration(req.calib, req.calib_frames, height, width)
    from edgeflow.backends.onnxruntime import OnnxRuntimeRunner, SessionLoader

    names = OnnxRuntimeRunner(SessionLoader(fp32, optimization="none")).input_names
    quantizer = Int8Quantizer(fp32, PairFeeds(calib.pairs, names, pad_multiple), options)
    quantizer.calibrate()
    cpu_path = writer.path("model.onnx")
    quantizer.write(cpu_path, "cpu")
    first = guard.check(cpu_path, "int8")
    log(f"int8: {first.summary()}")
    repair = Int8Repair(quantizer, guard, log=log).run(cpu_path, first)
    writer.add("model.onnx", "model")
    trt = quantizer.write(writer.path("model_int8_trt.onnx"), "tensorrt", repair.excluded)
    writer.add("model_int8_trt.onnx", "trt_onnx")
    trt_check = guard.check(trt.path, "int8-trt")
    outcome.accuracy["int8"] = {**repair.check.as_dict(), "first_attempt": first.as_dict()}
    outcome.accuracy["int8_trt"] = {**trt_check.as_dict(), "note": "QDQ graph simulated by onnxruntime on CPU"}
    outcome.variants.append(Variant("int8", "int8", cpu_path, reference="fp32", file="model.onnx",
                                    extra={"scheme": options.cpu_scheme, "float_units": len(repair.excluded)}))
    outcome.variants.append(Variant("int8-trt", "int8", trt.path, reference="fp32", latency=False, file="model_int8_trt.onnx",
                                    extra={"scheme": "s8s8", "float_units": len(repair.excluded)}))
    return {
        **options.describe(),
        "format": "QDQ",
        "calibration": {**calib.describe(), "resolution": [width, height]},
        "excluded_nodes": repair.excluded,
        "correlation": {"model.onnx": "inlined band-MatMul chain in uint8" if quantizer.correlation_chains
                        else "float edgeflow::Correlation node", "model_int8_trt.onnx": "float edgeflow::Correlation node (plugin)"},
        "float_reason": {"excluded_nodes": "kept float by the accuracy guard's sensitivity search"},
        "sensitivity_px": repair.sensitivity,
        "graphs": {"model.onnx": {"target": "onnxruntime-cpu", "scheme": options.cpu_scheme},
                   "model_int8_trt.onnx": {"target": "tensorrt", "scheme": "s8s8", "zero_points": 0}},
        "quantized_units": len(quantizer.quantizable) - len(repair.excluded),
        "total_units": len(quantizer.quantizable),
    }, calib, options, repair.excluded
