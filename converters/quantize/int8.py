"""Static INT8 post-training quantization (QDQ) with symmetric ranges, for two consumers.

One calibration pass (ranges of every tensor the quantized ops touch, symmetric: [-m, m]) feeds
two QDQ graphs:

* **TensorRT-bound** (``model_int8_trt.onnx``): signed INT8 activations and weights, zero point 0
  everywhere (TensorRT's explicit quantization accepts nothing else), weights per-channel
  symmetric, biases left in float (TensorRT folds them itself). The ``edgeflow::Correlation``
  nodes stay float nodes (excluded by name, so onnxruntime's quantizer never has to understand a
  custom-domain node with a local function): TensorRT binds the plugin to them.
* **onnxruntime CPU** (``model.onnx`` of an INT8 artifact): the representation onnxruntime's
  kernels run fastest on the target CPU. On x86 (AVX2/AVX-512) that is U8S8: uint8 activations,
  int8 weights. S8S8 is the trap there: onnxruntime fuses DQ -> Conv -> Q into ``QLinearConv``
  only for some S8S8 patterns, and every conv whose input feeds more than one node stays a float
  Conv behind DequantizeLinear. On ARM (NEON dot-product kernels) S8S8 is the native path.
  ``platform.machine()`` decides; ``cpu_scheme=`` overrides. Two measured refinements
  (docs/quantization.md) for uint8:

  - ``relu_zero_point``: signed tensors keep symmetric ranges (zero point 128), but a ReLU's
    output, non-negative by construction, is stored over [0, m] with zero point 0. Then the
    quantizer folds the ReLU into its convolution (the uint8 clamp at 0 *is* the ReLU) instead
    of leaving DQ -> Relu -> Q between every pair of convolutions.
  - ``int8_correlation``: the band-MatMul correlation is inlined
    (:mod:`converters.quantize.inline_correlation`) and its data-moving chain runs in uint8
    (``QLinearMatMul``, uint8 Gather), a measured better INT8 path than keeping it float.

Either way the quantized graphs run in a bare onnxruntime session, with no edgeflow code.
"""

from __future__ import annotations

import contextlib
import io
import logging
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from converters.quantize.calibration import PairFeeds
from converters.quantize.inline_correlation import inline_correlations, inlinable
from edgeflow.errors import EdgeflowError, first_line

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
SCHEMES = ("u8s8", "s8s8")
#: Ops whose inputs/outputs get Q/DQ. Convolutions carry almost all the MACs. What follows a
#: convolution decides whether onnxruntime can run it in INT8 at all: it fuses DQ -> Conv -> Q
#: into ``QLinearConv`` only when the conv's *output* is quantized too, and a conv whose output
#: goes on in float stays a float Conv behind DequantizeLinear, slower than the FP32 graph's
#: (which fuses the activation and uses the blocked NCHWc kernels). So the element-wise
#: activation right after a convolution is quantized whenever onnxruntime has an 8-bit kernel for
#: it (ACTIVATION_OPS: Relu folds into the uint8 clamp, LeakyRelu and Sigmoid become
#: ``QLinearLeakyRelu`` / ``QLinearSigmoid`` lookups), and a Concat is quantized when everything
#: it feeds is quantized (``QLinearConcat``), e.g. a DenseNet-style decoder's running
#: ``cat(conv(x), x)``. Everything else stays float: element-wise arithmetic is cheap, and the
#: warping grid (a Concat of normalized coordinates feeding GridSample) holds positions that
#: 8 bits would round by more than a pixel. On PTLFlow's pwcnet this rule alone changed little
#: (its LeakyReLUs feed Concats that were quantized anyway); what left 60 of its 73 convs in float
#: was their biases (see fold_parameter_identities): with both, all 73 run as QLinearConv.
ACTIVATION_OPS = ("Relu", "LeakyRelu", "Sigmoid")
DEFAULT_OP_TYPES = ("Conv", "ConvTranspose", "Concat", *ACTIVATION_OPS)
CONV_OPS = ("Conv", "ConvTranspose")
#: Op types of the inlined correlation chain (converters.quantize.inline_correlation).
CHAIN_OPS = ("MatMul", "Transpose", "Slice", "Concat", "Reshape", "Gather")
CORRELATION_OP = ("edgeflow", "Correlation")


def default_cpu_scheme(machine: str | None = None) -> str:
    """u8s8 on x86 (VPMADDUBSW-style kernels), s8s8 on ARM (SDOT) and anything else."""
    machine = (machine or platform.machine()).lower()
    return "u8s8" if machine in ("x86_64", "amd64", "i386", "i686", "x86") else "s8s8"


def has_vnni(cpuinfo: str | None = None) -> bool:
    """Whether this CPU has an 8-bit dot-product instruction (AVX512-VNNI, AVX-VNNI or AMX).

    Why it matters: without one, onnxruntime's x86 u8s8 kernels multiply with VPMADDUBSW, whose
    16-bit pair sums saturate when uint8 activations meet full-range int8 weights; onnxruntime's
    answer is 7-bit weights (``reduce_range``). Found on an AVX2-only EPYC host: a small dense
    decoder's INT8 output was off by 47 % of its range with 8-bit weights. Reads /proc/cpuinfo;
    elsewhere (no such file) it answers False, the safe side.
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
                cpuinfo = handle.read()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


@dataclass
class Int8Options:
    method: str = "minmax"
    per_channel: bool = True
    cpu_scheme: str | None = None  # None: from platform.machine()
    op_types: tuple[str, ...] = DEFAULT_OP_TYPES
    percentile: float = 99.999
    relu_zero_point: bool = True  # uint8 CPU graphs: zero point 0 on non-negative tensors (ReLU folds)
    int8_correlation: bool = True  # CPU graph: inline the band-MatMul correlation and run it in uint8
    #: 7-bit weights in u8s8 CPU graphs (None: when this x86 CPU lacks VNNI; see has_vnni).
    reduce_range: bool | None = None

    def __post_init__(self):
        if self.method not in CALIBRATION_METHODS:
            raise EdgeflowError(f"unknown calibration method {self.method!r}; use one of {', '.join(CALIBRATION_METHODS)}")
        if self.cpu_scheme is None:
            self.cpu_scheme = default_cpu_scheme()
        if self.cpu_scheme not in SCHEMES:
            raise EdgeflowError(f"unknown INT8 CPU scheme {self.cpu_scheme!r}; use one of {', '.join(SCHEMES)}")
        if self.reduce_range is None:
            self.reduce_range = self.cpu_scheme == "u8s8" and not has_vnni()

    def describe(self) -> dict:
        return {"calibration_method": self.method, "per_channel": self.per_channel, "cpu_scheme": self.cpu_scheme,
                "op_types": list(self.op_types), "activation_ranges": "symmetric", "weight_ranges": "symmetric",
                "relu_zero_point": self.relu_zero_point and self.cpu_scheme == "u8s8",
                "reduce_range": bool(self.reduce_range and self.cpu_scheme == "u8s8"),
                "int8_correlation": self.int8_correlation}


@dataclass
class Int8Graph:
    path: Path
    target: str  # "cpu" | "tensorrt"
    scheme: str
    excluded: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _quiet_quantizer():
    """onnxruntime.quantization logs 'consider pre-processing' warnings through the root logger."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def correlation_node_names(model: onnx.ModelProto) -> list[str]:
    return [n.name for n in model.graph.node if (n.domain, n.op_type) == CORRELATION_OP]


def nodes_to_quantize(model: onnx.ModelProto, op_types=DEFAULT_OP_TYPES, also: list[str] = ()) -> list[str]:
    """Convolutions (and nodes named in ``also``), the activations right after them, and the
    Concats whose every consumer is quantized (see DEFAULT_OP_TYPES for why)."""
    also = set(also)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producers = {o: n for n in model.graph.node for o in n.output}
    standard = [n for n in model.graph.node if n.op_type in op_types and n.domain in ("", "ai.onnx")]
    chosen = {n.name for n in model.graph.node if n.name in also}
    chosen |= {n.name for n in standard if n.op_type in CONV_OPS}
    for node in standard:
        if node.op_type in ACTIVATION_OPS:
            src = producers.get(node.input[0])
            if src is not None and src.name in chosen:
                chosen.add(node.name)
    # Concats: the largest set in which every Concat feeds only quantized nodes (a fixpoint, so
    # a chain of Concats that ends in convolutions is quantized as a whole).
    concats = {n.name: n for n in standard if n.op_type == "Concat" and n.name not in chosen}
    candidates = {name for name, n in concats.items() if consumers.get(n.output[0])}
    changed = True
    while changed:
        changed = False
        for name in sorted(candidates):
            feeds = [c for out in concats[name].output for c in consumers.get(out, [])]
            if not all(c.name in chosen or c.name in candidates for c in feeds):
                candidates.discard(name)
                changed = True
    chosen |= candidates
    return [n.name for n in model.graph.node if n.name in chosen]


def fold_parameter_identities(model: onnx.ModelProto) -> int:
    """Turn ``Identity(initializer)`` nodes into initializers of their own (in place); returns how many.

    Why: torch's TorchScript exporter stores equal parameters once (every zero-initialized bias of
    a model, the weights of an encoder run on both frames) and reads them through Identity nodes.
    A convolution whose bias comes from a node is not a QLinearConv pattern for onnxruntime (the
    int32 bias must be an initializer quantized with that conv's own scale): the quantizer then
    quantizes the bias like an activation and onnxruntime runs the conv in float behind
    DequantizeLinear, slower than the FP32 graph. Measured on PTLFlow's pwcnet: 68 of 81 conv
    biases came through Identity nodes. A copy per reader also gives each conv its own bias."""
    inits = {t.name: t for t in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    keep, added, sources = [], [], set()
    for node in model.graph.node:
        if node.op_type == "Identity" and node.domain in ("", "ai.onnx") and node.input and node.input[0] in inits \
                and node.output[0] not in outputs:
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            added.append(copy)
            sources.add(node.input[0])
        else:
            keep.append(node)
    if added:
        del model.graph.node[:]
        model.graph.node.extend(keep)
        model.graph.initializer.extend(added)
        # Drop only a folded Identity's source that nothing else reads: not a node of the graph,
        # of a local function or of an If/Loop/Scan body, not a graph input or output.
        used = _referenced_names(model.graph) | {i for f in model.functions for n in f.node for i in n.input}
        used |= outputs | {i.name for i in model.graph.input}
        kept = [t for t in model.graph.initializer if t.name not in sources or t.name in used]
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept)
    return len(added)


def _referenced_names(graph) -> set:
    """Every tensor name a node of ``graph`` or of its subgraphs (If/Loop/Scan bodies) reads."""
    names = set()
    for node in graph.node:
        names.update(node.input)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                names |= _referenced_names(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    names |= _referenced_names(sub)
    return names


class Int8Quantizer:
    """Calibrates ``fp32_path`` once, then writes QDQ graphs for any target and exclusion set."""

    def __init__(self, fp32_path: str | Path, feeds: PairFeeds, options: Int8Options):
        self.fp32_path = Path(fp32_path)
        self.feeds = feeds
        self.options = options
        model = onnx.load(str(self.fp32_path))
        unnamed = [i for i, n in enumerate(model.graph.node) if not n.name]
        if unnamed:  # the quantizer and the exclusion lists address nodes by name
            for i in unnamed:
                model.graph.node[i].name = f"node_{i}_{model.graph.node[i].op_type}"
            onnx.save(model, str(self.fp32_path))
        self.correlation_nodes = correlation_node_names(model)
        self.quantizable = [n.name for n in model.graph.node if n.op_type in CONV_OPS]
        self._tmp = tempfile.TemporaryDirectory(prefix="edgeflow-int8-")
        # Both targets quantize a copy whose parameters are initializers (see fold_parameter_identities).
        self.trt_source = self.fp32_path
        if fold_parameter_identities(model):
            self.trt_source = Path(self._tmp.name) / "folded.onnx"
            onnx.save(model, str(self.trt_source))
        self.selected = nodes_to_quantize(model, options.op_types)
        # onnxruntime-CPU source: the correlation inlined so its band chain can run in uint8.
        self.cpu_source, self.correlation_chains = self.trt_source, {}
        if options.int8_correlation and inlinable(model):
            self.correlation_chains = inline_correlations(model)
            self.cpu_source = Path(self._tmp.name) / "inlined.onnx"
            onnx.save(model, str(self.cpu_source))
            self.quantizable += list(self.correlation_chains)
        chain_nodes = [n for chain in self.correlation_chains.values() for n in chain]
        self.cpu_selected = nodes_to_quantize(model, options.op_types, chain_nodes)
        producers = {o: n.name for n in model.graph.node for o in n.output}
        self._follows = {n.name: producers.get(n.input[0]) for n in model.graph.node if n.op_type in ACTIVATION_OPS and n.input}
        self._ranges = None

    # -- calibration ------------------------------------------------------------------------------
    def calibrate(self):
        """Run the calibration pairs through an augmented copy of the graph; cache the ranges."""
        if self._ranges is not None:
            return self._ranges
        from converters.progress import progress_bar

        feeds = self.feeds

        class _Reader:
            def __init__(self):
                self._it = iter(progress_bar(iter(feeds), len(feeds), "calibrating"))

            def get_next(self):
                return next(self._it, None)

            def __len__(self):
                return len(feeds)

        with tempfile.TemporaryDirectory(prefix="edgeflow-calib-") as tmp, _quiet_quantizer(), \
                contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print progress
            try:
                calibrator = self._calibrator(str(Path(tmp) / "augmented.onnx"))
                calibrator.collect_data(_Reader())
                self._ranges = calibrator.compute_data()
            except Exception as err:
                raise EdgeflowError(f"INT8 calibration failed ({self.options.method}): {first_line(err)}") from err
        return self._ranges

    def _calibrator(self, augmented_path: str):
        """onnxruntime's calibrator for the method, restricted to the tensors the quantized nodes
        touch: the default (every tensor of every node of those op types) would also histogram the
        warp's constant-valued coordinate tensors, which the histogram methods cannot bin."""
        from onnxruntime.quantization.calibrate import EntropyCalibrater, MinMaxCalibrater, PercentileCalibrater

        model = onnx.load(str(self.cpu_source))
        chosen = set(self.cpu_selected) | set(self.selected)
        wanted = {t for n in model.graph.node if n.name in chosen for t in (*n.input, *n.output) if t}
        base, kwargs = {
            "minmax": (MinMaxCalibrater, {}),
            "entropy": (EntropyCalibrater, {"num_bins": 128, "num_quantized_bins": 128}),
            "percentile": (PercentileCalibrater, {"num_bins": 2048, "percentile": self.options.percentile}),
        }[self.options.method]

        class _Restricted(base):
            def select_tensors_to_calibrate(self, model):
                found, infos = super().select_tensors_to_calibrate(model)
                return found & wanted, infos

        calibrator = _Restricted(self.cpu_source, self._op_types(), augmented_path, symmetric=True, **kwargs)
        calibrator.augment_graph()
        calibrator.create_inference_session()
        return calibrator

    def _op_types(self) -> list[str]:
        ops = list(self.options.op_types)
        if self.correlation_chains:
            ops += [o for o in CHAIN_OPS if o not in ops]
        return ops

    # -- graph writing ----------------------------------------------------------------------------
    def _relu_folding_overrides(self, ranges) -> dict:
        """Symmetric ranges everywhere, except ReLU outputs: [0, max] with uint8 zero point 0."""
        model = onnx.load(str(self.cpu_source))
        relu_out = {n.output[0] for n in model.graph.node if n.op_type == "Relu"}
        overrides = {}
        for name in ranges:
            if name in relu_out:
                high = float(max(np.abs(np.asarray(v, dtype=np.float64)).max() for v in ranges[name].range_value))
                overrides[name] = [{"symmetric": False, "rmin": np.float32(0.0), "rmax": np.float32(max(high, 1e-6))}]
            else:
                overrides[name] = [{"symmetric": True}]
        return overrides

    def write(self, out: str | Path, target: str, exclude: list[str] = (), scheme: str | None = None,
              relu_zero_point: bool | None = None) -> Int8Graph:
        """Write the QDQ graph for ``target`` ("cpu" or "tensorrt") with ``exclude`` kept float.

        ``scheme`` / ``relu_zero_point`` override the options (benchmarks compare representations).
        """
        from onnxruntime.quantization import QDQQuantizer, QuantType
        from onnxruntime.quantization.quant_utils import load_model_with_shape_infer

        ranges = self.calibrate()
        scheme = "s8s8" if target == "tensorrt" else (scheme or self.options.cpu_scheme)
        activation = QuantType.QUInt8 if scheme == "u8s8" else QuantType.QInt8
        extra = {
            "ActivationSymmetric": True,
            "WeightSymmetric": True,
            # TensorRT wants float biases (it fuses them); onnxruntime's QLinearConv fusion wants int32.
            "QuantizeBias": target != "tensorrt",
        }
        if target == "cpu":
            source, selected, excluded = self.cpu_source, self.cpu_selected, list(exclude)
            for corr in exclude:  # an excluded correlation level: its whole inlined chain stays float
                excluded += self.correlation_chains.get(corr, [])
        else:  # the TensorRT graph keeps every Correlation node float (the plugin computes it)
            source, selected, excluded = self.trt_source, self.selected, list(dict.fromkeys([*self.correlation_nodes, *exclude]))
        selected = [n for n in selected if n not in excluded and self._follows.get(n) not in excluded]
        fold = self.options.relu_zero_point if relu_zero_point is None else relu_zero_point
        if target == "cpu" and activation == QuantType.QUInt8 and fold:
            # Per-tensor symmetry instead of the global flag: the quantizer folds a Relu into its
            # producer only when activations are not globally symmetric (see module doc).
            extra["ActivationSymmetric"] = False
            extra["TensorQuantOverrides"] = self._relu_folding_overrides(ranges)
        with _quiet_quantizer():
            try:
                model = load_model_with_shape_infer(source)
                reduce = bool(target == "cpu" and scheme == "u8s8" and self.options.reduce_range)
                quantizer = QDQQuantizer(model, self.options.per_channel, reduce, QuantType.QInt8, activation, ranges,
                                         selected, excluded, self._op_types(), extra)
                quantizer.quantize_model()
                out = Path(out)
                quantizer.model.save_model_to_file(str(out), False)
            except Exception as err:
                raise EdgeflowError(f"INT8 quantization failed: {first_line(err)}") from err
        _strip_inference_metadata(out)
        return Int8Graph(out, target, scheme, list(exclude))


def _strip_inference_metadata(path: Path) -> None:
    """Shape inference leaves value_info for every tensor; drop it (smaller file, no stale shapes)."""
    model = onnx.load(str(path))
    del model.graph.value_info[:]
    onnx.save(model, str(path))


def zero_points(model: onnx.ModelProto) -> list[tuple[str, int, list]]:
    """(node, zero-point dtype, values) of every Quantize/DequantizeLinear; for checks and tests."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    consts = {n.output[0]: n.attribute[0].t for n in model.graph.node if n.op_type == "Constant" and n.attribute}
    found = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if len(node.input) < 3 or not node.input[2]:
            found.append((node.name, None, []))
            continue
        tensor = inits.get(node.input[2]) or consts.get(node.input[2])
        values = numpy_helper.to_array(tensor).ravel().tolist() if tensor is not None else None
        found.append((node.name, tensor.data_type if tensor is not None else None, values))
    return found
