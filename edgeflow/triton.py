"""Export an artifact as a Triton Inference Server model repository.

For users who outgrow one device: the same artifact served by ``tritonserver``. Layout::

    <repo>/README.txt                      how to start the server (plugin preloading included)
    <repo>/<name>/config.pbtxt             platform, I/O names / dims / types, instance group
    <repo>/<name>/1/model.plan             the TensorRT engine ("tensorrt_plan"), or
    <repo>/<name>/1/model.onnx             the portable ONNX graph ("onnxruntime_onnx")
    <repo>/<name>/libedgeflow_plugins.so   the Correlation plugin the engine needs
    <repo>/<name>/edgeflow-manifest.json   the artifact's manifest (preprocessing for clients)

The engine is used when the artifact has one (``--platform auto``). An engine only runs on the
TensorRT version and GPU model it was built on, so the README and the command say which those are;
the ONNX graph runs anywhere (its correlation has a standard-op body, no plugin needed).
Triton ignores files in a model directory other than ``config.pbtxt`` and the version folders,
and treats every sub-directory of the repository as a model, hence the plugin sits in the model
directory and the README at the repository root.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgeflow.artifact import Artifact, parse_manifest, read_json_file, sha256_file
from edgeflow.errors import EdgeflowError, InputError

TRITON_DTYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "float64": "TYPE_FP64",
    "int8": "TYPE_INT8",
    "uint8": "TYPE_UINT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "bool": "TYPE_BOOL",
}
PLATFORMS = {"tensorrt": ("tensorrt_plan", "model.plan"), "onnxruntime": ("onnxruntime_onnx", "model.onnx")}
MANIFEST_COPY = "edgeflow-manifest.json"


@dataclass
class TritonModel:
    """What goes into config.pbtxt."""

    name: str
    platform: str
    inputs: list[dict]  # {name, shape (ints; <= 0 or str = dynamic), dtype (numpy name)}
    outputs: list[dict]
    max_batch_size: int = 0
    instances: int = 1
    kind: str = "KIND_GPU"
    comment: str = ""


@dataclass
class TritonExport:
    repo: Path
    model_dir: Path
    platform: str
    files: list[Path] = field(default_factory=list)
    plugin: Path | None = None
    notes: list[str] = field(default_factory=list)


def triton_dims(shape, batched: bool) -> list[int]:
    """Manifest dims -> Triton dims: -1 for dynamic; without the batch dim when Triton batches."""
    dims = [int(d) if isinstance(d, int) and d > 0 else -1 for d in shape]
    return dims[1:] if batched else dims


def triton_dtype(dtype: str) -> str:
    try:
        return TRITON_DTYPES[str(dtype)]
    except KeyError:
        raise EdgeflowError(f"tensor type {dtype!r} has no Triton equivalent") from None


def _tensor_block(key: str, tensors: list[dict], batched: bool) -> list[str]:
    lines = [f"{key} ["]
    for i, t in enumerate(tensors):
        dims = ", ".join(str(d) for d in triton_dims(t["shape"], batched))
        lines += ["  {", f'    name: "{t["name"]}"', f"    data_type: {triton_dtype(t['dtype'])}", f"    dims: [ {dims} ]",
                  "  }" + ("," if i < len(tensors) - 1 else "")]
    lines.append("]")
    return lines


def model_config(model: TritonModel) -> str:
    """config.pbtxt text (protobuf text format of Triton's ModelConfig)."""
    batched = model.max_batch_size > 0
    lines = [f"# {model.comment}"] if model.comment else []
    lines += [f'name: "{model.name}"', f'platform: "{model.platform}"', f"max_batch_size: {model.max_batch_size}"]
    lines += _tensor_block("input", model.inputs, batched)
    lines += _tensor_block("output", model.outputs, batched)
    lines += ["instance_group [", "  {", f"    count: {model.instances}", f"    kind: {model.kind}", "  }", "]"]
    return "\n".join(lines) + "\n"


def _check_batching(tensors: list[dict], max_batch: int) -> None:
    if max_batch <= 0:
        return
    fixed = next((t for t in tensors if isinstance(t["shape"][0], int) and t["shape"][0] > 0), None)
    if fixed is not None:
        raise InputError(
            f"--max-batch {max_batch}: the graph's batch dimension is fixed ({fixed['name']!r} has shape "
            f"{list(fixed['shape'])}), so Triton cannot batch requests: use --max-batch 0 (the default)"
        )


def _engine_io(artifact: Artifact) -> tuple[list[dict], list[dict]]:
    """The engine's own I/O (static dims) from the tensorrt record; the ONNX I/O otherwise."""
    rec = (artifact.manifest.get("tensorrt") or {}).get("engines", {}).get("engine", {})
    if rec.get("inputs") and rec.get("outputs"):
        return rec["inputs"], rec["outputs"]
    return artifact.manifest["inputs"], artifact.manifest["outputs"]


def _find_plugin(artifact: Artifact, plugin_library: str | Path | None, notes: list[str]) -> Path:
    from edgeflow.plugins import find_plugin_library

    path = Path(plugin_library).expanduser() if plugin_library else find_plugin_library()
    if path is None or not path.is_file():
        raise EdgeflowError(
            "the engine needs the Correlation plugin library and none was found: pass --plugin PATH or run "
            "`edgeflow build-plugin` (against the TensorRT version Triton uses)"
        )
    want = (artifact.manifest.get("tensorrt") or {}).get("plugin_sha256")
    if want and sha256_file(path) != want:
        notes.append(f"{path} is not the library the engine was built with (sha256 differs); it works if it was "
                     "compiled for the same TensorRT version")
    return path


def choose_platform(artifact: Artifact, platform: str) -> str:
    if platform not in ("auto", *PLATFORMS):
        raise InputError(f"unknown platform {platform!r}; choose auto, tensorrt or onnxruntime")
    if platform == "auto":
        return "tensorrt" if artifact.has("engine") else "onnxruntime"
    if platform == "tensorrt" and not artifact.has("engine"):
        raise EdgeflowError(
            f"{artifact.root} has no TensorRT engine: build one with `edgeflow convert {artifact.root} --target tensorrt` "
            "on a machine with the server's GPU and Triton's TensorRT version, or export --platform onnxruntime"
        )
    return platform


def export_triton(artifact_dir: str | Path, repo: str | Path, name: str | None = None, max_batch: int = 0,
                  instances: int = 1, platform: str = "auto", kind: str = "gpu",
                  plugin_library: str | Path | None = None, version: int = 1, force: bool = False) -> TritonExport:
    """Write ``<repo>/<name>/`` for the artifact, replacing only an earlier export of the same name
    (anything else needs ``force``); written in a staging folder and renamed into place."""
    artifact = Artifact.open(artifact_dir)
    which = choose_platform(artifact, platform)
    name = name or artifact.name
    if not name or "/" in name or name.startswith("."):
        raise InputError(f"invalid Triton model name {name!r}")
    if instances < 1 or max_batch < 0 or version < 1:
        raise InputError("--instances and --version must be >= 1 and --max-batch >= 0")
    if kind not in ("gpu", "cpu"):
        raise InputError(f"unknown instance kind {kind!r}; choose gpu or cpu")
    if which == "tensorrt" and kind == "cpu":
        raise InputError("a TensorRT plan runs on a GPU only: use --kind gpu or --platform onnxruntime")
    triton_platform, filename = PLATFORMS[which]
    notes: list[str] = []
    if which == "tensorrt":
        inputs, outputs = _engine_io(artifact)
        source = artifact.graph("engine")
        rec = artifact.manifest.get("tensorrt") or {}
        notes.append(f"the plan runs only on TensorRT {rec.get('version', '?')} with a {rec.get('gpu', '?')} GPU "
                     f"(compute {rec.get('compute_capability', '?')}): serve it with the Triton release that ships that "
                     "TensorRT, on that GPU model")
    else:
        inputs, outputs = artifact.manifest["inputs"], artifact.manifest["outputs"]
        source = artifact.graph("model")
    _check_batching(inputs + outputs, max_batch)
    plugin = _find_plugin(artifact, plugin_library, notes) if which == "tensorrt" and artifact.manifest.get("plugins") else None

    repo = Path(repo)
    model_dir = repo / name
    readme = repo / "README.txt"
    _check_replaceable(model_dir, readme, force)  # before copying anything
    repo.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=repo))
    try:
        (staging / str(version)).mkdir()
        shutil.copy2(source, staging / str(version) / filename)
        if plugin is not None:
            shutil.copy2(plugin, staging / plugin.name)
        comment = (f"edgeflow export triton {artifact.root.name}: {artifact.name}, {artifact.precision}"
                   + (f", TensorRT {(artifact.manifest.get('tensorrt') or {}).get('version')} engine" if which == "tensorrt" else ""))
        config = TritonModel(name, triton_platform, inputs, outputs, max_batch, instances, f"KIND_{kind.upper()}", comment)
        (staging / "config.pbtxt").write_text(model_config(config))
        (staging / MANIFEST_COPY).write_text(json.dumps(artifact.manifest, indent=2) + "\n")
        os.chmod(staging, 0o755)
        _check_replaceable(model_dir, readme, force)  # again: the folder may have changed meanwhile
        _swap_in(staging, model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = [model_dir / str(version) / filename]
    if plugin is not None:
        files.append(model_dir / plugin.name)
    files += [model_dir / "config.pbtxt", model_dir / MANIFEST_COPY]
    _atomic_text(readme, repository_readme(repo))
    files.append(readme)
    return TritonExport(repo, model_dir, triton_platform, files, plugin, notes)


#: First line of the README.txt we write: a README.txt without it is the user's and is kept.
README_FIRST_LINE = "Triton model repository written by `edgeflow export triton`."


def _export_files(model_dir: Path) -> set[str] | None:
    """Files a previous ``edgeflow export triton`` wrote in ``model_dir`` (None: not ours)."""
    if not (model_dir / MANIFEST_COPY).is_file() or (model_dir / MANIFEST_COPY).is_symlink():
        return None
    ours = set()
    for dirpath, dirnames, filenames in os.walk(model_dir):
        rel = Path(dirpath).relative_to(model_dir)
        for fname in filenames:
            path = rel / fname
            parts = path.parts
            if (len(parts) == 1 and (fname in ("config.pbtxt", MANIFEST_COPY) or (fname.startswith("lib") and fname.endswith(".so")))) \
                    or (len(parts) == 2 and parts[0].isdigit() and fname in ("model.plan", "model.onnx")):
                ours.add(str(path))
    return ours


def _check_replaceable(model_dir: Path, readme: Path, force: bool) -> None:
    """Never delete what edgeflow did not write: REPO/NAME is replaced only when missing, empty or
    an earlier export holding only the files an export writes; README.txt only when ours."""
    problem = None
    if model_dir.is_symlink() or (model_dir.exists() and not model_dir.is_dir()):
        problem = f"{model_dir} exists and is not a folder"
    elif model_dir.is_dir():
        entries = sorted(str(Path(d, f).relative_to(model_dir)) for d, _, fs in os.walk(model_dir) for f in fs)
        ours = _export_files(model_dir)
        foreign = entries if ours is None else [e for e in entries if e not in ours]
        if foreign:
            more = f" (+{len(foreign) - 3} more)" if len(foreign) > 3 else ""
            what = "is not an earlier edgeflow export" if ours is None else "holds files an export does not write"
            problem = f"{model_dir} {what} ({', '.join(foreign[:3])}{more})"
    if problem is None and readme.exists():
        try:
            first = readme.read_text(errors="replace").splitlines()[:1]
        except OSError:
            first = []
        if first != [README_FIRST_LINE]:
            problem = f"{readme} is not the README edgeflow writes"
    if problem is not None and not force:
        raise EdgeflowError(f"refusing to replace {problem}; use another --repo or --name, or pass --force to replace it")


def _swap_in(staging: Path, model_dir: Path) -> None:
    """Replace ``model_dir`` by ``staging`` with renames only (the old folder goes last)."""
    old = None
    if model_dir.exists() or model_dir.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.old-", dir=model_dir.parent))
        os.replace(model_dir, old / "old")
    try:
        os.replace(staging, model_dir)
    except OSError:
        if old is not None:
            os.replace(old / "old", model_dir)
        raise
    if old is not None:
        if (old / "old").is_symlink():
            (old / "old").unlink()
        shutil.rmtree(old, ignore_errors=True)


def _atomic_text(path: Path, text: str) -> None:
    """Write via an unpredictable temp name in the same folder, then rename over ``path``."""
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _models(repo: Path) -> list[tuple[str, dict, Path | None]]:
    """(name, manifest, plugin path relative to the repo) of every edgeflow model in the repository."""
    models = []
    for d in sorted(p for p in repo.iterdir() if p.is_dir()):
        manifest = d / MANIFEST_COPY
        if not manifest.is_file():
            continue
        try:  # a copy in someone's repository: the same bounded, validated read as an artifact's
            meta = parse_manifest(read_json_file(manifest, "manifest"), manifest).to_dict()
        except EdgeflowError:
            continue
        plugin = next(iter(sorted(d.glob("lib*.so"))), None)
        platform = "tensorrt_plan" if any(d.glob("*/model.plan")) else "onnxruntime_onnx"
        meta = {**meta, "_platform": platform}
        models.append((d.name, meta, plugin.relative_to(repo) if plugin else None))
    return models


def repository_readme(repo: Path) -> str:
    """README.txt for the repository: every edgeflow model in it and how to start tritonserver."""
    models = _models(repo)
    plugins = [p for _, _, p in models if p is not None]
    lines = [
        README_FIRST_LINE,
        "",
        "Models:",
    ]
    for name, meta, plugin in models:
        pre = meta.get("preprocessing", {})
        trt = meta.get("tensorrt") or {}
        kind = (f"TensorRT plan (TensorRT {trt.get('version', '?')}, {trt.get('gpu', '?')}, compute "
                f"{trt.get('compute_capability', '?')})" if meta["_platform"] == "tensorrt_plan" else "ONNX (onnxruntime backend)")
        lines += [
            f"  {name}: {meta.get('model', {}).get('name', name)}, {meta.get('precision', 'fp32')}, {kind}",
            f"    inputs: {', '.join(i['name'] for i in meta.get('inputs', []))}: RGB float32 in "
            f"[{pre.get('input_range', [0, 255])[0]}, {pre.get('input_range', [0, 255])[1]}], NCHW, height and width "
            f"padded (edge mode) to a multiple of {pre.get('pad_multiple', 1)}",
            f"    outputs: {', '.join(o['name'] for o in meta.get('outputs', []))}: flow (u, v) in pixels, NCHW; "
            "crop the padding off",
        ]
        if plugin:
            lines.append(f"    needs the TensorRT plugin library {plugin}")
    lines += ["", "Start the server:", ""]
    if plugins:
        paths = ";".join(f"/models/{p}" for p in plugins)
        preload = ":".join(f"/models/{p}" for p in plugins)
        lines += [
            "  The TensorRT engines call the edgeflow Correlation plugin, which must be loaded into tritonserver",
            "  before the models. Recent Triton releases take it as a TensorRT backend option:",
            "",
            "    docker run --gpus all --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 -v $PWD:/models \\",
            "      nvcr.io/nvidia/tritonserver:<YY.MM>-py3 tritonserver --model-repository=/models \\",
            f'      --backend-config=tensorrt,plugins="{paths}"',
            "",
            "  Any release (older ones have no plugins= option) can preload it instead:",
            "",
            f"    LD_PRELOAD={preload}:$LD_PRELOAD tritonserver --model-repository=/models",
            "",
            "  Pick the Triton release whose TensorRT version equals the engine's (the release notes list the",
            "  TensorRT of each container), run it on the GPU model the engine was built on, and build the plugin",
            "  against that same TensorRT (`edgeflow build-plugin` inside the matching TensorRT container).",
            "  A plan from another TensorRT version or GPU fails to load: rebuild it on the server with",
            "  `edgeflow convert ARTIFACT --target tensorrt` (engines are not portable), or export the portable",
            "  ONNX graph with `edgeflow export triton ARTIFACT --platform onnxruntime`.",
        ]
    else:
        lines += [
            "    docker run --gpus all --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 -v $PWD:/models \\",
            "      nvcr.io/nvidia/tritonserver:<YY.MM>-py3 tritonserver --model-repository=/models",
            "",
            "  The ONNX graphs carry the correlation as a standard-op ONNX function: no plugin is needed.",
        ]
    lines += ["", "Check: curl localhost:8000/v2/models/<name>/config", ""]
    return "\n".join(lines)
