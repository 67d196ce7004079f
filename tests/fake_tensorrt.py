"""Stand-ins for the ``tensorrt`` module and for CUDA memory, to run the engine path without a GPU.

Shaped after the real Python bindings (``python/src/infer/pyCore.cpp``, ``pyGraph.cpp``,
``parsers/pyOnnx.cpp`` of TensorRT release/10.3 and 11.1): the same class, method, property and
enum names the code under test calls. TensorRT 11 is modelled by leaving ``BuilderFlag.FP16`` /
``INT8`` out, as 11.x did. The "engine" is JSON holding the parsed ONNX graph; executing it runs
onnxruntime on that graph with the Correlation function body re-attached, reading inputs from and
writing outputs to :class:`FakeCuda`'s memory at the addresses set with ``set_tensor_address``.

What this checks: that our code drives the API in a sensible order with sensible arguments and
that data flows through the buffers. What it cannot check: that real TensorRT accepts it.
"""

from __future__ import annotations

import base64
import json
import types

import numpy as np

from edgeflow.backends.cuda import CudaApi, PinnedBuffer

ONNX_TYPES = {1: "float32", 10: "float16", 3: "int8", 2: "uint8", 6: "int32", 7: "int64", 9: "bool"}
UNSUPPORTED_OPS = {"FakeUnsupportedOp"}


class FakeCuda(CudaApi):
    """Device memory = numpy byte arrays keyed by fake pointers; copies are immediate."""

    name = "fake"

    def __init__(self):
        self.mem: dict[int, np.ndarray] = {}
        self.pinned_live = 0
        self.streams = 0
        self._next = 0x10000

    def malloc(self, nbytes):
        ptr, self._next = self._next, self._next + int(nbytes) + 4096
        self.mem[ptr] = np.zeros(int(nbytes), np.uint8)
        return ptr

    def free(self, ptr):
        del self.mem[ptr]

    def pinned(self, shape, dtype):
        self.pinned_live += 1
        return PinnedBuffer(np.zeros(shape, dtype), None)

    def free_pinned(self, buf):
        self.pinned_live -= 1

    def stream_create(self):
        self.streams += 1
        return object()

    def stream_handle(self, stream):
        return 1234

    def stream_sync(self, stream):
        pass

    def stream_destroy(self, stream):
        self.streams -= 1

    def h2d_async(self, dst, src, stream):
        raw = np.ascontiguousarray(src).reshape(-1).view(np.uint8)
        self.mem[dst][: raw.size] = raw

    def d2h_async(self, dst, src, stream):
        view = dst.reshape(-1).view(np.uint8)
        view[:] = self.mem[src][: view.size]


class GraphExecutor:
    """Runs a TensorRT-bound graph on onnxruntime: plugin attributes stripped, the body re-attached."""

    def __init__(self, onnx_bytes: bytes):
        import onnx
        import onnxruntime as ort

        from converters.export import attach_correlation_functions

        model = onnx.load_from_string(onnx_bytes)
        for node in model.graph.node:
            if node.op_type == "Correlation":
                keep = [a for a in node.attribute if not a.name.startswith("plugin_")]
                del node.attribute[:]
                node.attribute.extend(keep)
        attach_correlation_functions(model)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        self.names = [o.name for o in self.session.get_outputs()]

    def __call__(self, feed: dict) -> dict:
        return dict(zip(self.names, self.session.run(self.names, feed)))


def make_fake_tensorrt(version: str = "10.3.0", precision_flags: bool = True, dla_cores: int = 0):
    """A module object to put in ``sys.modules['tensorrt']``."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.cuda = FakeCuda()
    trt.registered = set()  # (name, version, namespace) of creators "registered" by loaded libraries
    trt.builds = []  # one dict per build_serialized_network call: flags, profile, DLA ...

    class ILogger:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        def __init__(self):
            pass

    trt.ILogger = ILogger

    class Logger(ILogger):
        def __init__(self, min_severity=ILogger.WARNING):
            pass

        def log(self, severity, msg):
            pass

    trt.Logger = Logger
    flags = ["DEBUG", "GPU_FALLBACK", "REFIT", "TF32", "DIRECT_IO"] + (["FP16", "BF16", "INT8"] if precision_flags else [])
    trt.BuilderFlag = types.SimpleNamespace(**{f: f for f in flags})
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED="STRONGLY_TYPED")
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.DeviceType = types.SimpleNamespace(GPU="GPU", DLA="DLA")
    trt.TensorIOMode = types.SimpleNamespace(NONE="NONE", INPUT="INPUT", OUTPUT="OUTPUT")
    trt.LayerType = types.SimpleNamespace(QUANTIZE="QUANTIZE", DEQUANTIZE="DEQUANTIZE", PLUGIN_V3="PLUGIN_V3",
                                      CONVOLUTION="CONVOLUTION")

    class IProgressMonitor:
        def __init__(self):
            pass

    trt.IProgressMonitor = IProgressMonitor
    trt.nptype = lambda dtype: np.dtype(dtype).type

    class Registry:
        def get_creator(self, name, version, namespace=""):
            return object() if (name, version, namespace) in trt.registered else None

    registry = Registry()
    trt.get_plugin_registry = lambda: registry

    class Tensor:
        def __init__(self, name, shape, dtype):
            self.name, self.shape, self.dtype = name, tuple(shape), dtype

    class Layer:
        def __init__(self, type_):
            self.type = type_

    class Network:
        def __init__(self, flags):
            self.flags = flags
            self.inputs, self.outputs, self.layers, self.onnx = [], [], [], b""

        @property
        def num_inputs(self):
            return len(self.inputs)

        def get_input(self, i):
            return self.inputs[i]

        @property
        def num_layers(self):
            return len(self.layers)

        def get_layer(self, i):
            return self.layers[i]

    class ParserError:
        def __init__(self, node_name, op, desc):
            self._n, self._op, self._d = node_name, op, desc

        def code(self):
            return "UNSUPPORTED_NODE"

        def desc(self):
            return self._d

        def node_name(self):
            return self._n

        def node_operator(self):
            return self._op

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.errors = network, []

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, i):
            return self.errors[i]

        def parse_from_file(self, path):
            import onnx

            model = onnx.load(path)
            local = {(f.domain, f.name) for f in model.functions}
            for node in model.graph.node:
                if node.op_type in UNSUPPORTED_OPS:
                    self.errors.append(ParserError(node.name, node.op_type, f"No importer registered for op: {node.op_type}"))
                if node.op_type == "Correlation" and (node.domain, node.op_type) not in local:
                    attrs = {a.name: a.s.decode() for a in node.attribute if a.name.startswith("plugin_")}
                    key = ("Correlation", attrs.get("plugin_version", "1"), attrs.get("plugin_namespace", ""))
                    if key not in trt.registered:
                        self.errors.append(ParserError(node.name, "Correlation", "Plugin not found, are the plugin name, version, and namespace correct?"))
                self.network.layers.append(Layer("QUANTIZE" if node.op_type == "QuantizeLinear" else "CONVOLUTION"))
            if self.errors:
                return False
            inits = {i.name for i in model.graph.initializer}

            def tensor(vi):
                dims = [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
                return Tensor(vi.name, dims, ONNX_TYPES[vi.type.tensor_type.elem_type])

            self.network.inputs = [tensor(vi) for vi in model.graph.input if vi.name not in inits]
            self.network.outputs = [tensor(vi) for vi in model.graph.output]
            self.network.onnx = model.SerializeToString()
            return True

    trt.OnnxParser = OnnxParser

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, lo, opt, hi):
            self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))

    class TimingCache:
        def __init__(self, data):
            self.data = bytes(data)

        def serialize(self):
            return self.data + b"+fake-timings"

    class Config:
        def __init__(self):
            self.flags, self.pools, self.profiles = set(), {}, []
            self.default_device_type, self.DLA_core, self.progress_monitor, self.cache = "GPU", -1, None, None

        def set_flag(self, flag):
            self.flags.add(flag)

        def set_memory_pool_limit(self, pool, size):
            self.pools[pool] = size

        def add_optimization_profile(self, profile):
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, data):
            return None if bytes(data) == b"corrupt" else TimingCache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache
            return True

        def get_timing_cache(self):
            return self.cache

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        num_DLA_cores = dla_cores

        def create_network(self, flags=0):
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            shapes = {}
            for t in network.inputs:
                if any(d < 0 for d in t.shape):
                    prof = next((p for p in config.profiles if t.name in p.shapes), None)
                    if prof is None:
                        self.logger.log(ILogger.ERROR, f"input {t.name} has dynamic shape but no profile")
                        return None
                    shapes[t.name] = prof.shapes[t.name][1]
                else:
                    shapes[t.name] = t.shape
            monitor = config.progress_monitor
            if monitor is not None:
                monitor.phase_start("Building engine", None, 2)
                monitor.step_complete("Building engine", 0)
                monitor.step_complete("Building engine", 1)
                monitor.phase_finish("Building engine")
            feed = {t.name: np.zeros(shapes[t.name], t.dtype) for t in network.inputs}
            outs = GraphExecutor(network.onnx)(feed)
            trt.builds.append({"flags": sorted(config.flags), "pools": dict(config.pools), "device": config.default_device_type,
                               "dla_core": config.DLA_core, "network_flags": network.flags, "profile": {k: list(v) for k, v in shapes.items()}})
            plan = {"onnx": base64.b64encode(network.onnx).decode(), "version": trt.__version__,
                    "inputs": [{"name": t.name, "shape": list(shapes[t.name]), "dtype": t.dtype} for t in network.inputs],
                    "outputs": [{"name": t.name, "shape": list(outs[t.name].shape), "dtype": t.dtype} for t in network.outputs]}
            return json.dumps(plan).encode()

    trt.Builder = Builder

    class Context:
        def __init__(self, engine):
            self.engine, self.addresses = engine, {}

        def set_input_shape(self, name, shape):
            return tuple(shape) == tuple(self.engine.specs[name]["shape"])

        def get_tensor_shape(self, name):
            return tuple(self.engine.specs[name]["shape"])

        def set_tensor_address(self, name, ptr):
            self.addresses[name] = ptr
            return True

        def execute_async_v3(self, stream_handle):
            mem = trt.cuda.mem
            feed = {}
            for spec in self.engine.plan["inputs"]:
                raw = mem[self.addresses[spec["name"]]]
                feed[spec["name"]] = raw.view(spec["dtype"]).reshape(spec["shape"]).copy()
            outs = self.engine.run(feed)
            for spec in self.engine.plan["outputs"]:
                data = np.ascontiguousarray(outs[spec["name"]], spec["dtype"]).reshape(-1).view(np.uint8)
                mem[self.addresses[spec["name"]]][: data.size] = data
            return True

    class Engine:
        def __init__(self, plan):
            self.plan = plan
            self.onnx = base64.b64decode(plan["onnx"])
            self.run = GraphExecutor(self.onnx)
            self.specs = {s["name"]: s for s in plan["inputs"] + plan["outputs"]}
            self.names = [s["name"] for s in plan["inputs"] + plan["outputs"]]

        @property
        def num_io_tensors(self):
            return len(self.names)

        def get_tensor_name(self, i):
            return self.names[i]

        def get_tensor_mode(self, name):
            return "INPUT" if any(s["name"] == name for s in self.plan["inputs"]) else "OUTPUT"

        def get_tensor_shape(self, name):
            return tuple(self.specs[name]["shape"])

        def get_tensor_dtype(self, name):
            return self.specs[name]["dtype"]

        def create_execution_context(self):
            return Context(self)

    class Runtime:
        def __init__(self, logger):
            self.logger, self.DLA_core = logger, -1

        def deserialize_cuda_engine(self, data):
            try:
                plan = json.loads(bytes(data).decode())
            except (UnicodeDecodeError, json.JSONDecodeError):
                self.logger.log(ILogger.ERROR, "Serialization assertion failed: magic tag mismatch")
                return None
            if plan.get("version") != trt.__version__:
                self.logger.log(ILogger.ERROR, "The engine plan file is not compatible with this version of TensorRT")
                return None
            return Engine(plan)

    trt.Runtime = Runtime
    return trt
