"""The TensorRT stand-in stays honest: every TensorRT name the project and tests/fake_tensorrt.py use
exists in the real Python bindings.

The real bindings wheels (``tensorrt-cu12-bindings==10.3.0``, JetPack 6's TensorRT, and
``tensorrt-cu13-bindings==11.4.0.106``) are fetched from PyPI with ``pip download`` (about 1 MB
each) into the ignored ``.ef_cache/tensorrt-bindings/`` and never imported or loaded: pybind11
registers every class, method, property and enum value under a C string literal, so the names are
read from the ``tensorrt.so`` string table (the linker may store a literal as the tail of a longer
one, hence the suffix match). No network: the test skips.

Which names: attribute chains on the ``tensorrt`` module in every TensorRT module of the project
(``tensorrt*.py`` in converters/, edgeflow/ and edgeflow/backends/, and edgeflow/plugins:
``trt.BuilderFlag.FP16``, ``self.trt.TensorIOMode``), plus every public name the fake defines (classes, methods, properties,
enum members), since the code under test reaches TensorRT objects only through what the fake
mirrors. Names read with ``getattr(..., default)`` / ``hasattr`` are version-gated by the code and
need to exist in one version only; the fake's precision flags (``precision_flags=True``, the 10.x
model) must exist in 10.3.
"""

from __future__ import annotations

import ast
import os
import pathlib
import re
import subprocess
import sys
import types
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CACHE = ROOT / ".ef_cache" / "tensorrt-bindings"
WHEELS = {
    "10.3": ("tensorrt-cu12-bindings==10.3.0", "manylinux_2_17_x86_64"),
    "11.4": ("tensorrt-cu13-bindings==11.4.0.106", "manylinux_2_28_x86_64"),
}
#: Every module that drives TensorRT, found by name (moving code between them keeps it checked).
#: edgeflow/plugins/build.py is left out: its `trt` is a TensorRT *install* (headers, libraries).
PROJECT_FILES = sorted(
    str(p.relative_to(ROOT))
    for pattern in ("converters/tensorrt*.py", "edgeflow/tensorrt*.py", "edgeflow/backends/tensorrt*.py",
                    "edgeflow/plugins/*.py")
    for p in ROOT.glob(pattern)
    if p.name != "build.py"
)
#: Variables that hold TensorRT objects in the project's code (for getattr/hasattr gates).
TRT_OBJECTS = {"builder", "config", "network", "engine", "context", "runtime", "parser", "layer", "tensor", "profile",
               "registry", "logger"}
#: Names the fake or the code use that are not in the bindings' shared library, and why.
NOT_IN_BINDINGS = {
    "nptype": "defined in Python by the tensorrt package's __init__.py (not the compiled bindings)",
    "cuda": "the fake's stand-in for CUDA memory (FakeCuda), not a TensorRT name",
    "registered": "fake bookkeeping: plugin creators 'registered' by loaded libraries",
    "builds": "fake bookkeeping: one record per build",
}


def _wheel(version: str) -> pathlib.Path:
    spec, platform = WHEELS[version]
    name = spec.split("==")[0].replace("-", "_")
    found = sorted(CACHE.glob(f"{name}-{spec.split('==')[1]}-*.whl"))
    if found:
        return found[0]
    CACHE.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
           "--platform", platform, "--dest", str(CACHE), "--timeout", "20", "--retries", "1", spec]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip(f"cannot run pip download {spec} (offline?)")
    found = sorted(CACHE.glob(f"{name}-{spec.split('==')[1]}-*.whl"))
    if proc.returncode != 0 or not found:
        pytest.skip(f"cannot download {spec} from the package index (offline?): {proc.stderr.strip()[-200:]}")
    return found[0]


class Bindings:
    """The identifier-like C strings of a bindings wheel's tensorrt.so, with tail-merge lookup."""

    def __init__(self, wheel: pathlib.Path):
        with zipfile.ZipFile(wheel) as archive:
            lib = next(n for n in archive.namelist() if re.fullmatch(r"tensorrt[^/]*/tensorrt[^/]*\.so", n))
            data = archive.read(lib)
        strings = {s.decode("ascii", "ignore") for s in data.split(b"\0") if 0 < len(s) < 200}
        self.suffixes = set()
        for text in strings:
            for match in re.finditer(r"[A-Za-z_][A-Za-z0-9_]*$", text):
                word = match.group(0)
                self.suffixes.update(word[i:] for i in range(len(word)))

    def has(self, name: str) -> bool:
        return name in self.suffixes


@pytest.fixture(scope="module")
def bindings():
    return {version: Bindings(_wheel(version)) for version in WHEELS}


def _chain(node) -> list[str] | None:
    """['BuilderFlag', 'FP16'] for trt.BuilderFlag.FP16 or self.trt.BuilderFlag.FP16."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in ("trt", "tensorrt") and names:
        return names[::-1]
    if isinstance(node, ast.Name) and node.id == "self" and names and names[-1] == "trt":
        return names[::-1][1:] or None
    return None


def project_names() -> tuple[dict[str, str], set[str]]:
    """(name -> where, gated names) used by the project's TensorRT code."""
    used, gated = {}, set()
    for rel in PROJECT_FILES:
        tree = ast.parse((ROOT / rel).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                chain = _chain(node)
                if chain:
                    for name in chain:
                        if not name.startswith("__"):
                            used.setdefault(name, f"{rel}:{node.lineno}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
                    and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
                    and (_chain(node.args[0]) or (isinstance(node.args[0], ast.Name)
                                                  and node.args[0].id in ("trt", *TRT_OBJECTS)))):
                if node.func.id == "hasattr" or len(node.args) == 3:
                    gated.add(node.args[1].value)
                    used.setdefault(node.args[1].value, f"{rel}:{node.lineno}")
    return used, gated


def fake_names() -> tuple[dict[str, str], set[str]]:
    """(name -> where, names only in the 10.x model) the fake module defines."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from fake_tensorrt import make_fake_tensorrt
    finally:
        sys.path.remove(str(ROOT / "tests"))

    def collect(module) -> dict[str, str]:
        names = {}
        for key, value in vars(module).items():
            if key.startswith("_"):
                continue
            names[key] = "fake_tensorrt"
            if isinstance(value, type):
                for base in value.__mro__[:-1]:
                    for member in vars(base):
                        if not member.startswith("_"):
                            names[member] = f"fake_tensorrt.{key}"
            elif isinstance(value, types.SimpleNamespace):  # enums
                for member in vars(value):
                    if not member.startswith("_"):
                        names[member] = f"fake_tensorrt.{key}"
        return names

    full = collect(make_fake_tensorrt("10.3.0", precision_flags=True))
    eleven = collect(make_fake_tensorrt("11.4.0", precision_flags=False))
    # Classes defined inside make_fake_tensorrt but only reachable through other objects.
    source = (ROOT / "tests" / "fake_tensorrt.py").read_text()
    tree = ast.parse(source)
    maker = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "make_fake_tensorrt")
    for node in ast.walk(maker):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not item.name.startswith("_"):
                    full.setdefault(item.name, f"fake_tensorrt.{node.name}")
                    eleven.setdefault(item.name, f"fake_tensorrt.{node.name}")
    return full, set(full) - set(eleven)


def test_project_and_fake_names_exist_in_the_real_bindings(bindings):
    assert "edgeflow/backends/tensorrt.py" in PROJECT_FILES and len(PROJECT_FILES) >= 3, PROJECT_FILES
    used, gated = project_names()
    fake, ten_only = fake_names()
    assert {"BuilderFlag", "execute_async_v3", "set_tensor_address", "parse_from_file"} <= set(used) | set(fake), \
        "the name collection found too little; the test would prove nothing"
    problems = []
    for name, where in sorted({**fake, **used}.items()):
        if name in NOT_IN_BINDINGS:
            continue
        present = {version for version, lib in bindings.items() if lib.has(name)}
        if name in gated:
            if not present:
                problems.append(f"{name} ({where}): in neither TensorRT version")
        elif name in ten_only:
            if "10.3" not in present:
                problems.append(f"{name} ({where}): the fake's 10.x model has it, TensorRT 10.3 does not")
        elif present != set(bindings):
            missing = sorted(set(bindings) - present)
            problems.append(f"{name} ({where}): missing in TensorRT {', '.join(missing)} (gate it by version)")
    assert not problems, "\n".join(problems)


def test_a_made_up_name_is_caught(bindings):
    """The check can fail: names TensorRT never had are not found."""
    for lib in bindings.values():
        assert lib.has("execute_async_v3") and lib.has("BuilderFlag")
        assert not lib.has("execute_async_v9") and not lib.has("BuilderFlagz")
