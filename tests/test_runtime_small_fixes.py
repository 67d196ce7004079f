"""Issue 15's smaller runtime holes, each reproduced: a pruned conversion leaves nothing in the
temp folder; ``decode(None, None)`` and calls after ``close()`` are one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeflow.errors import EdgeflowError, InputError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import edgeflow
    from tiny_flow_artifact import build_tiny_artifact

    m = edgeflow.load(build_tiny_artifact(tmp_path_factory.mktemp("art") / "tiny"), threads=1)
    yield m
    m.close()


def test_decode_rejects_what_encode_did_not_return(model):
    frame = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(InputError, match="decode\\(\\) takes the Features that encode\\(\\) returned.*NoneType and NoneType"):
        model.decode(None, None)
    if model.can_cache_features:
        feats = model.encode(frame)
        with pytest.raises(InputError, match="Features and ndarray"):
            model.decode(feats, frame)
        assert model.decode(feats, feats).shape == (32, 32, 2)


def test_a_closed_model_refuses_work(tmp_path):
    import edgeflow
    from tiny_flow_artifact import build_tiny_artifact

    m = edgeflow.load(build_tiny_artifact(tmp_path / "tiny"), threads=1)
    frame = np.zeros((32, 32, 3), np.uint8)
    assert m.infer(frame, frame).shape == (32, 32, 2)
    feats = m.encode(frame) if m.can_cache_features else None
    m.close()
    m.close()  # twice is fine
    with pytest.raises(EdgeflowError, match="was closed; load it again"):
        m.infer(frame, frame)
    if feats is not None:
        with pytest.raises(EdgeflowError, match="was closed"):
            m.encode(frame)
        with pytest.raises(EdgeflowError, match="was closed"):
            m.decode(feats, feats)
    with edgeflow.load(build_tiny_artifact(tmp_path / "tiny2"), threads=1) as m2:
        m2.infer(frame, frame)
    with pytest.raises(EdgeflowError, match="was closed"):
        m2.infer(frame, frame)


@pytest.mark.slow
def test_pruned_convert_leaves_nothing_in_the_temp_folder(tmp_path):
    pytest.importorskip("torch")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "edgeflow", "convert", "pwc-lite", "--prune", "0.5", "--finetune-steps", "0",
                           "--height", "64", "--width", "64", "--parity-pairs", "1", "--latency-iterations", "2", "--quiet",
                           "--out", str(tmp_path / "art")], capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "fp32-pruned50" in proc.stdout  # the unpruned original was measured, so it was exported
    left = sorted(p.name for p in scratch.iterdir() if p.name.startswith(("edgeflow", ".edgeflow")))
    assert left == [], f"left in the temp folder: {left}"
