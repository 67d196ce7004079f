"""TensorRT engines from edgeflow ONNX graphs: the TensorRT-bound graph, then one engine build.

Runs on the device that will run the engine (engines are tied to one TensorRT version and one
GPU model), so nothing here imports torch: a Jetson with JetPack's TensorRT, ``onnx`` and the
plugin library built by ``edgeflow build-plugin`` is enough. That is why it lives in the runtime,
beside the backend that runs the engines (:mod:`edgeflow.backends.tensorrt`).

**The TensorRT-bound graph** (:func:`prepare_tensorrt_onnx`). The exported graph keeps one
``edgeflow::Correlation`` node per correlation and carries a model-local function of the same
name with a standard-op body, so any ONNX runtime can execute it. TensorRT must instead bind the
node to our plugin, and two things get in the way: the ONNX parser looks plugins up by op type
plus the node's ``plugin_namespace`` / ``plugin_version`` attributes (never by the ONNX domain),
and TensorRT 10.3-10.6 inline a local function whose name matches the node rather than calling
the plugin. So the functions go, every Correlation node gets ``plugin_namespace="edgeflow"`` and
``plugin_version="1"``, and IR-10 overload ids (one per attribute set) are dropped; nothing
else in the graph changes.

**The build** (:func:`build_engine`). Precision follows what the installed TensorRT offers:

* TensorRT 10.x (JetPack 6 ships 10.3) builds *weakly typed* networks: FP16 sets
  ``BuilderFlag.FP16``; INT8 sets ``BuilderFlag.INT8`` on an explicitly quantized (QDQ) graph.
* TensorRT 11 builds *strongly typed* networks only and has no FP16/INT8 builder flags: the
  precision is the graph's own (an FP16 ONNX graph, or the QDQ graph).

INT8 is explicit quantization only (the symmetric QDQ graph written by ``convert --int8``):
never a calibrator, which TensorRT deprecated and the QDQ graph's accuracy guard already covers.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgeflow.backends.tensorrt import first_error, import_tensorrt, shared_logger
from edgeflow.errors import EdgeflowError, InputError, first_line
from edgeflow.plugins import PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION

log = logging.getLogger(__name__)

CORRELATION_DOMAIN = "edgeflow"  # the ONNX domain of the node (converters.ops.correlation.ONNX_DOMAIN)
PRECISIONS = ("fp32", "fp16", "int8")
_BUILD_PLUGIN_HINT = "run `edgeflow build-plugin` on this device first"


# -- the TensorRT-bound graph ------------------------------------------------------------------
@dataclass
class PreparedGraph:
    path: Path
    correlation_nodes: int
    functions_removed: int


def _walk_nodes(graph):
    """Every node of ``graph`` and of its control-flow subgraphs (If / Loop / Scan bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _walk_nodes(attr.g)
            for sub in attr.graphs:
                yield from _walk_nodes(sub)


def _is_correlation(node) -> bool:
    return node.domain == CORRELATION_DOMAIN and node.op_type == PLUGIN_NAME


def bind_correlation_plugin(model) -> tuple[int, int]:
    """In place: drop the Correlation functions, tag the nodes for the plugin. Returns (nodes, functions)."""
    from onnx import helper

    keep = [f for f in model.functions if not (f.domain == CORRELATION_DOMAIN and f.name == PLUGIN_NAME)]
    removed = len(model.functions) - len(keep)
    del model.functions[:]
    model.functions.extend(keep)
    count = 0
    for node in _walk_nodes(model.graph):
        if not _is_correlation(node):
            continue
        others = [a for a in node.attribute if a.name not in ("plugin_namespace", "plugin_version")]
        del node.attribute[:]
        node.attribute.extend(others)
        node.attribute.append(helper.make_attribute("plugin_namespace", PLUGIN_NAMESPACE))
        node.attribute.append(helper.make_attribute("plugin_version", PLUGIN_VERSION))
        node.ClearField("overload")
        count += 1
    return count, removed


def prepare_tensorrt_onnx(onnx_in: str | Path, onnx_out: str | Path) -> PreparedGraph:
    """Write the TensorRT-bound copy of ``onnx_in`` (see the module docstring) to ``onnx_out``."""
    try:
        import onnx
    except ImportError:
        raise EdgeflowError("preparing the TensorRT graph needs the onnx package: pip install onnx") from None
    try:
        model = onnx.load(str(onnx_in))
    except Exception as err:
        raise InputError(f"cannot read {onnx_in} as ONNX: {first_line(err)}") from None
    nodes, removed = bind_correlation_plugin(model)
    out = Path(onnx_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return PreparedGraph(out, nodes, removed)


# -- the build ---------------------------------------------------------------------------------
@dataclass
class BuildOptions:
    precision: str = "fp32"  # fp32 | fp16 | int8 (int8: the graph must be QDQ)
    fp16_fallback: bool = False  # int8 on TensorRT 10.x: let the float layers pick FP16 too
    workspace_gb: float | None = None  # None: TensorRT's default (the device's memory)
    dla_core: int | None = None  # a Jetson DLA core, with GPU fallback for what DLA cannot run
    timing_cache: Path | None = None  # loaded when present, saved after the build
    plugin_library: Path | None = None  # None: edgeflow.plugins search order
    require_plugin: bool = True  # the graph has Correlation nodes
    # Optimization profile for inputs with dynamic dims: {name: (min, opt, max)}; static inputs need none.
    shapes: dict[str, tuple[tuple, tuple, tuple]] = field(default_factory=dict)


@dataclass
class EngineInfo:
    path: Path
    tensorrt_version: str
    gpu: str
    compute_capability: str
    precision: str
    strongly_typed: bool
    dla_core: int | None
    build_seconds: float
    plugin_library: Path | None = None
    plugin_sha256: str | None = None
    inputs: list[dict] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def is_strongly_typed_only(trt) -> bool:
    """TensorRT 11 removed the FP16/INT8 builder flags: every network is strongly typed."""
    return not hasattr(trt.BuilderFlag, "FP16")


def load_correlation_plugin(trt, library: Path | None) -> tuple[Path, str]:
    """Load the plugin library, check it matches this TensorRT and registered its creator."""
    from edgeflow.artifact import sha256_file
    from edgeflow.backends.tensorrt import load_plugins_for
    from edgeflow.plugins import find_plugin_library

    path = Path(library).expanduser() if library else find_plugin_library()
    if path is None or not path.is_file():
        where = f" at {path}" if path else ""
        raise EdgeflowError(f"the TensorRT Correlation plugin library (libedgeflow_plugins.so) is missing{where}: {_BUILD_PLUGIN_HINT}")
    load_plugins_for({"plugins": [PLUGIN_NAME]}, trt.__version__, path)  # loads it and checks its TensorRT version
    registry = trt.get_plugin_registry()
    get_creator = getattr(registry, "get_creator", None)
    if get_creator is not None and get_creator(PLUGIN_NAME, PLUGIN_VERSION, PLUGIN_NAMESPACE) is None:
        raise EdgeflowError(
            f"{path} loaded but registered no '{PLUGIN_NAME}' creator in namespace '{PLUGIN_NAMESPACE}': "
            "rebuild it with `edgeflow build-plugin` (and unset EDGEFLOW_PLUGIN_NO_STATIC_REGISTRATION)"
        )
    return path.resolve(), sha256_file(path)


def parser_failure(trt_version: str, onnx_path: Path, parser) -> EdgeflowError:
    """One line: the first failing node and every unsupported operator type the parser named."""
    failures = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        op = err.node_operator() if hasattr(err, "node_operator") else ""
        name = err.node_name() if hasattr(err, "node_name") else ""
        desc = (err.desc() or "").strip().splitlines()
        failures.append((name, op, desc[0] if desc else str(err.code())))
    if not failures:
        return EdgeflowError(f"TensorRT {trt_version} cannot parse {onnx_path} (no parser error reported)")
    name, op, desc = failures[0]
    ops = sorted({o for _, o, _ in failures if o})
    where = f"node {name!r} ({op})" if name or op else "the graph"
    msg = f"TensorRT {trt_version} cannot parse {onnx_path.name}: {where}: {desc}"
    if len(ops) > 1:
        msg += f"; operators that failed: {', '.join(ops)}"
    if PLUGIN_NAME in ops:
        msg += f"; check the Correlation node's attributes and the plugin library (`edgeflow build-plugin` on this device)"
    return EdgeflowError(msg)


def make_progress_monitor(trt):
    """An ``IProgressMonitor`` (TensorRT >= 10) showing the build as one bar (:func:`edgeflow.console.progress_bar`):
    it follows the outermost phase, its label names the innermost one running. Drawn only where the
    ``edgeflow`` logger's INFO records reach a terminal (the CLI on a TTY, not with ``--quiet``)."""
    from edgeflow.console import progress_bar

    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class _Monitor(base):
        def __init__(self):
            base.__init__(self)
            self.phases: dict[str, list] = {}  # name -> [parent, steps, done]
            self.bar = None

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.phases[phase_name] = [parent_phase, max(int(num_steps), 1), 0]
            if parent_phase is None and self.bar is None:
                self.bar = progress_bar(total=self.phases[phase_name][1], desc=phase_name, logger=log)
            self._show(phase_name)

        def step_complete(self, phase_name, step):
            if phase_name in self.phases:
                self.phases[phase_name][2] = int(step) + 1
                self._show(phase_name)
            return True  # keep building

        def phase_finish(self, phase_name):
            self.phases.pop(phase_name, None)
            if not self.phases and self.bar is not None:
                self.bar.close()
                self.bar = None

        def _show(self, phase_name):
            top = next((n for n, p in self.phases.items() if p[0] is None), None)
            if self.bar is None or top is None:
                return
            _, total, done = self.phases[top]
            self.bar.n = min(done, total)
            self.bar.set_description(top if phase_name == top else f"{top}: {phase_name}", refresh=False)
            self.bar.refresh()

    return _Monitor()


def _network_has_qdq(trt, network) -> bool:
    quantize = getattr(trt.LayerType, "QUANTIZE", None)
    return any(network.get_layer(i).type == quantize for i in range(network.num_layers))


def _set_precision(trt, network, config, opts: BuildOptions, notes: list[str]) -> bool:
    """Returns whether the network is strongly typed (the graph decides the precision)."""
    strong = is_strongly_typed_only(trt)
    if opts.precision == "int8":
        if not _network_has_qdq(trt, network):
            raise EdgeflowError(
                "INT8 engines are built from an explicitly quantized (QDQ) graph only and this graph has no "
                "QuantizeLinear: convert with `edgeflow convert MODEL --int8 --target tensorrt`"
            )
        if not strong:
            config.set_flag(trt.BuilderFlag.INT8)
            if opts.fp16_fallback:
                config.set_flag(trt.BuilderFlag.FP16)
        notes.append("INT8 from explicit Q/DQ scales (no calibrator)")
    elif opts.precision == "fp16":
        if strong:
            notes.append(f"TensorRT {trt.__version__} is strongly typed: FP16 comes from the FP16 ONNX graph")
        else:
            config.set_flag(trt.BuilderFlag.FP16)
    return strong


def _set_dla(trt, builder, config, opts: BuildOptions, notes: list[str]) -> None:
    if opts.dla_core is None:
        return
    available = int(getattr(builder, "num_DLA_cores", 0) or 0)
    if available == 0:
        raise EdgeflowError("--dla: this device has no DLA (Jetson AGX Orin and Orin NX have them; Orin Nano does not)")
    if not 0 <= opts.dla_core < available:
        raise EdgeflowError(f"--dla {opts.dla_core}: this device has DLA cores 0..{available - 1}")
    if opts.precision == "fp32":
        raise EdgeflowError("--dla: the DLA runs FP16 and INT8 only: add --fp16 (or --int8)")
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = int(opts.dla_core)
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    notes.append(f"DLA core {opts.dla_core} with GPU fallback (the Correlation plugin always runs on the GPU)")


def _set_profile(builder, network, config, opts: BuildOptions) -> None:
    profile, needed = None, False
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = tuple(int(d) for d in tensor.shape)
        if all(d >= 0 for d in dims):
            continue
        needed = True
        if tensor.name not in opts.shapes:
            raise EdgeflowError(
                f"input {tensor.name!r} has dynamic dims {dims}: give its (min, opt, max) shapes "
                "(edgeflow builds static engines at the artifact's resolution by default)"
            )
        lo, opt, hi = (tuple(int(d) for d in s) for s in opts.shapes[tensor.name])
        if profile is None:
            profile = builder.create_optimization_profile()
        profile.set_shape(tensor.name, lo, opt, hi)
    if needed:
        config.add_optimization_profile(profile)


def _load_timing_cache(config, path: Path | None, logger, notes: list[str]) -> None:
    """Reuse measured tactic timings (rebuilds take seconds instead of minutes); start empty if unusable."""
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data)
    if data and (cache is None or not config.set_timing_cache(cache, False)):
        notes.append(f"ignored timing cache {path}: damaged or from another TensorRT/GPU; it will be rewritten")
        logger.take_errors()
        data, cache = b"", config.create_timing_cache(b"")
    if cache is not None and not data:
        config.set_timing_cache(cache, False)
    elif data:
        notes.append(f"timing cache {path}")


def _save_timing_cache(config, path: Path | None) -> None:
    if path is None:
        return
    cache = config.get_timing_cache()
    if cache is None:
        return
    _atomic_write(path, memoryview(cache.serialize()).tobytes())


def _atomic_write(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _engine_io(trt, logger, serialized, dla_core: int | None) -> tuple[list[dict], list[dict]]:
    """Names, shapes and dtypes of the built engine's I/O (deserializing also proves the plan loads)."""
    import numpy as np

    runtime = trt.Runtime(logger)
    if dla_core is not None:
        runtime.DLA_core = int(dla_core)
    engine = runtime.deserialize_cuda_engine(serialized)
    if engine is None:
        raise EdgeflowError(f"TensorRT built an engine it cannot deserialize: {first_error(logger, 'unknown error')}")
    inputs, outputs = [], []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        spec = {"name": name, "shape": [int(d) for d in engine.get_tensor_shape(name)],
                "dtype": np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name}
        (inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs).append(spec)
    return inputs, outputs


def build_engine(onnx_path: str | Path, engine_path: str | Path, precision: str | None = None, workspace_gb: float | None = None,
                 dla_core: int | None = None, timing_cache_path: str | Path | None = None,
                 plugin_library: str | Path | None = None, options: BuildOptions | None = None) -> EngineInfo:
    """Parse a TensorRT-bound ONNX graph and write a serialized engine to ``engine_path``.

    ``options`` carries the rest (dynamic-shape profile, INT8 FP16 fallback); the keyword
    arguments override its fields. Raises EdgeflowError with one line on every expected failure.
    """
    from edgeflow.backends.cuda import gpu_info

    opts = dataclasses.replace(options) if options is not None else BuildOptions()
    opts.precision = precision or opts.precision
    if opts.precision not in PRECISIONS:
        raise InputError(f"unknown precision {opts.precision!r}; choose one of {', '.join(PRECISIONS)}")
    opts.workspace_gb = workspace_gb if workspace_gb is not None else opts.workspace_gb
    opts.dla_core = dla_core if dla_core is not None else opts.dla_core
    opts.timing_cache = Path(timing_cache_path).expanduser() if timing_cache_path else opts.timing_cache
    opts.plugin_library = Path(plugin_library) if plugin_library else opts.plugin_library
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise InputError(f"no ONNX graph at {onnx_path}")

    trt = import_tensorrt()
    gpu = gpu_info()  # fails with one line when there is no GPU
    plugin_path = plugin_sha = None
    if opts.require_plugin:
        plugin_path, plugin_sha = load_correlation_plugin(trt, opts.plugin_library)
    logger = shared_logger(trt)
    logger.take_errors()
    notes: list[str] = []
    try:
        builder = trt.Builder(logger)
    except (TypeError, RuntimeError):  # pybind11: the factory returned nullptr (no usable GPU / CUDA init failed)
        builder = None
    if builder is None:
        raise EdgeflowError(f"TensorRT cannot create a builder: {first_error(logger, 'no usable CUDA GPU')}")
    network = builder.create_network(0)  # explicit batch is the only mode since 10.0; 11.x is always strongly typed
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise parser_failure(trt.__version__, onnx_path, parser)
    config = builder.create_builder_config()
    if opts.workspace_gb:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(opts.workspace_gb * (1 << 30)))
    strong = _set_precision(trt, network, config, opts, notes)
    _set_dla(trt, builder, config, opts, notes)
    _set_profile(builder, network, config, opts)
    _load_timing_cache(config, opts.timing_cache, logger, notes)
    monitor = make_progress_monitor(trt)
    if monitor is not None:
        config.progress_monitor = monitor
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    took = time.perf_counter() - start
    if serialized is None:
        raise EdgeflowError(f"TensorRT could not build {onnx_path.name}: {first_error(logger, 'see the TensorRT log')}")
    _save_timing_cache(config, opts.timing_cache)
    data = memoryview(serialized).tobytes()
    inputs, outputs = _engine_io(trt, logger, data, opts.dla_core)
    _atomic_write(engine_path, data)
    return EngineInfo(engine_path, trt.__version__, gpu.name, gpu.compute_capability, opts.precision, strong,
                      opts.dla_core, took, plugin_path, plugin_sha, inputs, outputs, notes)
