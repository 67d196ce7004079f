"""Hostile model files: no code from a model file runs unless the user passed --trust-pickle.

Each attack is a real ``torch.export.save`` archive of a small PWC model, edited the way an
attacker would: a weight entry marked ``use_pickle``, a legacy pickled weights file, an opaque
constant, sample inputs that fail the restricted unpickler (torch then retries with full
unpickling), a symbolic shape string that ``sympy.sympify`` evaluates, compiled AOTInductor code.
The payload creates a marker file; the test asserts it is absent after the refusal, through the
Python API, under a ``.pt`` name, and through ``edgeflow convert`` and ``edgeflow eval``, and that
the same file *does* run its payload when trusted (so the payload is real and the test can fail).
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import subprocess
import sys
import zipfile

import pytest
import torch

from converters.load import inspect_pt2, load_model, metadata_json
from converters.zoo import PWCConfig, build_model
from edgeflow.errors import EdgeflowError

torch.set_num_threads(1)
ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = PWCConfig(
    pyramid_channels=(4, 6, 8), pyramid_convs=1, decoder_channels=(8,), dense=False, context_channels=(8,),
    context_dilations=(2,), max_displacement=2, activation="relu", output_level=2, feature_upsampling="bilinear",
)


class _Touch:
    """Unpickling this touches a file: a stand-in for arbitrary code (only stdlib names in the pickle)."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def payload(marker) -> bytes:
    return pickle.dumps(_Touch(marker), protocol=2)


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """(static .pt2, dynamic-shape .pt2, reference model, input pair): built once."""
    torch.manual_seed(0)
    model = build_model("pwc", TINY).eval()
    pair = (torch.rand(1, 3, 32, 32) * 255, torch.rand(1, 3, 32, 32) * 255)
    folder = tmp_path_factory.mktemp("pt2")
    static = folder / "static.pt2"
    torch.export.save(torch.export.export(model, pair), static, extra_files={"edgeflow.json": metadata_json(model)})
    h, w = torch.export.Dim("h", min=2, max=64), torch.export.Dim("w", min=2, max=64)
    dims = {2: 8 * h, 3: 8 * w}
    dynamic = folder / "dynamic.pt2"
    torch.export.save(torch.export.export(model, pair, dynamic_shapes=(dims, dims)), dynamic)
    return static, dynamic, model, pair


def rewrite(src: pathlib.Path, dst: pathlib.Path, edit) -> pathlib.Path:
    """Copy the archive entry by entry; ``edit(rel_name, bytes) -> bytes | None`` (None drops it),
    ``edit.add`` (optional dict rel_name -> bytes) appends entries."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        root = zin.namelist()[0].split("/", 1)[0]
        for info in zin.infolist():
            rel = info.filename.split("/", 1)[1]
            data = edit(rel, zin.read(info))
            if data is not None:
                zout.writestr(info.filename, data)
        for rel, data in getattr(edit, "add", {}).items():
            zout.writestr(f"{root}/{rel}", data)
    return dst


def _json_edit(name, change):
    def edit(rel, data):
        if rel == name:
            obj = json.loads(data)
            change(obj)
            return json.dumps(obj).encode()
        return data
    return edit


def attack_use_pickle(src, dst, marker):
    """Weight 0 marked use_pickle: torch.export.load runs torch.load(weights_only=False) on it."""
    state = {}

    def change(config):
        fqn = next(iter(config["config"]))
        config["config"][fqn]["use_pickle"] = True
        state["file"] = "data/weights/" + config["config"][fqn]["path_name"]

    with zipfile.ZipFile(src) as z:
        root = z.namelist()[0].split("/", 1)[0]
        config = json.loads(z.read(f"{root}/data/weights/model_weights_config.json"))
    change(config)

    def edit(rel, data):
        if rel == "data/weights/model_weights_config.json":
            return json.dumps(config).encode()
        if rel == state["file"]:
            return payload(marker)
        return data
    return rewrite(src, dst, edit)


def attack_opaque_constant(src, dst, marker):
    """An opaque constant: torch.export.load calls pickle.loads on it."""
    def change(config):
        config["config"]["evil"] = {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}
    edit = _json_edit("data/constants/model_constants_config.json", change)
    edit.add = {"data/constants/opaque_obj_0": payload(marker)}
    return rewrite(src, dst, edit)


def attack_sample_inputs(src, dst, marker):
    """Sample inputs that fail the weights_only unpickler: torch retries with weights_only=False."""
    return rewrite(src, dst, lambda rel, data: payload(marker) if rel == "data/sample_inputs/model.pt" else data)


def attack_legacy_weights(src, dst, marker):
    """The legacy layout: data/weights/<model>.pt, a pickle torch reads back with full unpickling."""
    def edit(rel, data):
        return None if rel == "data/weights/model_weights_config.json" else data
    edit.add = {"data/weights/model.pt": payload(marker)}
    return rewrite(src, dst, edit)


def attack_sympy(src, dst, marker):
    """A symbolic shape that sympy.sympify evaluates as Python (dynamic-shape programs only)."""
    code = f"__import__('pathlib').Path({str(marker)!r}).touch() or "

    def edit(rel, data):
        if rel.startswith("models/"):
            text = data.decode()
            needle = '"expr_str": "'
            assert needle in text
            return text.replace(needle, needle + code.replace('"', '\\"'), 1).encode()
        return data
    return rewrite(src, dst, edit)


ATTACKS = {
    "use_pickle": (attack_use_pickle, "pickled entry"),
    "opaque_constant": (attack_opaque_constant, "may unpickle"),
    "sample_inputs": (attack_sample_inputs, "sample inputs"),
    "legacy_weights": (attack_legacy_weights, "may unpickle"),
    "sympy": (attack_sympy, "symbolic shape"),
}


def build_attack(which, programs, folder, suffix=".pt2"):
    static, dynamic, _, _ = programs
    marker = folder / f"pwned-{which}"
    make, _ = ATTACKS[which]
    path = make(dynamic if which == "sympy" else static, folder / f"evil-{which}{suffix}", marker)
    return path, marker


@pytest.mark.parametrize("which", sorted(ATTACKS))
def test_attack_refused_without_running(which, programs, tmp_path):
    path, marker = build_attack(which, programs, tmp_path)
    with pytest.raises(EdgeflowError) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message and "refusing to load" in message and "--trust-pickle" in message
    assert ATTACKS[which][1] in message
    assert not marker.exists(), "the payload ran although the file was refused"
    # The same file, trusted: torch loads it and the payload runs (proof the attack is real).
    try:
        load_model(path, trust_pickle=True)
    except EdgeflowError:
        pass
    assert marker.exists(), f"{which}: the payload did not run when trusted; the attack file is not a real attack"


@pytest.mark.parametrize("which", ["use_pickle", "sympy"])
def test_attack_refused_under_pt_name(which, programs, tmp_path):
    path, marker = build_attack(which, programs, tmp_path, suffix=".pt")
    with pytest.raises(EdgeflowError, match="refusing to load"):
        load_model(path)
    assert not marker.exists()


def test_aotinductor_code_refused(programs, tmp_path):
    static = programs[0]
    edit = lambda rel, data: data  # noqa: E731
    edit.add = {"data/aotinductor/model/model.so": b"\x7fELF" + b"\0" * 60}
    path = rewrite(static, tmp_path / "aoti.pt2", edit)
    with pytest.raises(EdgeflowError, match="compiled native code"):
        load_model(path)


def run_cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "edgeflow", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("command", ["convert", "eval"])
def test_attack_refused_through_cli(command, programs, tmp_path):
    path, marker = build_attack("use_pickle", programs, tmp_path)
    if command == "convert":
        out = tmp_path / "out"
        proc = run_cli("convert", str(path), "--out", str(out), "--quiet", cwd=tmp_path)
        assert not out.exists()
    else:
        proc = run_cli("eval", str(path), "--data", "builtin", "--max-pairs", "1", cwd=tmp_path)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "refusing to load" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists()


def test_plain_programs_load_and_run(programs):
    """The inspection passes what torch.export.save writes, static and dynamic, and eval() is a no-op."""
    static, dynamic, model, pair = programs
    for path in (static, dynamic):
        assert inspect_pt2(path.read_bytes()) == []
        loaded = load_model(path)
        assert loaded.kind == "export"
        module = loaded.module.eval()  # torch.export's own module raises NotImplementedError here
        with torch.no_grad():
            torch.testing.assert_close(module(*pair), model(*pair), rtol=0, atol=1e-5)
        with pytest.raises(EdgeflowError, match="cannot be trained"):
            loaded.module.train()


def test_export_program_converts(programs, tmp_path):
    """`edgeflow convert program.pt2` gets past loading (used to die with 'Calling eval() is not supported').
    The dynamic-shape program: convert checks parity at more than one frame size."""
    dynamic = programs[1]
    out = tmp_path / "art"
    proc = run_cli("convert", str(dynamic), "--out", str(out), "--quiet", "--height", "32", "--width", "32",
                   "--no-split", "--parity-pairs", "1", "--latency-iterations", "1", cwd=tmp_path)
    assert "not supported" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert (out / "manifest.json").is_file()
