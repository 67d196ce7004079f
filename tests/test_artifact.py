"""The artifact contract: the runtime refuses anything the manifest does not vouch for."""

import json
import shutil

import numpy as np
import pytest

import edgeflow
from edgeflow.artifact import Artifact, ArtifactWriter
from edgeflow.errors import ArtifactError, InputError


@pytest.fixture
def artifact_copy(small_artifact, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(small_artifact, dst)
    return dst


def test_manifest_describes_the_graphs(small_artifact):
    m = json.loads((small_artifact / "manifest.json").read_text())
    assert m["valid"] is True and m["format"] == "edgeflow-artifact"
    assert set(m["graphs"]) >= {"model", "encoder", "decoder"}
    assert [i["name"] for i in m["inputs"]] == ["frame1", "frame2"]
    assert m["inputs"][0]["shape"][:2] == [1, 3] and m["inputs"][0]["dtype"] == "float32"
    assert m["outputs"][0]["name"] == "flow"
    assert m["preprocessing"]["pad_multiple"] == 32
    assert m["correlation"] == [{"max_displacement": 4, "kernel_size": 1, "stride1": 1, "stride2": 1, "pad_size": 4, "normalize": 1}]
    assert m["plugins"] == [{"name": "Correlation", "namespace": "edgeflow", "version": "1"}]
    assert m["parity"]["model"]["passed"] and m["parity"]["encoder_decoder"]["passed"]
    for name, meta in m["files"].items():
        assert len(meta["sha256"]) == 64 and (small_artifact / name).stat().st_size == meta["bytes"]
    assert {"torch", "onnx", "onnxruntime", "edgeflow", "opset"} <= set(m["tools"])
    assert m["source"]["kind"] == "zoo"


def test_tampered_file_is_refused(artifact_copy):
    path = artifact_copy / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        edgeflow.load(artifact_copy)


def test_truncated_file_is_refused(artifact_copy):
    path = artifact_copy / "decoder.onnx"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ArtifactError, match="truncated"):
        Artifact.open(artifact_copy)


def test_missing_file_and_manifest(artifact_copy, tmp_path):
    (artifact_copy / "encoder.onnx").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        Artifact.open(artifact_copy)
    with pytest.raises(ArtifactError, match="no artifact"):
        Artifact.open(tmp_path / "nowhere")
    (artifact_copy / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        Artifact.open(artifact_copy)


def test_bare_onnx_file_is_not_an_artifact(small_artifact):
    with pytest.raises(ArtifactError, match="not an artifact directory"):
        edgeflow.load(small_artifact / "model.onnx")


def test_manifest_cannot_point_outside(artifact_copy):
    m = json.loads((artifact_copy / "manifest.json").read_text())
    m["files"]["../evil.onnx"] = {"sha256": "0" * 64, "bytes": 1, "role": None}
    (artifact_copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="outside"):
        Artifact.open(artifact_copy)


def test_invalid_artifact_is_refused(artifact_copy):
    m = json.loads((artifact_copy / "manifest.json").read_text())
    m["valid"] = False
    m["invalid_reason"] = "parity check failed: test"
    (artifact_copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="not validated"):
        edgeflow.load(artifact_copy)


def test_writer_is_atomic(tmp_path):
    out = tmp_path / "art"
    with ArtifactWriter(out) as w:
        w.path("model.onnx").write_bytes(b"x")
        w.add("model.onnx", "model")
        raise_here = True
    assert raise_here and not out.exists(), "an uncommitted writer leaves nothing behind"
    assert not list(tmp_path.iterdir())


def test_infer_any_frame_size(small_artifact):
    from edgeflow.synthetic import SyntheticFlowGenerator

    model = edgeflow.load(small_artifact)
    s = SyntheticFlowGenerator(90, 120, seed=3, augment=False).sample(0)
    flow = model.infer(s.frame1, s.frame2)
    assert flow.shape == (90, 120, 2) and flow.dtype == np.float32 and np.isfinite(flow).all()
    # The cached (split) path computes the same flow.
    cached = model.decode(model.encode(s.frame1), model.encode(s.frame2))
    np.testing.assert_allclose(cached, flow, atol=1e-4)


def test_infer_matches_pytorch(small_artifact):
    import torch

    from converters.load import load_model
    from edgeflow.synthetic import SyntheticFlowGenerator

    s = SyntheticFlowGenerator(70, 100, seed=5, augment=False).sample(0)
    torch.manual_seed(0)  # as ConvertJob does, in case no trained weights are bundled
    module = load_model("pwc-lite").module
    with torch.no_grad():
        t = lambda f: torch.from_numpy(f).permute(2, 0, 1)[None].float()  # noqa: E731
        ref = module.forward_any_size(t(s.frame1), t(s.frame2))[0].permute(1, 2, 0).numpy()
    got = edgeflow.load(small_artifact).infer(s.frame1, s.frame2)
    np.testing.assert_allclose(got, ref, atol=1e-3)


@pytest.mark.parametrize(
    "frame, match",
    [
        (np.zeros((60, 80, 3), np.float32), "uint8"),
        (np.zeros((60, 80), np.uint8), "HxWx3"),
        (np.zeros((4, 4, 3), np.uint8), "too small"),
        ([[0]], "numpy array"),
    ],
)
def test_bad_frames_get_one_line_errors(small_artifact, frame, match):
    model = edgeflow.load(small_artifact)
    good = np.zeros((60, 80, 3), np.uint8)
    with pytest.raises(InputError, match=match):
        model.infer(frame, good)


def test_mismatched_frame_sizes(small_artifact):
    model = edgeflow.load(small_artifact)
    with pytest.raises(InputError, match="differ in size"):
        model.infer(np.zeros((60, 80, 3), np.uint8), np.zeros((64, 80, 3), np.uint8))


@pytest.mark.parametrize("h, w, m", [(60, 80, 32), (64, 64, 32), (1, 1, 64), (33, 95, 8), (7, 9, 1), (10, 10, 0)])
def test_one_padding_rule(h, w, m):
    """edgeflow.preprocess.padded_size is the rule; the runtime's geometry and the zoo's eager path use it."""
    import torch

    from converters.zoo import build_model
    from edgeflow.preprocess import padded_size, plan_geometry

    ph, pw = padded_size(h, w, m)
    k = max(m, 1)
    assert ph % k == 0 and pw % k == 0 and 0 <= ph - h < k and 0 <= pw - w < k
    assert plan_geometry((h, w), (1, 3, "height", "width"), m).net_hw == (ph, pw)
    if m == 32 and h >= 32:
        model = build_model("pwc-lite").eval()
        seen = []
        handle = model.encoder.register_forward_pre_hook(lambda mod, args: seen.append(tuple(args[0].shape[-2:])))
        with torch.no_grad():
            model.forward_any_size(torch.zeros(1, 3, h, w), torch.zeros(1, 3, h, w))
        handle.remove()
        assert seen and seen[0] == (ph, pw)
