"""The CUDA correlation kernel and TensorRT plugin: build, host-side index checks, compile checks.

Without a GPU (CI) this still (a) compiles the kernel with nvcc for sm_87 and sm_90, (b) compiles the
kernel's __host__ __device__ code with g++ and checks both the per-element definition and a
block-by-block replay of the tiled shared-memory kernel against a float64 reference, and (c) compiles
the plugin against TensorRT headers when they were fetched into third_party/. Tests that need a GPU or
the tensorrt package skip with the reason.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import edgeflow.plugins as plugins
from edgeflow.cli import main as cli_main
from edgeflow.errors import EdgeflowError
from edgeflow.plugins import build as pbuild

REPO = Path(__file__).resolve().parents[1]
SHIM = REPO / "tests" / "csrc" / "correlation_host_shim.cpp"
PLUGIN_CHECK = REPO / "tests" / "csrc" / "plugin_host_check.cpp"
HEADER_CHECK = REPO / "benchmarks" / "check_plugin_headers.sh"
THIRD_PARTY = REPO / "third_party"

ERR_NOT_TILED = 101


# ---- reference --------------------------------------------------------------------------------------


def correlation_reference(f1, f2, md, k=1, s1=1, s2=1, pad=None, normalize=True):
    """float64, straight from the spec (zero-pad by `pad`, window centres y*s1 + md + kr), one
    vectorized product per displacement and kernel tap."""
    pad = md if pad is None else pad
    f1 = np.asarray(f1, np.float64)
    f2 = np.asarray(f2, np.float64)
    b, c, h, w = f1.shape
    kr = (k - 1) // 2
    border = md + kr
    ho = -(-(h + 2 * pad - 2 * border) // s1)
    wo = -(-(w + 2 * pad - 2 * border) // s1)
    r = md // s2
    d = 2 * r + 1
    widths = ((0, 0), (0, 0), (pad, pad), (pad, pad))
    p1, p2 = np.pad(f1, widths), np.pad(f2, widths)
    ys = (np.arange(ho) * s1 + border)[:, None]
    xs = (np.arange(wo) * s1 + border)[None, :]
    out = np.zeros((b, d * d, ho, wo))
    for i in range(d):
        for j in range(d):
            dy, dx = (i - r) * s2, (j - r) * s2
            for a in range(-kr, kr + 1):
                for e in range(-kr, kr + 1):
                    w1 = p1[:, :, ys + a, xs + e]
                    w2 = p2[:, :, ys + dy + a, xs + dx + e]
                    out[:, i * d + j] += np.einsum("bchw,bchw->bhw", w1, w2)
    if normalize:
        out /= c * k * k
    return out


# name, (B, C, H, W), md, k, s1, s2, pad, normalize, expected (ni, jm) of the tiled kernel or None (naive)
CASES = [
    ("pwc_md4_C20", (2, 20, 13, 37), 4, 1, 1, 1, None, True, (9, 9)),
    ("flownetc_md20_s2_2", (1, 3, 11, 35), 20, 1, 1, 2, 20, True, (4, 21)),
    ("md20_s2_1", (1, 2, 9, 45), 20, 1, 1, 1, 20, True, (2, 41)),
    ("k3_pad_ne_md", (1, 4, 10, 12), 3, 3, 1, 1, 4, True, (9, 9)),
    ("s1_2", (1, 5, 19, 40), 4, 1, 2, 2, 4, True, (9, 9)),
    ("k3_s1_2_s2_2", (3, 6, 17, 23), 6, 3, 2, 2, None, True, (9, 9)),
    ("pad0_no_normalize", (2, 3, 12, 9), 2, 1, 1, 1, 0, False, (9, 9)),
    ("md0", (1, 3, 5, 6), 0, 1, 1, 1, 0, True, (9, 9)),
    ("md11_D23_in_jm41", (1, 2, 7, 30), 11, 1, 1, 1, None, True, (2, 41)),
    ("s2_3_naive", (1, 3, 12, 14), 6, 1, 1, 3, None, True, None),
]
CASE_IDS = [c[0] for c in CASES]


def _random_inputs(shape, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)


def _assert_close(out, ref):
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(ref).max())))


# ---- host build of the kernel's __host__ __device__ code ----------------------------------------------


@pytest.fixture(scope="module")
def host_lib(tmp_path_factory):
    cxx = shutil.which(os.environ.get("CXX", "g++"))
    if cxx is None:
        pytest.skip("no host C++ compiler (g++) to build the kernel's host-side code")
    out = tmp_path_factory.mktemp("host") / "libcorrelation_host.so"
    cmd = [cxx, "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
           "-I", str(pbuild.CSRC), str(SHIM), "-o", str(out)]  # fmt: skip
    cuda_inc = Path(os.environ.get("CUDA_INCLUDE", "/usr/local/cuda/include"))
    if (cuda_inc / "cuda_fp16.h").is_file():  # the fp16 path needs __half from the CUDA headers
        cmd[1:1] = ["-DEDGEFLOW_HOST_HALF", "-isystem", str(cuda_inc)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lib = ctypes.CDLL(str(out))
    f32p = ctypes.POINTER(ctypes.c_float)
    u16p = ctypes.POINTER(ctypes.c_uint16)
    i = ctypes.c_int
    lib.ef_host_forward.argtypes = [f32p, f32p, f32p] + [i] * 12
    lib.ef_host_forward.restype = i
    if hasattr(lib, "ef_host_forward_half"):
        lib.ef_host_forward_half.argtypes = [u16p, u16p, u16p] + [i] * 12
        lib.ef_host_forward_half.restype = i
    lib.ef_host_config.argtypes = [i] * 11 + [ctypes.POINTER(ctypes.c_int)]
    lib.ef_host_config.restype = i
    lib.ef_host_output_shape.argtypes = [i] * 7 + [ctypes.POINTER(ctypes.c_int)]
    lib.ef_host_output_shape.restype = i
    return lib


def _ptr(arr):
    return arr.ctypes.data_as(ctypes.POINTER(ctypes.c_uint16 if arr.dtype == np.float16 else ctypes.c_float))


def _guarded(arr, guard=4096):
    """Copy `arr` into the middle of a NaN-filled buffer: any read past its ends turns into NaN output."""
    buf = np.full(arr.size + 2 * guard, np.nan, arr.dtype)
    buf[guard : guard + arr.size] = arr.ravel()
    return buf, _ptr(buf[guard:])


def _host_forward(lib, f1, f2, md, k, s1, s2, pad, normalize, mode, num_sms=0):
    """Run the host build on f1/f2 (float32, or float16 through the __half path)."""
    pad = md if pad is None else pad
    b, c, h, w = f1.shape
    shape3 = (ctypes.c_int * 3)()
    assert lib.ef_host_output_shape(h, w, md, k, s1, s2, pad, shape3) == 0
    out = np.full((b, *shape3), np.nan, f1.dtype)
    keep1, p1 = _guarded(f1)
    keep2, p2 = _guarded(f2)
    fn = lib.ef_host_forward_half if f1.dtype == np.float16 else lib.ef_host_forward
    status = fn(p1, p2, _ptr(out), b, c, h, w, md, k, s1, s2, pad, int(normalize), mode, num_sms)
    return status, out


def _config(lib, shape, md, k, s1, s2, pad, normalize=True, num_sms=0):
    pad = md if pad is None else pad
    info = (ctypes.c_int * 7)()
    assert lib.ef_host_config(*shape, md, k, s1, s2, pad, int(normalize), num_sms, info) == 0
    return dict(zip(("tiled", "ni", "jm", "s2", "groups", "channel_chunk", "smem_bytes"), info))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_per_element_function_matches_reference(host_lib, case):
    _, shape, md, k, s1, s2, pad, normalize, _ = case
    f1, f2 = _random_inputs(shape, seed=1)
    status, out = _host_forward(host_lib, f1, f2, md, k, s1, s2, pad, normalize, mode=0)
    assert status == 0
    _assert_close(out, correlation_reference(f1, f2, md, k, s1, s2, pad, normalize))


@pytest.mark.parametrize("num_sms", [0, 10_000], ids=["fewest_groups", "one_row_per_block"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_tiled_kernel_replay_matches_reference(host_lib, case, num_sms):
    """The tiled kernel's load / accumulate / store functions, run block by block on the host."""
    _, shape, md, k, s1, s2, pad, normalize, expected = case
    f1, f2 = _random_inputs(shape, seed=2)
    status, out = _host_forward(host_lib, f1, f2, md, k, s1, s2, pad, normalize, mode=1, num_sms=num_sms)
    if expected is None:
        assert status == ERR_NOT_TILED
        return
    assert status == 0, "tile extents outgrew the shared-memory allocation" if status == 100 else status
    assert not np.isnan(out).any(), "an output was not written or read past the staged tiles"
    _assert_close(out, correlation_reference(f1, f2, md, k, s1, s2, pad, normalize))


FP16_CASES = [CASES[0], CASES[1], CASES[5], ("C256_fp32_accumulation", (1, 256, 6, 35), 4, 1, 1, 1, None, True, (9, 9))]


@pytest.mark.parametrize("mode", [0, 1], ids=["per_element", "tiled_replay"])
@pytest.mark.parametrize("case", FP16_CASES, ids=[c[0] for c in FP16_CASES])
def test_fp16_path_rounds_an_fp32_accumulation(host_lib, case, mode):
    """half in, fp32 accumulation, half out: every output is within one fp16 ulp of the exact value
    (an fp16 accumulator over 256 channels would not be)."""
    if not hasattr(host_lib, "ef_host_forward_half"):
        pytest.skip("cuda_fp16.h not found: the host build has no __half path")
    _, shape, md, k, s1, s2, pad, normalize, _ = case
    f1, f2 = (a.astype(np.float16) for a in _random_inputs(shape, seed=6))
    status, out = _host_forward(host_lib, f1, f2, md, k, s1, s2, pad, normalize, mode=mode)
    assert status == 0 and not np.isnan(out).any()
    ref = correlation_reference(f1, f2, md, k, s1, s2, pad, normalize)  # exact on the fp16 inputs
    ulp = np.spacing(np.abs(ref).astype(np.float16)).astype(np.float64)
    err = np.abs(out.astype(np.float64) - ref)
    assert (err <= ulp + 1e-6 * np.abs(ref).max()).all(), float((err / ulp).max())


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_config_choice(host_lib, case):
    _, shape, md, k, s1, s2, pad, _, expected = case
    cfg = _config(host_lib, shape, md, k, s1, s2, pad)
    if expected is None:
        assert cfg["tiled"] == 0
        return
    d = 2 * (md // s2) + 1
    assert cfg["tiled"] == 1 and (cfg["ni"], cfg["jm"]) == expected
    assert cfg["jm"] >= d and cfg["groups"] == -(-d // cfg["ni"])
    assert 1 <= cfg["channel_chunk"] <= min(shape[1], 16)
    assert cfg["smem_bytes"] <= 48 * 1024  # no opt-in needed on any GPU
    many = _config(host_lib, shape, md, k, s1, s2, pad, num_sms=10_000)
    assert many["groups"] == d  # small problem, many SMs: one displacement row per block


def test_realistic_configs_fit_shared_memory(host_lib):
    # PWC-Net level 2 at 448x1024 and FlowNetC at 384x512 (the shapes docs/plugin.md works through).
    pwc = _config(host_lib, (1, 32, 112, 256), 4, 1, 1, 1, 4, num_sms=16)
    assert (pwc["ni"], pwc["jm"], pwc["groups"], pwc["channel_chunk"]) == (9, 9, 1, 6)
    fnc = _config(host_lib, (1, 256, 48, 64), 20, 1, 1, 2, 20, num_sms=16)
    assert (fnc["ni"], fnc["jm"], fnc["groups"], fnc["channel_chunk"]) == (4, 21, 6, 4)
    assert max(pwc["smem_bytes"], fnc["smem_bytes"]) <= 24 * 1024


def test_empty_output_is_an_error(host_lib):
    shape3 = (ctypes.c_int * 3)()
    assert host_lib.ef_host_output_shape(8, 8, 4, 1, 1, 1, 0, shape3) == 5  # kEMPTY_OUTPUT: 8 - 8 <= 0
    assert host_lib.ef_host_output_shape(8, 8, 4, 2, 1, 1, 4, shape3) == 1  # even kernel_size


def test_reference_agrees_with_converters_reference():
    ref_mod = pytest.importorskip("converters.ops.reference", reason="converters.ops.reference not available")
    f1, f2 = _random_inputs((1, 3, 9, 11), seed=3)
    for md, k, s1, s2, pad in ((2, 1, 1, 1, None), (4, 3, 2, 2, 3)):
        ours = correlation_reference(f1, f2, md, k, s1, s2, pad)
        theirs = ref_mod.correlation_reference(f1, f2, md, k, s1, s2, pad)
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


# ---- nvcc ---------------------------------------------------------------------------------------------


def _nvcc_or_skip():
    try:
        return pbuild.find_nvcc()
    except EdgeflowError as err:
        pytest.skip(f"nvcc not available: {err}")


@pytest.fixture(scope="module")
def kernel_lib(tmp_path_factory):
    """libedgeflow_correlation.so for sm_87 (Jetson Orin) and sm_90 (H100), built the way CI does."""
    nvcc = _nvcc_or_skip()
    out = tmp_path_factory.mktemp("kernel")
    return pbuild.build_kernel_library(out, ["87", "90"], nvcc)


@pytest.mark.slow
def test_nvcc_compiles_kernel_for_sm87_and_sm90(kernel_lib):
    assert kernel_lib.library.is_file() and kernel_lib.cuda_archs == ["87", "90"]
    assert "-gencode" in kernel_lib.command and "arch=compute_87,code=sm_87" in kernel_lib.command
    assert "arch=compute_90,code=sm_90" in kernel_lib.command
    nm = shutil.which("nm")
    if nm:
        symbols = subprocess.run([nm, "-D", "--defined-only", str(kernel_lib.library)],
                                 capture_output=True, text=True).stdout  # fmt: skip
        exported = {line.split()[-1] for line in symbols.splitlines() if " T " in line}
        assert exported == {
            "edgeflow_correlation_abi_version",
            "edgeflow_correlation_forward",
            "edgeflow_correlation_last_cuda_error",
            "edgeflow_correlation_output_shape",
            "edgeflow_correlation_status_string",
        }


@pytest.mark.slow
def test_kernel_library_c_abi_without_gpu(kernel_lib):
    lib = plugins.load_plugin_library(kernel_lib.library)
    assert lib.edgeflow_correlation_abi_version() == 1
    c, h, w = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    status = lib.edgeflow_correlation_output_shape(48, 64, 20, 1, 1, 2, 20, ctypes.byref(c), ctypes.byref(h), ctypes.byref(w))
    assert status == 0 and (c.value, h.value, w.value) == (441, 48, 64)
    lib.edgeflow_correlation_status_string.restype = ctypes.c_char_p
    assert b"odd" in lib.edgeflow_correlation_status_string(1)
    # Validation happens before any CUDA call: safe with null pointers on any machine.
    args = [None, None, None, 0, 0, 32, 64, 64, 4, 1, 1, 1, 4, 1, 0, None]
    assert lib.edgeflow_correlation_forward(*args) == 6  # kBAD_SHAPE (batch 0)
    args[3], args[4] = 5, 1
    assert lib.edgeflow_correlation_forward(*args) == 7  # kBAD_DTYPE


# ---- TensorRT headers (fetched locally into third_party/, never committed) --------------------------------


def _header_dirs():
    return sorted(p for p in THIRD_PARTY.glob("tensorrt-*/include") if (p / "NvInfer.h").is_file())


@pytest.mark.parametrize("include_dir", _header_dirs() or [None], ids=lambda p: p.parent.name if p else "none")
def test_plugin_compiles_against_tensorrt_headers(include_dir):
    if include_dir is None:
        pytest.skip("no TensorRT headers in third_party/tensorrt-*/include (see docs/plugin.md to fetch them)")
    if shutil.which(os.environ.get("CXX", "g++")) is None:
        pytest.skip("no host C++ compiler")
    if not Path("/usr/local/cuda/include/cuda_runtime_api.h").is_file() and "CUDA_INCLUDE" not in os.environ:
        pytest.skip("no CUDA headers for the plugin's cuda_runtime_api.h include")
    proc = subprocess.run(["bash", str(HEADER_CHECK), str(include_dir)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK: correlation_plugin.cpp compiles against TensorRT" in proc.stdout


@pytest.mark.parametrize("include_dir", _header_dirs() or [None], ids=lambda p: p.parent.name if p else "none")
def test_plugin_logic_against_tensorrt_headers(include_dir, tmp_path):
    """Creator fields, serialization round trip, clone, formats, IExprBuilder output shapes, enqueue
    arguments: correlation_plugin.cpp linked with stubs for libnvinfer and the kernel (no GPU)."""
    if include_dir is None:
        pytest.skip("no TensorRT headers in third_party/tensorrt-*/include (see docs/plugin.md to fetch them)")
    cxx = shutil.which(os.environ.get("CXX", "g++"))
    cuda_inc = Path(os.environ.get("CUDA_INCLUDE", "/usr/local/cuda/include"))
    if cxx is None or not (cuda_inc / "cuda_runtime_api.h").is_file():
        pytest.skip("needs g++ and the CUDA headers")
    exe = tmp_path / "plugin_host_check"
    cmd = [cxx, "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", "-isystem", str(include_dir),
           "-isystem", str(cuda_inc), "-I", str(pbuild.CSRC), str(PLUGIN_CHECK),
           str(pbuild.CSRC / "correlation_plugin.cpp"), "-o", str(exe)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("PASS"), run.stdout + run.stderr


def test_header_version_parses_10x_and_11x_styles(tmp_path):
    (tmp_path / "NvInferVersion.h").write_text(
        "#define TRT_MAJOR_ENTERPRISE 11\n#define TRT_MINOR_ENTERPRISE 1\n#define TRT_PATCH_ENTERPRISE 0\n"
        "#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE //!< major\n#define NV_TENSORRT_MINOR TRT_MINOR_ENTERPRISE\n"
        "#define NV_TENSORRT_PATCH TRT_PATCH_ENTERPRISE\n"
    )
    assert pbuild.header_version(tmp_path) == "11.1.0"
    (tmp_path / "NvInferVersion.h").write_text(
        "#define NV_TENSORRT_MAJOR 10 //!< TensorRT major version.\n#define NV_TENSORRT_MINOR 3\n#define NV_TENSORRT_PATCH 0\n"
    )
    assert pbuild.header_version(tmp_path) == "10.3.0"
    for d in _header_dirs():
        assert pbuild.header_version(d).split(".")[0] in ("10", "11")


# ---- finding TensorRT / nvcc, the command line ------------------------------------------------------------


@pytest.fixture
def isolated_search(monkeypatch, tmp_path):
    """No system TensorRT: only what a test puts under tmp_path is found."""
    monkeypatch.delenv("TENSORRT_ROOT", raising=False)
    monkeypatch.setattr(pbuild, "_JETPACK", (tmp_path / "none-inc", tmp_path / "none-lib"))
    monkeypatch.setattr(pbuild, "_X86_64", (tmp_path / "none-inc", tmp_path / "none-lib"))
    monkeypatch.setattr(pbuild, "_python_tensorrt_lib_dirs", lambda: [])
    return tmp_path


def _fake_trt(root: Path, major=10, lib_name="libnvinfer.so.10"):
    (root / "include").mkdir(parents=True)
    (root / "include" / "NvInfer.h").write_text("// fake\n")
    (root / "include" / "NvInferVersion.h").write_text(
        f"#define NV_TENSORRT_MAJOR {major}\n#define NV_TENSORRT_MINOR 3\n#define NV_TENSORRT_PATCH 0\n"
    )
    (root / "lib").mkdir()
    for name in (lib_name, "libnvinfer_plugin.so.10", "libnvinfer_lean.so.10"):
        (root / "lib" / name).write_bytes(b"")


def test_find_tensorrt_in_root_and_env(isolated_search, monkeypatch):
    root = isolated_search / "TensorRT-10.3"
    _fake_trt(root)
    trt = pbuild.find_tensorrt(root)
    assert trt.include_dir == root / "include" and trt.library == root / "lib" / "libnvinfer.so.10"
    assert trt.version == "10.3.0" and trt.include_source == "--tensorrt-root"
    monkeypatch.setenv("TENSORRT_ROOT", str(root))
    assert pbuild.find_tensorrt().library_source == "$TENSORRT_ROOT"


def test_find_tensorrt_prefers_python_package_libs_when_root_has_only_headers(isolated_search, monkeypatch):
    headers = isolated_search / "headers"
    _fake_trt(headers)
    shutil.rmtree(headers / "lib")
    wheel = isolated_search / "site-packages" / "tensorrt_libs"
    wheel.mkdir(parents=True)
    (wheel / "libnvinfer.so.10").write_bytes(b"")
    monkeypatch.setattr(pbuild, "_python_tensorrt_lib_dirs", lambda: [wheel])
    trt = pbuild.find_tensorrt(headers)
    assert trt.library == wheel / "libnvinfer.so.10" and trt.library_source == "python tensorrt package"


def test_find_tensorrt_errors_are_one_actionable_line(isolated_search):
    root = isolated_search / "TensorRT"
    _fake_trt(root)
    shutil.rmtree(root / "lib")
    with pytest.raises(EdgeflowError, match="libnvinfer not found") as err:
        pbuild.find_tensorrt(root)
    assert "\n" not in str(err.value) and "--tensorrt-root" in str(err.value)
    with pytest.raises(EdgeflowError, match="is not a directory"):
        pbuild.find_tensorrt(isolated_search / "missing")
    mismatch = isolated_search / "mismatch"
    _fake_trt(mismatch, major=11)
    with pytest.raises(EdgeflowError, match="major version 10"):
        pbuild.find_tensorrt(mismatch)


def test_plugin_command_links_the_found_library(isolated_search):
    root = isolated_search / "TensorRT"
    _fake_trt(root)
    trt = pbuild.find_tensorrt(root)
    cmd = pbuild.plugin_library_command(Path("/usr/bin/nvcc"), ["87"], trt, Path("/tmp/x.so"))
    assert cmd[0] == "/usr/bin/nvcc" and "-shared" in cmd and str(trt.library) in cmd
    assert cmd[cmd.index("-isystem") + 1] == str(root / "include")
    assert f"-rpath,{root / 'lib'}" in cmd and "--no-undefined" in cmd
    assert [s for s in cmd if s.endswith((".cu", ".cpp"))] == [str(pbuild.CSRC / s) for s in pbuild.PLUGIN_SOURCES]


def test_normalize_archs():
    assert pbuild.normalize_archs(["8.7", "sm_90", "87", "compute_72"]) == ["72", "87", "90"]
    assert pbuild.normalize_archs(["87,90"]) == ["87", "90"]
    with pytest.raises(EdgeflowError, match="--cuda-arch"):
        pbuild.normalize_archs(["orin"])
    assert pbuild.gencode_flags(["87", "90"])[-1] == "arch=compute_90,code=compute_90"  # PTX for newer GPUs


def test_missing_nvcc_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    for var in ("CUDACXX", "CUDA_HOME", "CUDA_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(pbuild.Path, "is_file", lambda self: False)
    with pytest.raises(EdgeflowError, match="nvcc not found") as err:
        pbuild.find_nvcc()
    assert "\n" not in str(err.value)


def test_cli_build_plugin(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["build-plugin", "--help"])
    assert exit_info.value.code == 0
    assert "--kernel-only" in capsys.readouterr().out
    rc = cli_main(["build-plugin", "--kernel-only", "--nvcc", str(tmp_path / "nvcc"), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("edgeflow build-plugin: error: nvcc not found") and err.count("\n") == 1


# ---- loading ----------------------------------------------------------------------------------------------


def test_load_plugin_library_missing_is_actionable(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEFLOW_PLUGIN_PATH", str(tmp_path))
    monkeypatch.setattr(plugins, "CACHE_DIR", tmp_path / "cache")
    assert plugins.find_plugin_library("libdoes_not_exist.so") is None
    with pytest.raises(EdgeflowError, match="edgeflow build-plugin"):
        plugins.load_plugin_library(name="libdoes_not_exist.so")
    with pytest.raises(EdgeflowError, match="does not exist"):
        plugins.load_plugin_library(tmp_path / "nope.so")


def test_search_order_env_then_package_then_cache(monkeypatch, tmp_path):
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setattr(plugins, "CACHE_DIR", cache)
    (cache / plugins.KERNEL_LIBRARY).write_bytes(b"")
    monkeypatch.setenv("EDGEFLOW_PLUGIN_PATH", str(env_dir))
    paths = plugins.search_paths(plugins.KERNEL_LIBRARY)
    assert paths[0] == env_dir / plugins.KERNEL_LIBRARY and paths[-1] == cache / plugins.KERNEL_LIBRARY
    assert plugins.find_plugin_library(plugins.KERNEL_LIBRARY) == cache / plugins.KERNEL_LIBRARY
    (env_dir / plugins.KERNEL_LIBRARY).write_bytes(b"")
    assert plugins.find_plugin_library(plugins.KERNEL_LIBRARY) == env_dir / plugins.KERNEL_LIBRARY
    monkeypatch.setenv("EDGEFLOW_PLUGIN_PATH", str(env_dir / plugins.KERNEL_LIBRARY))  # a file entry works too
    assert plugins.find_plugin_library(plugins.KERNEL_LIBRARY) == env_dir / plugins.KERNEL_LIBRARY


# ---- GPU / TensorRT (skip without them) -----------------------------------------------------------------------


def _cuda_torch_or_skip():
    torch = pytest.importorskip("torch", reason="torch is needed to allocate GPU buffers")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU (torch.cuda.is_available() is False)")
    return torch


@pytest.fixture(scope="module")
def local_kernel_lib(tmp_path_factory):
    torch = _cuda_torch_or_skip()
    nvcc = _nvcc_or_skip()
    major, minor = torch.cuda.get_device_capability()
    result = pbuild.build_kernel_library(tmp_path_factory.mktemp("gpu"), [f"{major}{minor}"], nvcc)
    return plugins.load_plugin_library(result.library)


@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_cuda_kernel_matches_reference(local_kernel_lib, case, dtype):
    torch = _cuda_torch_or_skip()
    from edgeflow.plugins.kernel_lib import CorrelationKernel

    _, shape, md, k, s1, s2, pad, normalize, _ = case
    f1, f2 = _random_inputs(shape, seed=4)
    kernel = CorrelationKernel(local_kernel_lib)
    tdt = getattr(torch, dtype)
    t1, t2 = torch.from_numpy(f1).cuda().to(tdt), torch.from_numpy(f2).cuda().to(tdt)
    out = torch.empty((shape[0], *kernel.output_shape(shape[2], shape[3], md, k, s1, s2, pad)), dtype=tdt, device="cuda")
    stream = torch.cuda.current_stream()
    kernel.forward(t1.data_ptr(), t2.data_ptr(), out.data_ptr(), dtype, shape, md, k, s1, s2, pad, normalize,
                   stream=stream.cuda_stream)  # fmt: skip
    stream.synchronize()
    # Reference on the inputs as the kernel saw them (fp16-rounded for fp16): measures the kernel only.
    ref = correlation_reference(t1.double().cpu().numpy(), t2.double().cpu().numpy(), md, k, s1, s2, pad, normalize)
    err = float(np.abs(out.double().cpu().numpy() - ref).max()) / max(1e-12, float(np.abs(ref).max()))
    assert err <= (1e-6 if dtype == "float32" else 1e-3), err


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_tensorrt_plugin_builds_engine_and_matches_reference(tmp_path):
    trt = pytest.importorskip("tensorrt", reason="the tensorrt Python package is not installed")
    torch = _cuda_torch_or_skip()
    nvcc = _nvcc_or_skip()
    major, minor = torch.cuda.get_device_capability()
    result = pbuild.build_plugin_library(tmp_path, [f"{major}{minor}"], nvcc=nvcc)
    lib = plugins.load_plugin_library(result.library)
    assert plugins.plugin_tensorrt_version(lib).split(".")[:2] == trt.__version__.split(".")[:2]

    registry = trt.get_plugin_registry()
    creator = registry.get_creator(plugins.PLUGIN_NAME, plugins.PLUGIN_VERSION, plugins.PLUGIN_NAMESPACE)
    assert creator is not None, "Correlation creator not registered under namespace 'edgeflow'"
    attrs = dict(max_displacement=4, kernel_size=1, stride1=1, stride2=1, pad_size=4, normalize=1)
    fields = trt.PluginFieldCollection(
        [trt.PluginField(n, np.array([v], np.int32), trt.PluginFieldType.INT32) for n, v in attrs.items()]
    )
    plugin = creator.create_plugin("corr", fields, trt.TensorRTPhase.BUILD)
    assert plugin is not None

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    shape = (1, 16, 24, 40)
    x1 = network.add_input("f1", trt.float32, shape)
    x2 = network.add_input("f2", trt.float32, shape)
    layer = network.add_plugin_v3([x1, x2], [], plugin)
    network.mark_output(layer.get_output(0))
    engine_bytes = builder.build_serialized_network(network, builder.create_builder_config())
    assert engine_bytes is not None
    engine = trt.Runtime(logger).deserialize_cuda_engine(engine_bytes)
    context = engine.create_execution_context()
    f1, f2 = _random_inputs(shape, seed=5)
    t1, t2 = torch.from_numpy(f1).cuda(), torch.from_numpy(f2).cuda()
    out = torch.empty((1, 81, 24, 40), device="cuda")
    for name, t in (("f1", t1), ("f2", t2), (layer.get_output(0).name, out)):
        context.set_tensor_address(name, t.data_ptr())
    stream = torch.cuda.current_stream()
    assert context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    # The engine was serialized and deserialized: the plugin was re-created from getFieldsToSerialize().
    _assert_close(out.cpu().numpy(), correlation_reference(f1, f2, 4))
