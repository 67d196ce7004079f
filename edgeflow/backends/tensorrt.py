"""TensorRT backend: run an artifact's serialized engine with pinned buffers on one CUDA stream.

An engine is a build for one TensorRT version and one GPU model: deserializing it anywhere else
fails, at best with a cryptic error and at worst with wrong kernels picked for another
architecture. So before touching the bytes the runner compares the manifest's ``tensorrt``
record (written by ``edgeflow convert --target tensorrt`` on the device that built it) with the
running TensorRT and GPU, and refuses a mismatch with the one fix: rebuild on this device.

Per ``infer``: copy the feed into page-locked host buffers, then on one stream: async
host-to-device copies, ``execute_async_v3``, async device-to-host copies, one synchronize.
Buffers are allocated once per input shape (static-shape engines: once, at load).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edgeflow.backends.base import Runner, TensorSpec
from edgeflow.backends.cuda import CudaApi, load_cuda_api
from edgeflow.errors import ArtifactError, EdgeflowError, InputError

_TENSORRT_HINT = (
    "the tensorrt Python package is not installed: on a Jetson it comes with JetPack "
    "(sudo apt install python3-libnvinfer, or a venv with --system-site-packages), elsewhere pip install tensorrt; "
    "without it, the artifact's ONNX graph runs on onnxruntime"
)
_logger = None
log = logging.getLogger(__name__)


def import_tensorrt():
    """``import tensorrt`` or a one-line EdgeflowError saying how to get it."""
    try:
        import tensorrt
    except ImportError:
        raise EdgeflowError(_TENSORRT_HINT) from None
    return tensorrt


def shared_logger(trt):
    """One ILogger per process (TensorRT keeps the first one it sees); remembers errors for messages."""
    global _logger
    if _logger is None:

        class _CapturingLogger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.errors: list[str] = []
                self.echo_warnings = False

            def log(self, severity, msg):
                if severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR):
                    self.errors = self.errors[-20:] + [str(msg)]
                elif severity == trt.ILogger.WARNING and self.echo_warnings:
                    log.warning("TensorRT: %s", msg)

            def take_errors(self) -> list[str]:
                errors, self.errors = self.errors, []
                return errors

        _logger = _CapturingLogger()
    return _logger


def first_error(logger, default: str) -> str:
    errors = [e.strip().splitlines()[0] for e in logger.take_errors() if e.strip()]
    return errors[-1] if errors else default


def _version_key(version: str) -> tuple:
    """'10.3.0.30' -> (10, 3, 0): engines need the same major.minor.patch."""
    parts = []
    for p in str(version).split(".")[:3]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def engine_compatibility_problem(record, tensorrt_version: str, gpu_name: str, compute_capability: str) -> str | None:
    """Why an engine described by the manifest record cannot run here, or None when it can.

    Pure function (no TensorRT, no GPU): ``record`` is ``manifest["tensorrt"]``.
    """
    if not isinstance(record, dict) or not record.get("version"):
        return "the manifest has an engine but no record of the TensorRT and GPU it was built for"
    problems = []
    built = str(record["version"])
    if _version_key(built) != _version_key(tensorrt_version):
        problems.append(f"TensorRT {built} (this device runs {tensorrt_version})")
    cc = str(record.get("compute_capability") or "")
    if cc and cc != str(compute_capability):
        problems.append(f"compute capability {cc} (this GPU is {compute_capability})")
    gpu = str(record.get("gpu") or "")
    if gpu and gpu.strip().lower() != str(gpu_name).strip().lower():
        problems.append(f"the GPU '{gpu}' (this one is '{gpu_name}')")
    if not problems:
        return None
    return "its engine was built for " + " and ".join(problems)


def check_engine_compatibility(record, tensorrt_version: str, gpu_name: str, compute_capability: str,
                               artifact_root: str | Path = "ARTIFACT") -> None:
    """Raise an ArtifactError telling to rebuild on this device when the engine does not fit it."""
    problem = engine_compatibility_problem(record, tensorrt_version, gpu_name, compute_capability)
    if problem:
        raise ArtifactError(
            f"{artifact_root}: {problem}; engines are not portable: rebuild it on this device with "
            f"`edgeflow convert {artifact_root} --target tensorrt`"
        )


def load_plugins_for(manifest: dict, tensorrt_version: str, path: str | Path | None = None) -> None:
    """Load libedgeflow_plugins.so when the manifest lists plugins; refuse one built for another TensorRT."""
    if not manifest.get("plugins"):
        return
    from edgeflow.plugins import load_plugin_library, plugin_tensorrt_version

    handle = load_plugin_library(path)
    built = plugin_tensorrt_version(handle)
    if built is not None and _version_key(built)[:2] != _version_key(tensorrt_version)[:2]:
        raise EdgeflowError(
            f"the Correlation plugin library was compiled for TensorRT {built} but this process runs TensorRT "
            f"{tensorrt_version}: rebuild it with `edgeflow build-plugin`"
        )


class EngineFromArtifact:
    """Lazy loader (Polygraphy's ``EngineFromBytes`` idea, for an artifact): calling it checks that
    the engine fits this device (TensorRT version, GPU, compute capability), loads the plugin
    library the manifest asks for, and returns the engine's bytes for the runner to deserialize.
    Nothing happens until the runner activates, so building a runner costs nothing twice.
    """

    def __init__(self, artifact, role: str = "engine"):
        self.artifact, self.role = artifact, role
        self.record = artifact.manifest.get("tensorrt")
        self.path = artifact.graph(role)
        self.dla_core = (self.record or {}).get("dla")

    def __call__(self, trt=None) -> bytes:
        from edgeflow.backends.cuda import gpu_info

        trt = trt or import_tensorrt()
        gpu = gpu_info()
        check_engine_compatibility(self.record, trt.__version__, gpu.name, gpu.compute_capability, self.artifact.root)
        load_plugins_for(self.artifact.manifest, trt.__version__)
        return self.path.read_bytes()


class TensorRTRunner(Runner):
    """Runs one deserialized engine. ``engine`` is the serialized bytes or a loader returning them
    (:class:`EngineFromArtifact`); ``cuda`` and ``trt`` are injectable for tests. Active from
    construction; ``deactivate()`` frees the GPU buffers, stream and engine."""

    backend = "tensorrt"

    def __init__(self, engine, name: str = "engine", dla_core: int | None = None,
                 cuda: CudaApi | None = None, trt=None):
        self._engine_source = engine
        self.trt = trt or import_tensorrt()
        self.name = name
        self.dla_core = dla_core
        self._cuda_arg = cuda
        self.activate()

    def activate_impl(self) -> None:
        source = self._engine_source
        engine_bytes = source(self.trt) if callable(source) else source
        logger = shared_logger(self.trt)
        logger.take_errors()
        try:
            self.runtime = self.trt.Runtime(logger)
        except (TypeError, RuntimeError):  # pybind11: the factory returned nullptr
            self.runtime = None
        if self.runtime is None:
            raise EdgeflowError(f"TensorRT could not start: {first_error(logger, 'no usable GPU')}")
        if self.dla_core is not None:
            self.runtime.DLA_core = int(self.dla_core)
        self.engine = self.runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise ArtifactError(
                f"TensorRT could not deserialize {self.name}: {first_error(logger, 'unknown error')}; "
                "rebuild the engine on this device with `edgeflow convert ARTIFACT --target tensorrt`"
            )
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise EdgeflowError(f"TensorRT could not create an execution context for {self.name}: "
                                f"{first_error(logger, 'out of GPU memory?')}")
        self.cuda = self._cuda_arg or load_cuda_api()
        self.stream = self.cuda.stream_create()
        self._live = True
        mode_input = self.trt.TensorIOMode.INPUT
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self._inputs, self._outputs = [], []
        for n in names:
            spec = TensorSpec(n, tuple(None if int(d) < 0 else int(d) for d in self.engine.get_tensor_shape(n)),
                              np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(n))).name)
            (self._inputs if self.engine.get_tensor_mode(n) == mode_input else self._outputs).append(spec)
        self._shapes: dict[str, tuple] | None = None
        self._device: dict[str, int] = {}
        self._host: dict[str, object] = {}
        if all(s.is_static for s in self._inputs):
            self._allocate({s.name: s.shape for s in self._inputs})

    @classmethod
    def from_artifact(cls, artifact, role: str = "engine", cuda: CudaApi | None = None) -> "TensorRTRunner":
        """Check the engine fits this device, load the plugin library if needed, deserialize."""
        loader = EngineFromArtifact(artifact, role)
        return cls(loader, name=str(loader.path), dla_core=loader.dla_core, cuda=cuda)

    # -- Runner interface (names, shapes and dtypes checked by the base class) ---------------------
    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = {spec.name: np.asarray(feed[spec.name]) for spec in self._inputs}
        shapes = {n: tuple(a.shape) for n, a in arrays.items()}
        if shapes != self._shapes:
            self._allocate(shapes)
        for name, x in arrays.items():
            host = self._host[name].array
            np.copyto(host, x, casting="same_kind")
            self.cuda.h2d_async(self._device[name], host, self.stream)
        if not self.context.execute_async_v3(self.cuda.stream_handle(self.stream)):
            raise EdgeflowError(f"TensorRT failed to run {self.name}: {first_error(shared_logger(self.trt), 'enqueue failed')}")
        for spec in self._outputs:
            self.cuda.d2h_async(self._host[spec.name].array, self._device[spec.name], self.stream)
        self.cuda.stream_sync(self.stream)
        return {s.name: self._host[s.name].array.copy() for s in self._outputs}

    def deactivate_impl(self) -> None:
        if not getattr(self, "_live", False):
            return
        self._live = False
        self._free_buffers()
        try:
            self.cuda.stream_destroy(self.stream)
        finally:
            self.context = self.engine = self.runtime = None
            close = getattr(self.cuda, "close", None)
            if close is not None:
                close()

    def __del__(self):
        try:
            self.deactivate()
        except Exception:  # interpreter shutdown: CUDA may already be gone
            pass

    # -- buffers ---------------------------------------------------------------------------------
    def _allocate(self, shapes: dict[str, tuple]) -> None:
        """(Re)allocate device + pinned buffers for these input shapes; outputs from the context."""
        self._free_buffers()
        for name, shape in shapes.items():
            if not self.context.set_input_shape(name, shape):
                raise InputError(f"{self.name}: input {name!r} shape {shape} is outside the engine's optimization profile")
        for spec in self._inputs + self._outputs:
            shape = tuple(int(d) for d in self.context.get_tensor_shape(spec.name))
            if any(d < 0 for d in shape):
                raise EdgeflowError(f"{self.name}: TensorRT could not infer the shape of {spec.name!r}")
            buf = self.cuda.pinned(shape, spec.dtype)
            self._host[spec.name] = buf
            self._device[spec.name] = self.cuda.malloc(buf.array.nbytes)
            self.context.set_tensor_address(spec.name, self._device[spec.name])
        self._shapes = dict(shapes)

    def _free_buffers(self) -> None:
        for ptr in self._device.values():
            self.cuda.free(ptr)
        for buf in self._host.values():
            self.cuda.free_pinned(buf)
        self._device, self._host, self._shapes = {}, {}, None
