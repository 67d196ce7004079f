"""``edgeflow info``: what this device is and what edgeflow can use on it."""

from __future__ import annotations

NAME = "info"
HELP = "print the device, available backends/providers, library versions and plugin status"
DESCRIPTION = """\
Print the device (board, CPU, cores, memory, temperatures and clocks where sysfs has them), the
inference backends and onnxruntime execution providers available, the versions of the libraries
edgeflow uses (missing ones are shown as such), whether the TensorRT correlation plugin library is
built (searched like the runtime does: $EDGEFLOW_PLUGIN_PATH, the package, ~/.cache/edgeflow), and whether the bundled model is present. Nothing is changed; attach the output to bug reports.

examples:
  edgeflow info
  edgeflow info --json > device.json
"""

# Imported by name, never required: a missing library is a fact to report, not an error.
LIBRARIES = ("edgeflow", "numpy", "onnxruntime", "onnx", "tensorrt", "cv2", "av", "picamera2", "prometheus_client",
             "psutil", "matplotlib")


# import name -> distribution names to ask for a version when the module has no __version__
_DISTRIBUTIONS = {"prometheus_client": ("prometheus-client", "prometheus_client"),
                  "cv2": ("opencv-python-headless", "opencv-python", "opencv-contrib-python")}


def add_arguments(p):
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


def collect() -> dict:
    import os
    import platform

    from edgeflow import sysinfo
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
    info["plugin_libraries"] = _plugin_libraries()
    try:
        from edgeflow.model import default_artifact_path

        info["bundled_model"] = str(default_artifact_path())
    except Exception:
        info["bundled_model"] = None
    return info


def run(args) -> int:
    import json

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
    print("plugins")
    for name, path in info["plugin_libraries"].items():
        print(f"  {name:<26} {path or 'not built (edgeflow build-plugin)'}")
    print(f"bundled model  {info['bundled_model'] or 'missing'}")
    return 0
