"""Committed weights and checkpoints hold no class of ours by name, so renaming a zoo class
(``converters.zoo.base.FlowModel`` became ``FlowNetwork``) never breaks loading them.

Read from git (the committed bytes, not a file a running training may be rewriting): every
``.pt`` in the repository is a zip whose pickles name only torch and collections globals, and
each loads through ``converters.load.load_model`` into a ``FlowNetwork``.
"""

from __future__ import annotations

import io
import pickletools
import subprocess
import zipfile
from pathlib import Path

import pytest

from converters.load import load_model
from converters.zoo import FlowNetwork

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = ("torch ", "torch._utils ", "collections ")


def _committed(suffix: str) -> list[str]:
    """Committed files (at collection time: outside a git checkout, or without git, there are none
    and the parametrized tests below skip)."""
    try:
        out = subprocess.run(["git", "ls-files", f"*{suffix}"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return []
    return sorted(out.stdout.split()) if out.returncode == 0 else []


def _blob(path: str) -> bytes:
    return subprocess.run(["git", "show", f"HEAD:{path}"], cwd=ROOT, capture_output=True, check=True).stdout


def pickled_globals(data: bytes) -> set[str]:
    """``module name`` of every GLOBAL a torch.save zip's pickles name (protocol 2, torch's default)."""
    names = set()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for entry in archive.namelist():
            if entry.endswith(".pkl"):
                for op, arg, _ in pickletools.genops(archive.read(entry)):
                    if op.name in ("GLOBAL", "INST"):
                        names.add(str(arg))
                    elif op.name == "STACK_GLOBAL":
                        names.add("STACK_GLOBAL")  # protocol 4: names on the stack; not what torch.save writes
    return names


def test_the_scanner_sees_a_pickled_class(tmp_path):
    import torch

    path = tmp_path / "m.pt"
    torch.save({"model": FlowNetwork}, path)  # the class itself, pickled by name
    assert any(g.startswith("converters.zoo.base ") for g in pickled_globals(path.read_bytes()))


@pytest.mark.parametrize("path", _committed(".pt"))
def test_committed_checkpoints_pickle_no_class_of_ours(path):
    foreign = sorted(g for g in pickled_globals(_blob(path)) if not g.startswith(ALLOWED))
    assert not foreign, f"{path} pickles {foreign} by name: renaming them would break loading it"


@pytest.mark.parametrize("path", [p for p in _committed(".pt") if p.endswith("model.pt") or "/weights/" in p])
def test_committed_weights_load_into_a_flow_network(path, tmp_path):
    local = tmp_path / Path(path).name
    local.write_bytes(_blob(path))
    loaded = load_model(local)
    assert isinstance(loaded.module, FlowNetwork)
