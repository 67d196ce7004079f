"""``edgeflow info``: what this device is and what edgeflow can use on it; or what an artifact is."""

from __future__ import annotations

NAME = "info"
HELP = "print the device, backends, library versions and plugin status; or describe an ARTIFACT"
DESCRIPTION = """\
Without ARTIFACT: print the device (board, CPU, cores, memory, temperatures and clocks where sysfs
has them), the inference backends and onnxruntime execution providers available, the versions of
the libraries edgeflow uses (missing ones are shown as such), which decoder reads video files and
why, whether the TensorRT correlation plugin library is built (searched like the runtime does:
$EDGEFLOW_PLUGIN_PATH, the package, ~/.cache/edgeflow), and whether the bundled model is present.

With ARTIFACT (a directory made by `edgeflow convert`, e.g. one just copied to a device): print its
model, precision, resolution, inputs and outputs, preprocessing, graphs, plugins, the tools that
made it, the convert-time parity check against PyTorch, and the sha256 status of every file
(exit status 1 when a file is missing or differs from the manifest: copy the artifact again).

Nothing is changed; attach the output to bug reports.

examples:
  edgeflow info
  edgeflow info --json > device.json
  edgeflow info ~/pwc-lite-320
"""

# Imported by name, never required: a missing library is a fact to report, not an error.
LIBRARIES = ("edgeflow", "numpy", "onnxruntime", "onnx", "tensorrt", "cv2", "av", "picamera2", "prometheus_client",
             "psutil", "matplotlib")


# import name -> distribution names to ask for a version when the module has no __version__
_DISTRIBUTIONS = {"prometheus_client": ("prometheus-client", "prometheus_client"),
                  "cv2": ("opencv-python-headless", "opencv-python", "opencv-contrib-python")}


def add_arguments(p):
    p.add_argument("artifact", nargs="?", metavar="ARTIFACT", help="describe this artifact directory instead of the device")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _version(name: str):
    import importlib
    import sys

    if name == "edgeflow":
        from edgeflow import __version__

        return __version__
    try:
        module = sys.modules.get(name) or importlib.import_module(name)
    except Exception:
        return None
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    from importlib import metadata

    for dist in _DISTRIBUTIONS.get(name, (name,)):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "present"


def _memory_total_mb():
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _plugin_libraries() -> dict:
    """Built native libraries (TensorRT plugin, CUDA kernel) found on the plugin search path."""
    try:
        from edgeflow.plugins import KERNEL_LIBRARY, PLUGIN_LIBRARY, find_plugin_library
    except Exception:  # plugins package absent in a trimmed install
        return {}
    out = {}
    for name in (PLUGIN_LIBRARY, KERNEL_LIBRARY):
        path = find_plugin_library(name)
        out[name] = str(path) if path else None
    return out


def _video_backend() -> str:
    """Which decoder video files get here, and why (the same choice `edgeflow run` makes)."""
    try:
        from edgeflow.sources.video import choose_backend

        return choose_backend("auto")[1]
    except Exception as exc:  # noqa: BLE001 - SourceError: neither PyAV nor OpenCV
        return f"none ({exc})"


def collect() -> dict:
    import os
    import platform

    from edgeflow.monitoring import sysinfo
    from edgeflow.backends import tensorrt_available

    info = {
        "device": {
            "board": sysinfo.device_model(),
            "cpu": sysinfo.cpu_model(),
            "cores": os.cpu_count(),
            "machine": platform.machine(),
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(),
            "memory_mb": _memory_total_mb(),
            **sysinfo.snapshot(),
        },
        "versions": {name: _version(name) for name in LIBRARIES},
    }
    providers = []
    try:
        import onnxruntime

        providers = list(onnxruntime.get_available_providers())
    except Exception:
        pass
    info["backends"] = {
        "onnxruntime": bool(providers),
        "onnxruntime_providers": providers,
        "tensorrt": tensorrt_available(),
    }
    info["video_backend"] = _video_backend()
    info["plugin_libraries"] = _plugin_libraries()
    try:
        from edgeflow.model import default_artifact_path

        info["bundled_model"] = str(default_artifact_path())
    except Exception:
        info["bundled_model"] = None
    return info


def describe_artifact(path) -> dict:
    """The manifest's description of an artifact plus each file's sha256 status, checked here.

    Opened without verification so a damaged copy can still be described (which file is wrong is
    the point); structural problems (no manifest, not JSON, newer format) are one-line errors.
    """
    import json
    from pathlib import Path

    from edgeflow.artifact import MANIFEST, Artifact, sha256_file

    root = Path(path)
    Artifact.open(root, verify=False, allow_invalid=True)  # the runtime's own structural checks
    m = json.loads((root / MANIFEST).read_text())
    files = {}
    for name, meta in (m.get("files") or {}).items():
        meta = meta if isinstance(meta, dict) else {}
        f = root / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            status = "outside the artifact: refused"
        elif not f.is_file():
            status = "missing"
        elif f.stat().st_size != meta.get("bytes"):
            status = f"size {f.stat().st_size} != manifest {meta.get('bytes')} (truncated or modified)"
        elif sha256_file(f) != meta.get("sha256"):
            status = "sha256 differs from the manifest (modified or corrupted)"
        else:
            status = "ok"
        files[name] = {"role": meta.get("role"), "bytes": meta.get("bytes"), "status": status}
    keys = ("model", "precision", "resolution", "inputs", "outputs", "preprocessing", "postprocessing", "graphs", "split",
            "plugins", "correlation_formulation", "quantization", "tensorrt", "tools", "parity", "valid", "invalid_reason")
    out = {"path": str(root), **{k: m[k] for k in keys if k in m}, "files": files}
    out["sha256_ok"] = bool(files) and all(v["status"] == "ok" for v in files.values())
    return out


def _fmt_io(items) -> str:
    return "; ".join(f"{i.get('name')} {'x'.join({'height': 'H', 'width': 'W'}.get(str(d), str(d)) for d in i.get('shape') or [])} {i.get('dtype')}"
                     for i in items or [] if isinstance(i, dict)) or "-"


def print_artifact(d: dict) -> None:
    model = d.get("model") or {}
    print(f"artifact       {d['path']} ({'valid' if d.get('valid') else 'NOT validated: ' + str(d.get('invalid_reason', '?'))})")
    res = d.get("resolution")
    print(f"  model        {model.get('name', '?')} (arch {model.get('arch', '?')}), precision {d.get('precision', 'fp32')}"
          + (f", resolution {res[0]}x{res[1]}" if isinstance(res, list) and len(res) == 2 else ""))
    print(f"  inputs       {_fmt_io(d.get('inputs'))}")
    print(f"  outputs      {_fmt_io(d.get('outputs'))}")
    pre = d.get("preprocessing") or {}
    if pre:
        rng = pre.get("input_range")
        print(f"  preprocess   {pre.get('color_order', '?')} {pre.get('layout', '?')} {pre.get('dtype', '?')}"
              + (f", range {rng[0]}..{rng[1]}" if isinstance(rng, list) and len(rng) == 2 else "")
              + (f", pad to a multiple of {pre['pad_multiple']} ({pre.get('pad_mode', '?')})" if pre.get("pad_multiple") else "")
              + "".join(f", {k} {v}" for k, v in pre.items()
                        if k not in ("color_order", "layout", "dtype", "input_range", "pad_multiple", "pad_mode")))
    graphs = d.get("graphs") or {}
    print("  graphs       " + (", ".join(f"{k}: {v}" for k, v in graphs.items()) or "-"))
    plugins = d.get("plugins") or []
    print("  plugins      " + (", ".join(f"{p.get('namespace', '?')}::{p.get('name', '?')} v{p.get('version', '?')}"
                                       for p in plugins if isinstance(p, dict)) or "none")
          + (" (onnxruntime runs it as its ONNX function body; TensorRT needs `edgeflow build-plugin`)" if plugins else ""))
    q = d.get("quantization")
    if isinstance(q, dict):
        cal = q.get("calibration") or {}
        print(f"  quantization {q.get('format', '?')}, CPU graph {str(q.get('cpu_scheme', '?')).upper()}, {q.get('calibration_method', '?')} "
              f"calibration on {cal.get('source', '?')} ({cal.get('pairs', '?')} pairs), "
              f"{len(q.get('excluded_nodes') or [])} node(s) kept in float")
    trt = d.get("tensorrt")
    if isinstance(trt, dict):
        print(f"  tensorrt     engine for TensorRT {trt.get('version', '?')} on {trt.get('gpu', '?')}, {trt.get('precision', '?')}")
    tools = d.get("tools") or {}
    print("  tools        " + (", ".join(f"{k} {v}" for k, v in tools.items()) or "-"))
    parity = d.get("parity") or {}
    for name, p in parity.items():
        if not isinstance(p, dict):
            continue
        print(f"  parity       {name}: max |diff| {p.get('max_abs', float('nan')):.3g} px, mean EPE {p.get('epe_mean', float('nan')):.3g} px "
              f"over {p.get('pairs', '?')} pairs vs PyTorch (tolerance {p.get('tol_epe', '?')}): "
              f"{'passed' if p.get('passed') else 'FAILED'}")
    if not parity:
        print("  parity       not recorded")
    for name, f in d["files"].items():
        size = f"{f['bytes'] / 1e6:.1f} MB" if isinstance(f.get("bytes"), int) else "?"
        print(f"  file         {name} ({f.get('role') or '-'}, {size}): {f['status']}")
    print("sha256         " + ("all files match the manifest" if d["sha256_ok"] else
                               "MISMATCH: copy the whole artifact directory again (or re-run edgeflow convert)"))


def run(args) -> int:
    import json

    if args.artifact:
        d = describe_artifact(args.artifact)
        if args.json:
            print(json.dumps(d, indent=2))
        else:
            print_artifact(d)
        return 0 if d["sha256_ok"] else 1
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    dev = info["device"]
    print("device")
    print(f"  board        {dev['board'] or '-'}")
    print(f"  cpu          {dev['cpu']} ({dev['cores']} cores, {dev['machine']})")
    print(f"  os           {dev['os']}, Python {dev['python']}")
    if dev["memory_mb"]:
        print(f"  memory       {dev['memory_mb']:.0f} MB")
    if dev["temperature_c"]:
        print("  temperature  " + ", ".join(f"{k} {v:.1f} C" for k, v in dev["temperature_c"].items()))
    if dev["cpu_mhz"]:
        mhz = list(dev["cpu_mhz"].values())
        print(f"  cpu clock    {min(mhz):.0f}-{max(mhz):.0f} MHz")
    if dev["gpu_mhz"]:
        print("  gpu clock    " + ", ".join(f"{k} {v:.0f} MHz" for k, v in dev["gpu_mhz"].items()))
    b = info["backends"]
    print("backends")
    print(f"  onnxruntime  {'yes: ' + ', '.join(b['onnxruntime_providers']) if b['onnxruntime'] else 'no'}")
    print(f"  tensorrt     {'yes' if b['tensorrt'] else 'no'}")
    print("versions")
    for name, version in info["versions"].items():
        print(f"  {name:<18} {version or 'not installed'}")
    print(f"video files    {info['video_backend']}")
    print("plugins")
    for name, path in info["plugin_libraries"].items():
        print(f"  {name:<26} {path or 'not built (edgeflow build-plugin)'}")
    print(f"bundled model  {info['bundled_model'] or 'missing'}")
    return 0
