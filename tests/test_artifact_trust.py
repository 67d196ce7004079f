"""Tampered or hostile artifacts, and output folders that are not ours (issue 15, items 2, 3, 6).

The runtime loads only what the manifest vouches for (listed, inside the folder, no symlink,
sha256-checked, external data included), every malformed manifest is one ArtifactError line,
and ``edgeflow convert --out`` / ``edgeflow export triton`` replace only an empty folder or what
edgeflow wrote before. Artifacts are the hand-built tiny ONNX ones (tests/tiny_flow_artifact.py:
real onnxruntime sessions, no torch needed).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import edgeflow
from edgeflow.artifact import Artifact, ArtifactWriter, Manifest
from edgeflow.errors import ArtifactError, EdgeflowError

onnx = pytest.importorskip("onnx")
from tiny_flow_artifact import build_tiny_artifact, whole_model  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_artifact(tmp_path_factory.mktemp("tiny") / "art", split=True)


@pytest.fixture
def art(tiny, tmp_path):
    dst = tmp_path / "art"
    shutil.copytree(tiny, dst)
    return dst


def manifest(path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def write_manifest(path, m) -> None:
    (path / "manifest.json").write_text(json.dumps(m))


def refused(path, match: str) -> str:
    with pytest.raises(ArtifactError, match=match) as info:
        edgeflow.load(path)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    return message


def sha(path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


# -- malformed manifests: one line each, never a traceback or a late failure ----------------------
def _edit(field, value):
    def change(m):
        keys = field.split(".")
        target = m
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return change


MALFORMED = {
    "files entry a string": (lambda m: m["files"].__setitem__("model.onnx", "abc"), "files"),
    "files a list": (_edit("files", ["model.onnx"]), "files must be an object"),
    "graphs a string": (_edit("graphs", "model.onnx"), "graphs must be an object"),
    "pad_multiple abc": (_edit("preprocessing.pad_multiple", "abc"), "pad_multiple must be an integer in 1..256"),
    "pad_multiple 1e9": (_edit("preprocessing.pad_multiple", 10**9), "pad_multiple must be an integer in 1..256"),
    "pad_multiple 1e9 float": (_edit("preprocessing.pad_multiple", 1e9), "pad_multiple"),
    "pad_multiple 0": (_edit("preprocessing.pad_multiple", 0), "pad_multiple"),
    "pad_multiple -64": (_edit("preprocessing.pad_multiple", -64), "pad_multiple"),
    "pad_multiple 1.5": (_edit("preprocessing.pad_multiple", 1.5), "pad_multiple"),
    "pad_multiple true": (_edit("preprocessing.pad_multiple", True), "pad_multiple"),
    "preprocessing a list": (_edit("preprocessing", [1]), "preprocessing must be an object"),
    "input_range reversed": (_edit("preprocessing.input_range", [255, 0]), "input_range"),
    "inputs a string": (_edit("inputs", "frame1"), "inputs must be a list"),
    "shape a number": (lambda m: m["inputs"][0].__setitem__("shape", 3), "shape must be a list"),
    "sha256 not hex": (lambda m: m["files"]["model.onnx"].__setitem__("sha256", "z" * 64), "sha256"),
    "bytes a string": (lambda m: m["files"]["model.onnx"].__setitem__("bytes", "10"), "bytes"),
    "valid a string": (_edit("valid", "yes"), "valid must be true or false"),
    "resolution huge": (_edit("resolution", [10**9, 10]), "resolution"),
    "model a string": (_edit("model", "x"), "model must be an object"),
    "format_version a string": (_edit("format_version", "1"), "format_version"),
    "graph absolute": (lambda m: m["graphs"].__setitem__("model", "/etc/passwd"), "outside the artifact"),
    "graph dotdot": (lambda m: m["graphs"].__setitem__("model", "../art2/model.onnx"), "outside the artifact"),
    "graph not listed": (lambda m: m["graphs"].__setitem__("model", "other.onnx"), "not listed"),
    "split not listed": (_edit("split", {"encoder": "e.onnx", "decoder": "decoder.onnx", "levels": 1}), "not listed"),
    "engine not listed": (_edit("tensorrt", {"engines": {"engine": {"file": "model.engine"}}}), "not listed"),
    "plugin library a path": (_edit("tensorrt", {"plugin_library": "../../lib.so"}), "bare file name"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_manifest_is_one_line(case, art):
    change, match = MALFORMED[case]
    m = manifest(art)
    change(m)
    write_manifest(art, m)
    refused(art, match)


def test_deep_json_non_utf8_and_huge_manifest(art):
    (art / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
    refused(art, "nests deeper")
    (art / "manifest.json").write_bytes(b'{"format": "edgeflow-artifact", "x": "\xff\xfe"}')
    refused(art, "not UTF-8")


def test_report_json_non_utf8_or_not_an_object(art):
    (art / "report.json").write_bytes(b"\xff\xfe\x00{")
    refused(art, "report.json is not UTF-8")
    (art / "report.json").write_text("[1, 2]")
    refused(art, "not a JSON object")


def test_unlisted_graph_file_is_not_run(art):
    """A graph path that is inside the folder but not listed: refused even though the file exists."""
    shutil.copy(art / "model.onnx", art / "evil.onnx")
    m = manifest(art)
    m["graphs"]["model"] = "evil.onnx"
    write_manifest(art, m)
    refused(art, "not listed")


def test_symlinked_file_is_refused(art, tmp_path):
    outside = tmp_path / "outside.onnx"
    shutil.copy(art / "model.onnx", outside)
    (art / "model.onnx").unlink()
    (art / "model.onnx").symlink_to(outside)
    refused(art, "symlink")
    (art / "model.onnx").unlink()
    shutil.copy(outside, art / "model.onnx")
    (art / "manifest.json").rename(art / "real-manifest.json")
    (art / "manifest.json").symlink_to(art / "real-manifest.json")
    refused(art, "symlink")


def _external_data_artifact(folder: pathlib.Path, location: str, listed: bool) -> pathlib.Path:
    """model.onnx whose weights live in an external file, written with onnx's own helper."""
    model = whole_model()
    folder.mkdir()
    from onnx.external_data_helper import set_external_data

    for tensor in model.graph.initializer:  # Slice bounds must stay inline for shape inference
        if tensor.name not in ("starts", "ends", "axes"):
            set_external_data(tensor, "weights.bin")
    onnx.save_model(model, folder / "model.onnx")
    graph = (folder / "model.onnx").read_bytes()
    assert b"weights.bin" in graph
    if location != "weights.bin":
        graph = graph.replace(b"\x0bweights.bin", bytes([len(location)]) + location.encode())
        (folder / "model.onnx").write_bytes(graph)
        target = (folder / location).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        (folder / "weights.bin").replace(target)
    files = {"model.onnx": {"sha256": sha(folder / "model.onnx"), "bytes": (folder / "model.onnx").stat().st_size, "role": "model"}}
    if listed:
        files["weights.bin"] = {"sha256": sha(folder / "weights.bin"), "bytes": (folder / "weights.bin").stat().st_size, "role": None}
    spec = lambda n, c: {"name": n, "shape": [1, c, "height", "width"], "dtype": "float32"}  # noqa: E731
    write_manifest(folder, {
        "format": "edgeflow-artifact", "format_version": 1, "model": {"name": "ext", "arch": "tiny", "config": None},
        "inputs": [spec("frame1", 3), spec("frame2", 3)], "outputs": [spec("flow", 2)],
        "preprocessing": {"pad_multiple": 8}, "files": files, "graphs": {"model": "model.onnx"}, "valid": True,
    })
    return folder


def test_external_data_must_be_listed(tmp_path):
    frame = np.zeros((16, 16, 3), np.uint8)
    ok = _external_data_artifact(tmp_path / "ok", "weights.bin", listed=True)
    assert edgeflow.load(ok).infer(frame, frame).shape == (16, 16, 2)  # listed external data loads and runs
    refused(_external_data_artifact(tmp_path / "unlisted", "weights.bin", listed=False), "external data")
    refused(_external_data_artifact(tmp_path / "outside", "../wbin.bin", listed=False), "outside the artifact")
    tampered = _external_data_artifact(tmp_path / "tampered", "weights.bin", listed=True)
    data = bytearray((tampered / "weights.bin").read_bytes())
    data[0] ^= 1
    (tampered / "weights.bin").write_bytes(bytes(data))
    refused(tampered, "sha256")


def test_manifest_dataclass_round_trip_and_extras():
    """The bundled artifact's manifest reads back unchanged; unknown sections are carried as extras."""
    bundled = ROOT / "edgeflow" / "data" / "pwc-lite"
    raw = json.loads((bundled / "manifest.json").read_text())
    meta = Manifest.from_dict(raw)
    assert meta.to_dict() == raw
    assert meta.preprocessing.pad_multiple == 32 and "source" in meta.extras
    extra = {**raw, "input_reference": {"mean": [1.0]}, "preprocessing": {**raw["preprocessing"], "input_order": "t,t-1"}}
    again = Manifest.from_dict(extra)
    assert again.extras["input_reference"] == {"mean": [1.0]}
    assert again.preprocessing.extras == {"input_order": "t,t-1"}
    assert again.to_dict()["preprocessing"]["input_order"] == "t,t-1"
    assert Artifact.open(bundled).meta.graphs == raw["graphs"]


def test_writer_validates_what_it_writes(tmp_path):
    with ArtifactWriter(tmp_path / "bad") as writer:
        writer.path("model.onnx").write_bytes(b"x")
        writer.add("model.onnx", "model")
        with pytest.raises(ArtifactError, match="pad_multiple"):
            writer.commit({"model": {"name": "x"}, "preprocessing": {"pad_multiple": 0}})
    assert not (tmp_path / "bad").exists()


# -- never delete what edgeflow did not write ------------------------------------------------------
def _commit(out, force=False, payload=b"x"):
    with ArtifactWriter(out, force=force) as writer:
        writer.path("model.onnx").write_bytes(payload)
        writer.add("model.onnx", "model")
        return writer.commit({"model": {"name": "x"}, "preprocessing": {"pad_multiple": 8}})


def test_writer_replaces_only_artifacts_or_empty_folders(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    _commit(out)  # an empty folder
    _commit(out, payload=b"y")  # a previous artifact
    assert (out / "model.onnx").read_bytes() == b"y"
    (out / "notes.txt").write_text("mine")  # the user's file inside an artifact
    with pytest.raises(ArtifactError, match=r"notes\.txt.*--force"):
        _commit(out)
    assert (out / "notes.txt").read_text() == "mine"
    user = tmp_path / "user"
    user.mkdir()
    (user / "thesis.tex").write_text("years of work")
    (user / "sub").mkdir()
    (user / "sub" / "data.csv").write_text("1,2")
    with pytest.raises(ArtifactError, match=r"not an edgeflow artifact \(it holds sub/data\.csv, thesis\.tex\)"):
        _commit(user)
    assert (user / "thesis.tex").read_text() == "years of work" and (user / "sub" / "data.csv").exists()
    _commit(user, force=True)
    assert not (user / "thesis.tex").exists() and (user / "model.onnx").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind


def test_writer_never_replaces_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("x")
    for out, force in ((".", False), (".", True), ("..", True)):
        with pytest.raises(ArtifactError, match="current folder"):
            _commit(pathlib.Path(out), force=force)
    assert (tmp_path / "keep.txt").exists()


def test_planted_backup_name_is_not_used(tmp_path):
    """The old writer moved the previous artifact to the predictable `.NAME.old-PID`: a file planted
    there made every convert fail; staging and backup names now come from mkdtemp."""
    out = _commit(tmp_path / "art")
    (tmp_path / f".art.old-{os.getpid()}").write_text("planted")
    victim = tmp_path / "victim"
    victim.mkdir()
    (tmp_path / f".art.partial-{os.getpid()}").symlink_to(victim)
    _commit(out, payload=b"new")
    assert (out / "model.onnx").read_bytes() == b"new" and victim.exists() and not list(victim.iterdir())


def run_cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "edgeflow", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_convert_refuses_a_user_folder_before_working(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "work.txt").write_text("mine")
    for out in (".", str(tmp_path)):
        proc = run_cli("convert", "pwc-lite", "--out", out, "--quiet", cwd=tmp_path)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode != 0 and len(lines) == 1, proc.stderr
        assert "refusing to" in lines[0] and ("--force" in lines[0] or "current folder" in lines[0])
    assert (tmp_path / "work.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work.txt"]


# -- edgeflow export triton ------------------------------------------------------------------------
def test_triton_export_keeps_user_files(tiny, tmp_path):
    from edgeflow.triton import export_triton

    repo = tmp_path / "repo"
    (repo / "tiny-diff").mkdir(parents=True)
    (repo / "tiny-diff" / "my_model.py").write_text("user code")
    with pytest.raises(EdgeflowError, match=r"my_model\.py.*--force"):
        export_triton(tiny, repo, platform="onnxruntime", kind="cpu")
    assert (repo / "tiny-diff" / "my_model.py").read_text() == "user code"
    (repo / "tiny-diff" / "my_model.py").unlink()
    first = export_triton(tiny, repo, platform="onnxruntime", kind="cpu")  # an empty folder
    again = export_triton(tiny, repo, platform="onnxruntime", kind="cpu")  # the earlier export
    assert first.model_dir == again.model_dir and (again.model_dir / "1" / "model.onnx").is_file()
    (again.model_dir / "notes.md").write_text("mine")
    with pytest.raises(EdgeflowError, match=r"notes\.md"):
        export_triton(tiny, repo, platform="onnxruntime", kind="cpu")
    export_triton(tiny, repo, platform="onnxruntime", kind="cpu", force=True)
    assert not (again.model_dir / "notes.md").exists()
    (repo / "README.txt").write_text("my own readme")
    with pytest.raises(EdgeflowError, match="README"):
        export_triton(tiny, repo, platform="onnxruntime", kind="cpu")
    assert (repo / "README.txt").read_text() == "my own readme"
    assert [p.name for p in repo.iterdir() if p.name.startswith(".")] == []


def test_triton_readme_skips_malformed_manifest_copies(tiny, tmp_path):
    """README.txt lists every model of the repository from its manifest copy; a broken copy in
    someone else's folder is skipped, not a traceback."""
    from edgeflow.triton import MANIFEST_COPY, export_triton

    repo = tmp_path / "repo"
    for name, body in (("broken", b"\xff\xfe"), ("deep", b"[" * 100_000), ("shape", b'{"inputs": [1]}')):
        (repo / name).mkdir(parents=True)
        (repo / name / MANIFEST_COPY).write_bytes(body)
    export_triton(tiny, repo, platform="onnxruntime", kind="cpu")
    readme = (repo / "README.txt").read_text()
    assert "tiny-diff" in readme and "broken" not in readme


@pytest.mark.parametrize("case", ["pad_multiple 1e9", "files entry a string", "graph dotdot"])
def test_malformed_manifest_through_the_cli(case, art, tmp_path):
    """What the user sees: `edgeflow info` and `edgeflow run` print one error line, no traceback."""
    change, match = MALFORMED[case]
    m = manifest(art)
    change(m)
    write_manifest(art, m)
    for args in (("info", str(art)), ("run", str(art), "--source", "synthetic://?width=64&height=48", "--frames", "2")):
        proc = run_cli(*args, cwd=tmp_path)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
        assert len(lines) == 1 and "manifest.json" in lines[0], proc.stderr
