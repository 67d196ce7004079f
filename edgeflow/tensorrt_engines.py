"""``edgeflow convert ... --target tensorrt``: build engines for a validated artifact, on this device.

The stage after the ONNX artifact is written and validated (or, on a Jetson, after it was copied
there): pick the graph each engine is built from (:func:`plan_engine_jobs`), write its
TensorRT-bound copy, build the engine at the artifact's padded resolution, check it against
onnxruntime on the same graph, then rewrite the artifact atomically with the engines (roles
``engine``, ``encoder_engine``, ``decoder_engine``), the graphs they were built from
(``*_onnx``) and a ``tensorrt`` record in the manifest naming the TensorRT version, GPU, compute
capability and plugin library they are tied to. The runtime refuses the engines anywhere else.

Which graph, by precision (TensorRT 10.x weakly typed / 11.x strongly typed):

* ``int8``: the TensorRT-bound symmetric QDQ graph (role ``trt_onnx``) written by
  ``convert --int8``; never a calibrator. Without it: refused.
* ``fp16``: the FP16 graph when the artifact has one (``convert --fp16``); on 10.x otherwise the
  FP32 graph with ``BuilderFlag.FP16``; on 11.x (no such flag) refused without the FP16 graph.
* ``fp32``: the FP32 graph.

Encoder/decoder engines (feature caching) are built when the artifact has those graphs in the
precision asked for.

Part of the runtime, not the toolchain: it runs on the device and never imports torch (the CLI's
``convert`` imports it lazily).
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import statistics
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgeflow.backends.tensorrt_build import PRECISIONS, BuildOptions, build_engine, is_strongly_typed_only, prepare_tensorrt_onnx
from edgeflow.artifact import Artifact, ArtifactWriter
from edgeflow.errors import ArtifactError, EdgeflowError, InputError

log = logging.getLogger(__name__)

# source role -> (engine role, engine file, TensorRT-bound ONNX role, its file)
ENGINE_NAMES = {
    "model": ("engine", "model.engine", "engine_onnx", "model.engine.onnx"),
    "encoder": ("encoder_engine", "encoder.engine", "encoder_engine_onnx", "encoder.engine.onnx"),
    "decoder": ("decoder_engine", "decoder.engine", "decoder_engine_onnx", "decoder.engine.onnx"),
}
# Mean EPE (px) allowed between the engine and onnxruntime running the same graph.
DEFAULT_PARITY_EPE = {"fp32": 0.05, "fp16": 0.3, "int8": 0.5}
_MANIFEST_KEYS_OWNED_BY_WRITER = ("format", "format_version", "files", "graphs", "valid", "invalid_reason")


@dataclass
class TensorRTOptions:
    precision: str | None = None  # None: the artifact's own precision
    fp16_fallback: bool = False  # --int8 --fp16 on TensorRT 10.x: float layers may run FP16
    workspace_gb: float | None = None
    dla_core: int | None = None
    timing_cache: Path | None = None  # None: ~/.cache/edgeflow/, one file per TensorRT version and GPU
    plugin_library: Path | None = None
    split: bool = True  # also encoder/decoder engines when the artifact has them
    parity_epe: float | None = None  # None: DEFAULT_PARITY_EPE[precision]
    latency_iterations: int = 20
    out: Path | None = None  # None: update the artifact in place


@dataclass
class EngineJob:
    source_role: str  # graph the engine is built from (model, fp32, fp16, trt_onnx, encoder, decoder)
    part: str  # model | encoder | decoder: what the engine computes

    @property
    def names(self) -> tuple:
        return ENGINE_NAMES[self.part]

    # engine role, engine file, role and file of the TensorRT-bound graph it was built from
    engine_role = property(lambda self: self.names[0])
    engine_file = property(lambda self: self.names[1])
    onnx_role = property(lambda self: self.names[2])
    onnx_file = property(lambda self: self.names[3])


@dataclass
class TensorRTResult:
    out: Path
    record: dict
    report: dict = field(default_factory=dict)


def preflight() -> str:
    """Fail fast (before a long conversion) when this machine cannot build engines. Returns the version."""
    from edgeflow.backends import cuda
    from edgeflow.backends.tensorrt import import_tensorrt

    trt = import_tensorrt()
    cuda.gpu_info()
    cuda.require_cuda_api()  # the engine check runs the engine
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise EdgeflowError("--target tensorrt needs the onnx package to prepare the graph: pip install onnx") from None
    return trt.__version__


def plan_engine_jobs(manifest: dict, precision: str, strongly_typed: bool, split: bool = True) -> list[EngineJob]:
    """Which graph each engine is built from (see the module docstring). Pure: manifest in, jobs out."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    graphs = manifest.get("graphs", {})
    built = manifest.get("precision", "fp32")
    fp32 = "fp32" if "fp32" in graphs else ("model" if built == "fp32" and "model" in graphs else None)
    if precision == "int8":
        if "trt_onnx" not in graphs:
            raise EdgeflowError(
                "this artifact has no TensorRT INT8 graph (model_int8_trt.onnx, the explicit symmetric QDQ graph): "
                "create it on the host with `edgeflow convert MODEL --int8`, then build with --target tensorrt"
            )
        return [EngineJob("trt_onnx", "model")]
    if precision == "fp16":
        fp16 = "model" if built == "fp16" else ("fp16" if "fp16" in graphs else None)
        if fp16 is None and strongly_typed:
            raise EdgeflowError(
                "this TensorRT builds strongly typed networks only (no FP16 builder flag), so an FP16 engine needs the "
                "artifact's FP16 graph: re-convert on the host with `edgeflow convert MODEL --fp16`"
            )
        main = fp16 or fp32
        parts = built == "fp16" or (built == "fp32" and not strongly_typed)
    else:
        main = fp32
        parts = built == "fp32"
    if main is None:
        raise EdgeflowError(f"this artifact has no {precision.upper()} graph to build from (graphs: {', '.join(sorted(graphs))})")
    jobs = [EngineJob(main, "model")]
    if split and parts and "encoder" in graphs and "decoder" in graphs:
        jobs += [EngineJob("encoder", "encoder"), EngineJob("decoder", "decoder")]
    return jobs


def padded_resolution(manifest: dict) -> tuple[int, int]:
    """(H, W) the engines are built for: the convert resolution rounded up to the pad multiple."""
    width, height = manifest.get("resolution") or (None, None)
    if not width or not height:
        raise ArtifactError("the manifest has no resolution to build a static engine for; re-run `edgeflow convert`")
    m = max(int(manifest.get("preprocessing", {}).get("pad_multiple", 1)), 1)
    return -(-int(height) // m) * m, -(-int(width) // m) * m


def _ort(path: Path):
    from edgeflow.backends.onnxruntime import OnnxRuntimeRunner, SessionLoader

    return OnnxRuntimeRunner(SessionLoader(path, threads=None))


def _frame_shape(spec, hw: tuple[int, int]) -> tuple:
    """(N, C, H, W) for an NCHW frame input: its static dims, batch 1 and ``hw`` for the symbolic ones."""
    if len(spec.shape) != 4:
        raise ArtifactError(f"input {spec.name!r} is not an NCHW frame ({spec.shape}); give build shapes explicitly")
    fill = (1, 3, *hw)
    return tuple(d if isinstance(d, int) and d > 0 else f for d, f in zip(spec.shape, fill))


def static_shapes(root: Path, graphs: dict, job: EngineJob, hw: tuple[int, int]) -> dict[str, tuple]:
    """Input shapes of ``job``'s graph at resolution ``hw`` (decoder: the encoder's feature shapes)."""
    runner = _ort(root / graphs[job.source_role])
    if job.part != "decoder":
        return {s.name: _frame_shape(s, hw) for s in runner.inputs}
    encoder = _ort(root / graphs["encoder"])
    feats = encoder.infer({encoder.input_names[0]: np.zeros(_frame_shape(encoder.inputs[0], hw), np.float32)})
    shapes = {}
    for spec in runner.inputs:
        level = spec.name.partition("_")[2]
        if f"feat_{level}" not in feats:
            raise ArtifactError(f"decoder input {spec.name!r} has no matching encoder output")
        shapes[spec.name] = tuple(feats[f"feat_{level}"].shape)
    return shapes


def parity_frames(hw: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured pair moved by (3, 2) px: enough structure for a runtime-vs-runtime comparison."""
    h, w = hw
    rng = np.random.default_rng(seed)
    noise = rng.random((h + 24, w + 24, 3))
    for axis in (0, 1):  # box blur twice: texture at several scales
        for _ in range(2):
            noise = (noise + np.roll(noise, 1, axis) + np.roll(noise, -1, axis)) / 3
    img = (255 * (noise - noise.min()) / (np.ptp(noise) + 1e-9)).astype(np.uint8)
    return img[12:12 + h, 12:12 + w].copy(), img[10:10 + h, 9:9 + w].copy()


def _to_network(frame: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(frame.transpose(2, 0, 1)[None].astype(np.float32))


def parity_feeds(root: Path, graphs: dict, job: EngineJob, input_names: list[str], hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """The same inputs for the engine and for onnxruntime: a frame pair, a frame, or its features."""
    f1, f2 = parity_frames(hw)
    if job.part == "model":
        return {input_names[0]: _to_network(f1), input_names[1]: _to_network(f2)}
    if job.part == "encoder":
        return {input_names[0]: _to_network(f1)}
    encoder = _ort(root / graphs["encoder"])
    e1, e2 = (encoder.infer({encoder.input_names[0]: _to_network(f)}) for f in (f1, f2))
    feed = {}
    for name in input_names:
        side, _, level = name.partition("_")
        feed[name] = (e1 if side == "feat1" else e2)[f"feat_{level}"]
    return feed


def compare_outputs(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> dict:
    """Per output: max |diff|, max |diff| / max |ref|, and mean EPE for 2-channel flow outputs."""
    result = {}
    for name, ref in reference.items():
        got = candidate[name].astype(np.float64)
        ref = ref.astype(np.float64)
        diff = got - ref
        row = {"max_abs": float(np.abs(diff).max()), "rel_max": float(np.abs(diff).max() / (np.abs(ref).max() + 1e-12))}
        if ref.ndim == 4 and ref.shape[1] == 2:
            row["epe"] = float(np.sqrt((diff ** 2).sum(axis=1)).mean())
        result[name] = row
    return result


def _latency(runner, feed: dict, iterations: int) -> dict:
    from edgeflow.benchmark import time_loop

    times, _ = time_loop(lambda _i: runner.infer(feed), warmup=3, iterations=max(iterations, 1), duration=None)
    times.sort()
    return {"backend": "tensorrt", "median_ms": statistics.median(times),
            "p95_ms": times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))], "iterations": len(times),
            "includes": "host-to-device and device-to-host copies"}


def default_timing_cache(version: str, gpu: str, compute_capability: str) -> Path:
    from edgeflow.plugins import CACHE_DIR

    tag = re.sub(r"[^A-Za-z0-9.]+", "-", f"{gpu}-sm{compute_capability.replace('.', '')}").strip("-")
    return CACHE_DIR / f"tensorrt-{version}-{tag}.timing-cache"


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def rewrite_artifact(artifact: Artifact, out_dir: Path, new_files: dict[str, tuple[Path, str]], record: dict,
                     report_section: dict) -> Path:
    """Commit ``artifact`` + ``new_files`` ({name: (path, role)}) atomically, replacing older engines."""
    graphs = artifact.manifest.get("graphs", {})
    stale = {name for role, name in graphs.items() if role.endswith("engine") or role.endswith("engine_onnx")}
    manifest = {k: v for k, v in artifact.manifest.items() if k not in _MANIFEST_KEYS_OWNED_BY_WRITER}
    manifest["tensorrt"] = record
    report = dict(artifact.report)
    report["tensorrt"] = report_section
    with ArtifactWriter(out_dir) as writer:
        for name in artifact.manifest.get("files", {}):
            if name not in stale and name not in new_files:
                _link_or_copy(artifact.root / name, writer.path(name))
        writer.roles = {role: name for role, name in graphs.items() if name not in stale and name not in new_files}
        for name, (path, role) in new_files.items():
            shutil.move(str(path), writer.path(name))
            writer.add(name, role)
        return writer.commit(manifest, report, valid=True)


def add_tensorrt_engines(artifact_dir: str | Path, opts: TensorRTOptions | None = None) -> TensorRTResult:
    """Build, check and add the TensorRT engine(s) of a validated artifact (see the module docstring)."""
    from edgeflow.backends.cuda import gpu_info
    from edgeflow.backends.tensorrt import TensorRTRunner, import_tensorrt

    opts = opts or TensorRTOptions()
    artifact = Artifact.open(artifact_dir)
    trt = import_tensorrt()
    gpu = gpu_info()
    manifest, graphs = artifact.manifest, artifact.manifest.get("graphs", {})
    precision = opts.precision or artifact.precision
    strong = is_strongly_typed_only(trt)
    jobs = plan_engine_jobs(manifest, precision, strong, opts.split)
    hw = padded_resolution(manifest)
    cache = Path(opts.timing_cache).expanduser() if opts.timing_cache else default_timing_cache(trt.__version__, gpu.name, gpu.compute_capability)
    tol = opts.parity_epe if opts.parity_epe is not None else DEFAULT_PARITY_EPE[precision]
    log.info(f"TensorRT {trt.__version__} on {gpu.name} (compute {gpu.compute_capability}): "
               f"{precision.upper()} engine(s) at {hw[1]}x{hw[0]} for {artifact.root}")
    work = Path(tempfile.mkdtemp(prefix=f".{artifact.root.name}.tensorrt-", dir=artifact.root.resolve().parent))
    try:
        new_files, engines, parity, latency, infos = {}, {}, {}, None, []
        for job in jobs:
            source = artifact.root / graphs[job.source_role]
            prepared = prepare_tensorrt_onnx(source, work / job.onnx_file)
            shapes = static_shapes(artifact.root, graphs, job, hw)
            build = BuildOptions(precision=precision, fp16_fallback=opts.fp16_fallback, workspace_gb=opts.workspace_gb,
                                 dla_core=opts.dla_core, timing_cache=cache, plugin_library=opts.plugin_library,
                                 require_plugin=prepared.correlation_nodes > 0,
                                 shapes={n: (s, s, s) for n, s in shapes.items()})
            log.info(f"  building {job.engine_file} from {source.name} ({prepared.correlation_nodes} Correlation plugin node(s)) ...")
            info = build_engine(prepared.path, work / job.engine_file, options=build)
            infos.append(info)
            log.info(f"  built {job.engine_file} in {info.build_seconds:.0f} s" + (f" ({'; '.join(info.notes)})" if info.notes else ""))
            with TensorRTRunner((work / job.engine_file).read_bytes(), name=job.engine_file, dla_core=opts.dla_core) as runner:
                feed = parity_feeds(artifact.root, graphs, job, runner.input_names, hw)
                got = runner.infer(feed)
                ref = _ort(source).infer(feed)
                check = compare_outputs(ref, got)
                if job.part == "model":
                    latency = _latency(runner, feed, opts.latency_iterations)
            parity[job.engine_role] = check
            worst = max((row.get("epe", 0.0) for row in check.values()), default=0.0)
            log.info(f"  {job.engine_file} vs onnxruntime on {source.name}: " +
                 ", ".join(f"{n}: max |diff| {r['max_abs']:.3g}" + (f", EPE {r['epe']:.3f} px" if "epe" in r else "") for n, r in check.items()))
            if worst > tol:
                raise EdgeflowError(
                    f"the {precision.upper()} engine {job.engine_file} differs from onnxruntime on the same graph by "
                    f"{worst:.3f} px mean EPE (allowed {tol} px); the artifact is unchanged"
                )
            new_files[job.engine_file] = (work / job.engine_file, job.engine_role)
            new_files[job.onnx_file] = (prepared.path, job.onnx_role)
            engines[job.engine_role] = {"file": job.engine_file, "onnx": job.onnx_file, "source": graphs[job.source_role],
                                        "inputs": info.inputs, "outputs": info.outputs,
                                        "build_seconds": round(info.build_seconds, 1)}
        first = infos[0]
        plugin = next((i for i in infos if i.plugin_sha256), None)
        record = {
            "version": trt.__version__,
            "gpu": gpu.name,
            "compute_capability": gpu.compute_capability,
            "plugin_sha256": plugin.plugin_sha256 if plugin else None,
            "plugin_library": plugin.plugin_library.name if plugin else None,
            "precision": precision,
            "strongly_typed": first.strongly_typed,
            "dla": opts.dla_core,
            "workspace_gb": opts.workspace_gb,
            "resolution": [hw[1], hw[0]],
            "engines": engines,
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": platform.machine(),
            "notes": sorted({n for i in infos for n in i.notes if not n.startswith("timing cache")}),
        }
        report = {"precision": precision, "parity_vs_onnxruntime": parity, "parity_epe_allowed": tol, "latency": latency,
                  "timing_cache": str(cache)}
        out = rewrite_artifact(artifact, Path(opts.out) if opts.out else artifact.root, new_files, record, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if latency:
        log.info(f"  TensorRT latency: median {latency['median_ms']:.2f} ms, p95 {latency['p95_ms']:.2f} ms (with copies)")
    return TensorRTResult(out, record, report)


# -- `edgeflow convert ... --target tensorrt` glue ---------------------------------------------
def print_summary(result: TensorRTResult) -> None:
    rec = result.record
    engines = ", ".join(f"{e['file']} ({role})" for role, e in rec["engines"].items())
    log.info(f"tensorrt: {engines}; {rec['precision'].upper()}, TensorRT {rec['version']}, {rec['gpu']} "
             f"(compute {rec['compute_capability']})" + (f", DLA {rec['dla']}" if rec.get("dla") is not None else ""))
    log.info("  engines run only on this TensorRT version and GPU model: on another device, copy the artifact and "
             "run `edgeflow convert ARTIFACT --target tensorrt` there")


def run_artifact_target(artifact_dir: str | Path, opts: TensorRTOptions | None) -> TensorRTResult:
    """``edgeflow convert ARTIFACT_DIR --target tensorrt``: the on-device path (e.g. a Jetson);
    ``opts`` None: the command asked for no engine (``--target onnx``), which an artifact cannot take."""
    if opts is None:
        raise InputError(f"{artifact_dir} is already an artifact: add --target tensorrt to build its TensorRT engine on this device")
    preflight()
    result = add_tensorrt_engines(artifact_dir, opts)
    print_summary(result)
    log.info(f"done: {result.out}")
    return result


def add_engines_after_convert(out: Path, opts: TensorRTOptions) -> TensorRTResult:
    """ConvertJob's last stage (``ConvertOptions.tensorrt``), after it wrote a valid ONNX artifact;
    a failure leaves that artifact usable and says how to retry on it."""
    try:
        result = add_tensorrt_engines(out, opts)
    except EdgeflowError as err:
        raise type(err)(f"{err} (the ONNX artifact {out} is valid; after fixing this, run "
                        f"`edgeflow convert {out} --target tensorrt`)") from None
    print_summary(result)
    return result
