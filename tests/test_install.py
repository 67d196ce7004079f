"""Install lines and distribution identity (issue 19).

PyPI's ``edgeflow`` is an unrelated project with an ``edgeflow`` import package of its own, so
every ``pip install`` a user can read (README, docs, error hints) must name something that installs
*this* project today: a path (``.``, a built ``edgeflow_sdk-*.whl``), a ``name @ git+...`` direct
reference, or a third-party distribution the project depends on. These tests parse the real files.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None

# Third-party distributions the docs may name besides our dependency lists: each exists on PyPI
# (or, tensorrt, on NVIDIA's index / JetPack) and is what the page says it is.
DOCUMENTED_THIRD_PARTY = {"torch", "onnx", "cuda-python", "pycuda", "tensorrt", "av", "opencv-python-headless",
                          "scikit-image", "matplotlib", "build", "aiohttp", "prometheus-client", "onnxconverter-common"}
# pip options that take a value (the value is not a requirement)
_OPTIONS_WITH_VALUE = {"-c", "--constraint", "-r", "--requirement", "-i", "--index-url", "--extra-index-url", "-f",
                       "--find-links", "--platform", "--python-version", "-d", "--dest", "-w", "--wheel-dir", "-t",
                       "--target", "--only-binary", "--no-binary", "--abi", "--implementation"}


def _pyproject() -> dict:
    if tomllib is None:
        pytest.skip("tomllib needs Python 3.11")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def pip_install_commands(text: str) -> list[list[str]]:
    """Every ``pip install ...`` in a Markdown text (code blocks and inline code), as argv after 'install'."""
    out = []
    for line in text.splitlines():
        for m in re.finditer(r"pip install ([^`#\n]*)", line):
            args = m.group(1).strip()
            if args.endswith(")") and args.count("(") < args.count(")"):
                args = args[:-1]  # "(`pip install pycuda` compiles ...)"
            try:
                out.append(shlex.split(args))
            except ValueError as err:
                raise AssertionError(f"unparseable install line {line!r}: {err}") from None
    return out


def requirements_of(argv: list[str]) -> tuple[list[str], list[str]]:
    """(requirement tokens, constraint/requirement files) of one pip install argv."""
    reqs, files, skip = [], [], False
    for i, tok in enumerate(argv):
        if skip:
            skip = False
            continue
        if tok in _OPTIONS_WITH_VALUE:
            skip = True
            if tok in ("-c", "--constraint", "-r", "--requirement") and i + 1 < len(argv):
                files.append(argv[i + 1])
            continue
        if tok.startswith("-"):
            continue
        reqs.append(tok)
    return reqs, files


def check_requirement(token: str, project: dict) -> str | None:
    """None if ``token`` installs something we publish or depend on; else why not."""
    name = project["name"]
    version = project["version"]
    extras_defined = set(project.get("optional-dependencies", {}))
    path, _, extras = token.partition("[")
    extras = {e.strip() for e in extras.rstrip("]").split(",") if e.strip()}
    if path.startswith((".", "/", "~")) or path.endswith(".whl"):
        if path.endswith(".whl"):
            wheel = Path(path).name
            expected = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
            if wheel != expected:
                return f"wheel {wheel} is not the one `pip wheel .` builds ({expected})"
        unknown = extras - extras_defined
        return f"unknown extras {sorted(unknown)}" if unknown else None
    try:
        req = Requirement(token)
    except InvalidRequirement as err:
        return f"not a requirement: {err}"
    canon = canonicalize_name(req.name)
    if req.url:  # name @ git+...: a direct reference to this repository
        return None if canon == canonicalize_name(name) else f"direct reference names {req.name}, not {name}"
    if canon.startswith("edgeflow"):
        return (f"{req.name} is not on PyPI as this project ({name} is installed from a wheel, a path or git; "
                "PyPI's `edgeflow` is an unrelated project)")
    declared = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    for group in project.get("optional-dependencies", {}).values():
        declared |= {canonicalize_name(Requirement(r).name) for r in group}
    if canon not in declared | {canonicalize_name(n) for n in DOCUMENTED_THIRD_PARTY}:
        return f"{req.name} is neither a dependency nor a documented third-party distribution"
    return None


def test_parser_catches_the_old_install_lines():
    """The check must be able to fail: the lines the docs had before the rename are refused."""
    project = _pyproject()["project"]
    for bad in ('pip install edgeflow "edgeflow[video]"', "pip install edgeflow onnx", "pip install 'edgeflow[plot]'",
                "pip install ./dist/edgeflow-0.1.0-py3-none-any.whl", "pip install \"./x.whl[nosuchextra]\""):
        reqs, _ = requirements_of(pip_install_commands(bad)[0])
        assert any(check_requirement(r, project) for r in reqs), bad


def test_docs_name_only_distributions_we_publish():
    project = _pyproject()["project"]
    problems, seen = [], 0
    for doc in _doc_files():
        for argv in pip_install_commands(doc.read_text()):
            reqs, files = requirements_of(argv)
            seen += 1
            for r in reqs:
                why = check_requirement(r, project)
                if why:
                    problems.append(f"{doc.relative_to(ROOT)}: pip install {' '.join(argv)}: {why}")
            for f in files:
                if not (ROOT / "constraints" / Path(f).name).is_file():
                    problems.append(f"{doc.relative_to(ROOT)}: constraints file {f} is not in constraints/")
    assert seen >= 4, "the docs' install lines were not found (parser broken?)"
    assert not problems, "\n".join(problems)


def test_code_hints_name_only_distributions_we_publish():
    """Error messages and help texts: `pip install 'edgeflow[x]'` would fetch the unrelated project."""
    bad = []
    for py in sorted([*(ROOT / "edgeflow").rglob("*.py"), *(ROOT / "converters").rglob("*.py")]):
        for n, line in enumerate(py.read_text(errors="replace").splitlines(), 1):
            if re.search(r"pip install [\"']?edgeflow(?![-_]sdk)\b|install edgeflow\[|needs edgeflow\[", line):
                bad.append(f"{py.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bad, "\n".join(bad)


def test_device_constraints_keep_numpy_1_and_refuse_pip_opencv():
    from packaging.specifiers import SpecifierSet

    for device in ("pi", "jetson"):
        lines = [ln.split("#")[0].strip() for ln in (ROOT / "constraints" / f"{device}.txt").read_text().splitlines()]
        reqs = {canonicalize_name(r.name): r.specifier for r in map(Requirement, filter(None, lines))}
        numpy = reqs["numpy"]
        assert "1.24.2" in numpy and "1.26.4" in numpy and "2.0.0" not in numpy, device
        for cv in ("opencv-python", "opencv-python-headless", "opencv-contrib-python"):
            assert not list(reqs[cv].filter(["4.6.0", "4.10.0.84", "5.1.0"])), (device, cv)
        extra = _pyproject()["project"]["optional-dependencies"][device]
        assert not any(canonicalize_name(Requirement(r).name).startswith("opencv") for r in extra)
        assert any(Requirement(r).name == "numpy" and "2.0" not in SpecifierSet(str(Requirement(r).specifier))
                   for r in extra)


def test_foreign_edgeflow_distribution_is_named_at_import(tmp_path):
    """A real dist-info of PyPI's other `edgeflow` beside our package -> one warning line on import."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "edgeflow").symlink_to(ROOT / "edgeflow", target_is_directory=True)
    info = site / "edgeflow-0.4.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: edgeflow\nVersion: 0.4.1\n"
                                   "Summary: Deploy ONNX models to the browser with WebAssembly\n")
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", "import edgeflow; print(edgeflow.__file__)"],
                       capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(site / "edgeflow" / "__init__.py")  # ours, through the symlink
    warnings = [ln for ln in r.stderr.splitlines() if "edgeflow 0.4.1" in ln]
    assert len(warnings) == 1 and "pip uninstall edgeflow" in warnings[0], r.stderr
    # our own pre-rename distribution (same summary) is not foreign
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: edgeflow\nVersion: 0.1.0\nSummary: Take optical-flow "
                                   "(correlation / cost-volume) and vision models from PyTorch to edge devices\n")
    r = subprocess.run([sys.executable, "-c", "import edgeflow"], capture_output=True, text=True, env=env, timeout=60,
                       cwd=tmp_path)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr


def test_cli_refuses_a_foreign_edgeflow_package(tmp_path):
    """PyPI's `edgeflow` installed over ours replaces edgeflow/__init__.py; the command says so in one line."""
    pkg = tmp_path / "edgeflow"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(f"""\
        __version__ = "0.4.1"  # stands for the other project's __init__; our modules stay reachable
        __path__.append({str(ROOT / 'edgeflow')!r})
        """))
    r = subprocess.run([sys.executable, "-c", "import sys; from edgeflow.cli import main; sys.exit(main(['info']))"],
                       capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
                       timeout=60, cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "not edgeflow-sdk's" in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_aarch64_check_finds_the_pi_pages_lines():
    """`make test-aarch64` runs docs/deploy_pi.md's lines as written: they must be where it looks,
    and name the wheel `pip wheel .` makes, the pi extra and the pi constraints file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("aarch64_check", ROOT / "scripts" / "aarch64" / "check.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    convert = [ln for b in check.doc_blocks("1. On the workstation: convert") for ln in b]
    assert any("--int8" in ln and "--int8-scheme s8s8" in ln and "--out pwc-lite-320-int8" in ln for ln in convert)
    assert any("--out pwc-lite-320 " in ln and "--int8" not in ln for ln in convert)
    wheel_block, install = check.doc_blocks("2. On the Pi: install the runtime")[:2]
    assert any("pip wheel --no-deps . -w dist" in ln for ln in wheel_block)
    project = _pyproject()["project"]
    wheel = f"{project['name'].replace('-', '_')}-{project['version']}-py3-none-any.whl"
    assert any(ln.startswith("scp ") and f"dist/{wheel}" in ln and "constraints/pi.txt" in ln for ln in wheel_block)
    text = "\n".join(install)
    assert "--system-site-packages" in text and f'"./{wheel}[pi]" -c pi.txt' in text
    assert [ln for ln in install if "Raspberry Pi OS only" in ln] == [ln for ln in install if "picamera2" in ln]
