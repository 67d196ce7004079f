"""Build the correlation CUDA kernel and the TensorRT plugin library with one direct nvcc call.

No CMake: the library is two source files, and on a Jetson the only toolchain that is certainly
there is JetPack's nvcc. Two products:

* ``libedgeflow_plugins.so``: kernel + IPluginV3 ``Correlation`` plugin, linked against libnvinfer.
  Load it with :func:`edgeflow.plugins.load_plugin_library`, ``trtexec --staticPlugins`` or
  ``--dynamicPlugins``.
* ``libedgeflow_correlation.so`` (``kernel_only``): kernel + the C ABI of ``correlation_api.h``,
  no TensorRT; callable through ctypes (benchmarks) and buildable in CI.

TensorRT is looked for in: ``tensorrt_root`` (``--tensorrt-root``), ``$TENSORRT_ROOT``, JetPack's
``/usr/include/aarch64-linux-gnu`` + ``/usr/lib/aarch64-linux-gnu``, the x86_64 Debian/Ubuntu
equivalents, and the ``tensorrt`` Python package's ``tensorrt_libs`` directory (libraries only; pip
wheels ship no headers, so those then come from one of the other places).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from edgeflow.errors import EdgeflowError

CSRC = Path(__file__).resolve().parent / "csrc"
PLUGIN_LIBRARY = "libedgeflow_plugins.so"
KERNEL_LIBRARY = "libedgeflow_correlation.so"
KERNEL_SOURCES = ("correlation_kernel.cu",)
PLUGIN_SOURCES = ("correlation_kernel.cu", "correlation_plugin.cpp")
DEFAULT_OUT = Path.home() / ".cache" / "edgeflow"
NVCC_TIMEOUT_S = 1800

_JETPACK = (Path("/usr/include/aarch64-linux-gnu"), Path("/usr/lib/aarch64-linux-gnu"))
_X86_64 = (Path("/usr/include/x86_64-linux-gnu"), Path("/usr/lib/x86_64-linux-gnu"))
_LIBNVINFER = re.compile(r"libnvinfer\.so(\.\d+)*")


@dataclass(frozen=True)
class TensorRTInstall:
    """Where the headers and libnvinfer were found, and the version the headers declare."""

    include_dir: Path
    library: Path
    version: str
    include_source: str
    library_source: str


@dataclass
class BuildResult:
    library: Path
    sha256: str
    cuda_archs: list[str]
    nvcc_version: str
    tensorrt: TensorRTInstall | None = None
    command: list[str] = field(default_factory=list)


# ---- tools ------------------------------------------------------------------------------------------


def find_nvcc(nvcc: str | os.PathLike | None = None) -> Path:
    """nvcc from the argument, $CUDACXX, PATH, $CUDA_HOME / $CUDA_PATH, or /usr/local/cuda."""
    candidates: list[str | os.PathLike] = []
    if nvcc:
        candidates.append(nvcc)
    else:
        if os.environ.get("CUDACXX"):
            candidates.append(os.environ["CUDACXX"])
        found = shutil.which("nvcc")
        if found:
            candidates.append(found)
        for var in ("CUDA_HOME", "CUDA_PATH"):
            if os.environ.get(var):
                candidates.append(Path(os.environ[var]) / "bin" / "nvcc")
        candidates.append("/usr/local/cuda/bin/nvcc")
    for c in candidates:
        p = Path(c)
        if p.is_file() and os.access(p, os.X_OK):
            return p
    if nvcc:
        raise EdgeflowError(f"nvcc not found at {nvcc}: pass the path of an existing nvcc to --nvcc")
    raise EdgeflowError(
        "nvcc not found: install the CUDA toolkit (on a Jetson: `sudo apt install nvidia-jetpack`), "
        "then put its bin/ on PATH or set CUDA_HOME"
    )


def nvcc_version(nvcc: Path) -> str:
    try:
        out = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    m = re.search(r"release ([\d.]+), V([\d.]+)", out)
    return m.group(2) if m else "unknown"


# ---- CUDA architectures -----------------------------------------------------------------------------


def normalize_archs(archs) -> list[str]:
    """'87', '8.7', 'sm_87', 'compute_87' -> '87' (sorted, unique)."""
    result = set()
    for a in archs or []:
        for part in str(a).replace(",", " ").split():
            s = part.strip().lower().removeprefix("sm_").removeprefix("compute_").replace(".", "")
            if not re.fullmatch(r"\d{2,3}[af]?", s):
                raise EdgeflowError(f"bad --cuda-arch {part!r}: use a compute capability such as 87 (Orin) or 90")
            result.add(s)
    return sorted(result, key=lambda s: (int(re.match(r"\d+", s).group()), s))


def detect_cuda_archs() -> list[str]:
    """Compute capability of the local GPU(s): nvidia-smi, else the Jetson model; [] when unknown."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
            ).stdout
            archs = normalize_archs(line for line in out.split() if re.fullmatch(r"\d+\.\d+", line.strip()))
            if archs:
                return archs
        except (OSError, subprocess.TimeoutExpired, EdgeflowError):
            pass
    model = _read("/proc/device-tree/model") or _read("/sys/firmware/devicetree/base/model")
    if "Orin" in model:
        return ["87"]
    if "Xavier" in model:
        return ["72"]
    if "R36" in _read("/etc/nv_tegra_release"):  # JetPack 6 (L4T R36) runs only on Orin
        return ["87"]
    return []


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="ignore")
    except OSError:
        return ""


def gencode_flags(archs: list[str]) -> list[str]:
    """SASS for every arch, plus PTX of the newest so later GPUs can JIT it."""
    flags = []
    for a in archs:
        flags += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
    flags += ["-gencode", f"arch=compute_{archs[-1]},code=compute_{archs[-1]}"]
    return flags


def resolve_archs(archs) -> list[str]:
    archs = normalize_archs(archs) if archs else detect_cuda_archs()
    if not archs:
        raise EdgeflowError("no GPU detected to pick an architecture: pass --cuda-arch (87 for Jetson Orin, 90 for H100)")
    return archs


# ---- TensorRT -----------------------------------------------------------------------------------------


def header_version(include_dir: Path) -> str | None:
    """'10.3.0' from NvInferVersion.h (11.x defines NV_TENSORRT_MAJOR through TRT_MAJOR_ENTERPRISE)."""
    try:
        text = (Path(include_dir) / "NvInferVersion.h").read_text(errors="ignore")
    except OSError:
        return None
    defines = dict(re.findall(r"^\s*#\s*define\s+(\w+)\s+(\w+)", text, flags=re.M))

    def value(name: str, depth: int = 0) -> str | None:
        v = defines.get(name)
        if v is None or depth > 5:
            return None
        return v if v.isdigit() else value(v, depth + 1)

    parts = [value(f"NV_TENSORRT_{p}") for p in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(parts) if all(parts) else None


def _python_tensorrt_lib_dirs() -> list[Path]:
    dirs = []
    for name in ("tensorrt_libs", "tensorrt"):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            dirs += [Path(p) for p in spec.submodule_search_locations]
    return dirs


def _find_libnvinfer(lib_dir: Path, major: str | None) -> Path | None:
    try:
        names = sorted(p.name for p in lib_dir.iterdir() if _LIBNVINFER.fullmatch(p.name))
    except OSError:
        return None
    if not names:
        return None
    if "libnvinfer.so" in names:
        return lib_dir / "libnvinfer.so"
    if major:
        for n in names:
            if n.split(".so.")[-1].split(".")[0] == major:
                return lib_dir / n
    return lib_dir / names[-1]


def _root_dirs(root: Path) -> tuple[list[Path], list[Path]]:
    includes = [root / "include", root]
    libs = [root / "lib", root / "lib64", *sorted(root.glob("targets/*/lib"))]
    return includes, libs


def find_tensorrt(tensorrt_root: str | os.PathLike | None = None) -> TensorRTInstall:
    """Locate NvInfer.h and libnvinfer; raises EdgeflowError with what was searched."""
    include_candidates: list[tuple[Path, str]] = []
    lib_candidates: list[tuple[Path, str]] = []
    for root, label in ((tensorrt_root, "--tensorrt-root"), (os.environ.get("TENSORRT_ROOT"), "$TENSORRT_ROOT")):
        if root:
            root = Path(root).expanduser()
            if not root.is_dir():
                raise EdgeflowError(f"{label} {root} is not a directory")
            inc, lib = _root_dirs(root)
            include_candidates += [(p, label) for p in inc]
            lib_candidates += [(p, label) for p in lib]
    include_candidates += [(_JETPACK[0], "JetPack"), (_X86_64[0], "system"), (Path("/usr/include"), "system")]
    lib_candidates += [(_JETPACK[1], "JetPack"), (_X86_64[1], "system")]
    lib_candidates += [(p, "python tensorrt package") for p in _python_tensorrt_lib_dirs()]

    include = next(((p, s) for p, s in include_candidates if (p / "NvInfer.h").is_file()), None)
    if include is None:
        searched = ", ".join(dict.fromkeys(str(p) for p, _ in include_candidates))
        raise EdgeflowError(
            f"TensorRT headers (NvInfer.h) not found in {searched}: install them (JetPack: "
            "`sudo apt install libnvinfer-dev`) or pass --tensorrt-root DIR"
        )
    version = header_version(include[0]) or "unknown"
    major = version.split(".")[0] if version != "unknown" else None
    library = None
    for p, s in lib_candidates:
        found = _find_libnvinfer(p, major)
        if found is not None:
            library = (found, s)
            break
    if library is None:
        searched = ", ".join(dict.fromkeys(str(p) for p, _ in lib_candidates))
        raise EdgeflowError(
            f"libnvinfer not found in {searched}: install TensorRT (JetPack: `sudo apt install libnvinfer-dev`, "
            "x86: `pip install tensorrt`) or pass --tensorrt-root DIR"
        )
    suffix = library[0].name.split(".so")[-1].lstrip(".")
    if major and suffix and suffix.split(".")[0] != major:
        raise EdgeflowError(
            f"TensorRT headers in {include[0]} are {version} but {library[0]} is major version "
            f"{suffix.split('.')[0]}: pass --tensorrt-root for one consistent install"
        )
    return TensorRTInstall(include[0], library[0], version, include[1], library[1])


# ---- commands -------------------------------------------------------------------------------------------


def _common_flags(archs: list[str]) -> list[str]:
    return [
        "-O3",
        "-std=c++17",
        "-Xcompiler",
        "-fPIC,-fvisibility=hidden,-Wall",
        "-I",
        str(CSRC),
        *gencode_flags(archs),
    ]


# --no-undefined: a missing symbol fails the build, not the first dlopen on the device.
# -Bsymbolic: the plugin calls its own edgeflow_correlation_forward even when another library exporting
# the same C ABI (say libedgeflow_correlation.so from another build) was loaded RTLD_GLOBAL first.
_LINK_FLAGS = ("-Xlinker", "--no-undefined", "-Xlinker", "-Bsymbolic")


def kernel_object_command(nvcc: Path, archs: list[str], out: Path) -> list[str]:
    """`nvcc -c` of the kernel alone (what CI compiles)."""
    return [str(nvcc), *_common_flags(archs), "-c", str(CSRC / KERNEL_SOURCES[0]), "-o", str(out)]


def kernel_library_command(nvcc: Path, archs: list[str], out: Path) -> list[str]:
    sources = [str(CSRC / s) for s in KERNEL_SOURCES]
    return [str(nvcc), *_common_flags(archs), "-shared", *_LINK_FLAGS, *sources, "-o", str(out)]


def plugin_library_command(nvcc: Path, archs: list[str], trt: TensorRTInstall, out: Path) -> list[str]:
    sources = [str(CSRC / s) for s in PLUGIN_SOURCES]
    lib_dir = trt.library.parent
    return [
        str(nvcc),
        *_common_flags(archs),
        "-isystem",
        str(trt.include_dir),
        "-shared",
        *sources,
        str(trt.library),  # the file itself: pip wheels ship only libnvinfer.so.N, no unversioned link
        "-Xlinker",
        f"-rpath,{lib_dir}",
        *_LINK_FLAGS,
        "-o",
        str(out),
    ]


def _run(cmd: list[str], log_path: Path, what: str) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=NVCC_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise EdgeflowError(f"{what}: nvcc ran longer than {NVCC_TIMEOUT_S} s; try fewer --cuda-arch values") from None
    except OSError as err:
        raise EdgeflowError(f"{what}: cannot run nvcc: {err}") from None
    log_path.write_text(" ".join(cmd) + "\n\n" + proc.stdout + proc.stderr)
    if proc.returncode != 0:
        lines = (proc.stderr + proc.stdout).splitlines()
        first = next((ln for ln in lines if "error" in ln.lower()), lines[0] if lines else "no output")
        raise EdgeflowError(f"{what} failed (nvcc exit {proc.returncode}): {first.strip()} (full log: {log_path})")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _out_dir(out_dir) -> Path:
    out = Path(out_dir).expanduser() if out_dir else DEFAULT_OUT
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise EdgeflowError(f"cannot create output directory {out}: {err.strerror}") from None
    return out


def compile_kernel_object(out: str | os.PathLike, archs, nvcc=None) -> Path:
    """Compile (no link) the kernel for `archs`; the CI check that the CUDA source builds."""
    nvcc_path = find_nvcc(nvcc)
    out = Path(out)
    _run(kernel_object_command(nvcc_path, normalize_archs(archs), out), out.with_suffix(".log"), "kernel compile")
    return out


def build_kernel_library(out_dir=None, archs=None, nvcc=None) -> BuildResult:
    """libedgeflow_correlation.so: the kernel and its C ABI, without TensorRT."""
    nvcc_path = find_nvcc(nvcc)
    archs = resolve_archs(archs)
    out = _out_dir(out_dir) / KERNEL_LIBRARY
    cmd = kernel_library_command(nvcc_path, archs, out)
    _run(cmd, out.with_suffix(".log"), "kernel library build")
    return BuildResult(out, sha256_of(out), archs, nvcc_version(nvcc_path), None, cmd)


def build_plugin_library(out_dir=None, archs=None, tensorrt_root=None, nvcc=None) -> BuildResult:
    """libedgeflow_plugins.so: the kernel plus the TensorRT Correlation plugin."""
    nvcc_path = find_nvcc(nvcc)
    trt = find_tensorrt(tensorrt_root)
    archs = resolve_archs(archs)
    out = _out_dir(out_dir) / PLUGIN_LIBRARY
    cmd = plugin_library_command(nvcc_path, archs, trt, out)
    _run(cmd, out.with_suffix(".log"), "plugin build")
    return BuildResult(out, sha256_of(out), archs, nvcc_version(nvcc_path), trt, cmd)
