"""The house's layers hold (issue 16): checked from the import graph, so `make test` enforces them.

* import-linter's contracts in pyproject.toml ``[tool.importlinter]``: the runtime never imports the
  toolchain or torch; edgeflow.cli above edgeflow.commands above converters; no cycles between
  sibling packages;
* no import cycle between any two modules of edgeflow or converters (grimp, which also sees the
  imports written inside functions: a lazy import that runs back up is still a cycle);
* nothing in the runtime imports the CLI, a command, or the ``edgeflow`` package itself back up.

The graph is built from the source text, so these tests import nothing they check.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
ABOVE_RUNTIME = ("edgeflow.cli", "edgeflow.commands", "edgeflow.__main__")  # `python -m edgeflow` is the CLI


@pytest.fixture(scope="module")
def graph():
    sys.path.insert(0, str(ROOT))
    try:
        return grimp.build_graph("edgeflow", "converters", cache_dir=None)
    finally:
        sys.path.remove(str(ROOT))


def is_runtime(module: str) -> bool:
    return module.split(".")[0] == "edgeflow" and not any(
        module == top or module.startswith(top + ".") for top in ABOVE_RUNTIME)


def test_import_linter_contracts_hold():
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = iter(range(10**9))
    for root in sorted(graph.modules):
        if root in index:
            continue
        index[root] = low[root] = next(counter)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = next(counter)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.find_modules_directly_imported_by(succ)))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle():
    g = grimp.ImportGraph()
    for name in ("p", "p.a", "p.b", "p.c"):
        g.add_module(name)
    g.add_import(importer="p.a", imported="p.b")
    g.add_import(importer="p.b", imported="p.a")
    g.add_import(importer="p.c", imported="p.a")
    assert cycles(g) == [["p.a", "p.b"]]


def test_no_module_import_cycles(graph):
    found = cycles(graph)
    detail = []
    for component in found:
        members = set(component)
        edges = [f"{m} -> {t} (l.{d['line_number']})" for m in component
                 for t in sorted(graph.find_modules_directly_imported_by(m)) if t in members
                 for d in graph.get_import_details(importer=m, imported=t)[:1]]
        detail.append("; ".join(edges))
    assert not found, ("import cycles (move what both sides need into a lower module): " + " | ".join(detail))


def test_runtime_imports_nothing_above_it(graph):
    bad = []
    for module in sorted(m for m in graph.modules if is_runtime(m) and m != "edgeflow"):
        for target in sorted(graph.find_modules_directly_imported_by(module)):
            if target == "edgeflow" or not is_runtime(target) and target.split(".")[0] == "edgeflow":
                line = graph.get_import_details(importer=module, imported=target)[0]["line_number"]
                bad.append(f"{module} -> {target} (l.{line})")
    assert not bad, "runtime modules import back up (the package or the CLI layer): " + "; ".join(bad)


def test_architecture_doc_names_only_paths_that_exist():
    """docs/architecture.md is drawn from the tree: every edgeflow/ or converters/ path it names exists."""
    import re

    doc = (ROOT / "docs" / "architecture.md").read_text()
    named = set()
    for path in re.findall(r"`((?:edgeflow|converters)/[^`\s]*)`", doc):
        head, brace, tail = path.partition("{")
        if brace:  # edgeflow/backends/{onnxruntime,tensorrt}.py
            inner, _, rest = tail.partition("}")
            named.update(head + part + rest for part in inner.split(","))
        else:
            named.add(path)
    named = {p for p in named if "<" not in p and "*" not in p}  # templates and globs ("<name>.py")
    assert len(named) > 40
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"docs/architecture.md names paths that are not in the tree: {missing}"
