"""Fuzzing what edgeflow reads from others: manifests and .pt2 archives (readers: test_flow_io.py).

Fixed seeds (``derandomize=True``: the same examples on every run, so CI failures reproduce) and
bounded work (a fixed number of examples, each small). The property: any input gives a result or
one ``EdgeflowError`` line, never another exception, and a mutated archive never runs code.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeflow.artifact import Artifact
from edgeflow.errors import ArtifactError, EdgeflowError

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("onnx")
    from tiny_flow_artifact import build_tiny_artifact

    return build_tiny_artifact(tmp_path_factory.mktemp("fuzz") / "art", split=True)


def _paths(node, prefix=()):
    """Every key path in a JSON document."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


def _one_line_or_ok(folder: pathlib.Path) -> None:
    try:
        Artifact.open(folder)
    except ArtifactError as err:
        assert str(err) and "\n" not in str(err)


@FUZZ
@given(data=st.data())
def test_fuzz_manifest_fields(tiny, tmp_path_factory, data):
    """Replace any value (or key) of a real manifest with arbitrary JSON."""
    folder = tmp_path_factory.mktemp("m") / "art"
    shutil.copytree(tiny, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    paths = list(_paths(manifest))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        value = data.draw(JSON)
        if not path:
            manifest = value
            break
        target = manifest
        try:
            for key in path[:-1]:
                target = target[key]
            if data.draw(st.booleans()) and isinstance(target, dict) and path[-1] in target:
                target[data.draw(st.text(max_size=8))] = target.pop(path[-1])  # rename the key
            else:
                target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    (folder / "manifest.json").write_text(json.dumps(manifest))
    _one_line_or_ok(folder)


@FUZZ
@given(raw=st.binary(max_size=400), prefix=st.sampled_from([b"", b'{"format": "edgeflow-artifact", ', b"[" * 100]))
def test_fuzz_manifest_bytes(tiny, tmp_path_factory, raw, prefix):
    folder = tmp_path_factory.mktemp("b") / "art"
    shutil.copytree(tiny, folder)
    (folder / "manifest.json").write_bytes(prefix + raw)
    _one_line_or_ok(folder)


# -- .pt2 inspection -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pt2(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from converters.zoo import PWCConfig, build_model

    torch.manual_seed(0)
    config = PWCConfig(pyramid_channels=(4, 6, 8), pyramid_convs=1, decoder_channels=(8,), dense=False,
                       context_channels=(8,), context_dilations=(2,), max_displacement=2, activation="relu",
                       output_level=2, feature_upsampling="bilinear")
    model = build_model("pwc", config).eval()
    pair = (torch.rand(1, 3, 32, 32) * 255, torch.rand(1, 3, 32, 32) * 255)
    path = tmp_path_factory.mktemp("pt2") / "tiny.pt2"
    torch.export.save(torch.export.export(model, pair), path)
    return path.read_bytes()


def _mutate(base: bytes, edits) -> bytes:
    data = bytearray(base)
    for kind, pos, value in edits:
        pos %= max(len(data), 1)
        if kind == 0:
            data[pos:pos + 1] = bytes([value])
        elif kind == 1:
            del data[pos:]
        else:
            data[pos:pos] = bytes([value]) * (value % 9 + 1)
    return bytes(data)


EDITS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2**24), st.integers(0, 255)), min_size=1, max_size=4)


@FUZZ
@given(edits=EDITS)
def test_fuzz_pt2_inspection_bytes(pt2, edits):
    from converters.load import inspect_pt2

    problems = inspect_pt2(_mutate(pt2, edits))
    assert isinstance(problems, list) and all(isinstance(p, str) and "\n" not in p for p in problems)


@FUZZ
@given(member=st.sampled_from(["data/weights/model_weights_config.json", "data/constants/model_constants_config.json",
                               "models/model.json"]),
       value=JSON, data=st.data())
def test_fuzz_pt2_inspection_json(pt2, member, value, data):
    """Arbitrary JSON in the archive's config files: inspected without an exception."""
    import io

    from converters.load import inspect_pt2

    source = zipfile.ZipFile(io.BytesIO(pt2))
    root = source.namelist()[0].split("/", 1)[0]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            body = source.read(info)
            if info.filename == f"{root}/{member}":
                doc = json.loads(body)
                paths = list(_paths(doc))
                path = data.draw(st.sampled_from(paths))
                if path:
                    node = doc
                    for key in path[:-1]:
                        node = node[key]
                    node[path[-1]] = value
                else:
                    doc = value
                body = json.dumps(doc).encode()
            target.writestr(info.filename, body)
    problems = inspect_pt2(out.getvalue())
    assert isinstance(problems, list)


@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(edits=EDITS)
def test_fuzz_pt2_load_is_one_line(pt2, tmp_path_factory, edits):
    """Mutated archives through load_model: loaded, or one EdgeflowError line (torch's own errors wrapped)."""
    from converters.load import load_model

    path = tmp_path_factory.mktemp("l") / "m.pt2"
    path.write_bytes(_mutate(pt2, edits))
    try:
        load_model(path)
    except EdgeflowError as err:
        assert str(err) and "\n" not in str(err)
