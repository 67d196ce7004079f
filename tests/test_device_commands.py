"""Device-side command behaviour from issue 19: `info ARTIFACT`, `bench --plot` checked up front,
`demo` without training hints. Real CLI in subprocesses, real artifacts (the bundled one, copied)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "edgeflow" / "data" / "pwc-lite"


def _edgeflow(*args, env_extra=None, cwd=None, timeout=300):
    import os

    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "edgeflow", *args], capture_output=True, text=True, env=env,
                          cwd=cwd or ROOT, timeout=timeout)


def test_info_describes_an_artifact_and_its_sha256_status(tmp_path):
    art = tmp_path / "copied"
    shutil.copytree(BUNDLED, art)
    r = _edgeflow("info", str(art))
    assert r.returncode == 0, r.stderr
    manifest = json.loads((art / "manifest.json").read_text())
    out = r.stdout
    assert f"{manifest['model']['name']} (arch {manifest['model']['arch']}), precision {manifest['precision']}" in out
    for name in [i["name"] for i in manifest["inputs"] + manifest["outputs"]]:
        assert name in out
    assert f"pad to a multiple of {manifest['preprocessing']['pad_multiple']}" in out
    assert "edgeflow::Correlation" in out and f"torch {manifest['tools']['torch']}" in out
    assert "parity       model:" in out and "passed" in out
    assert "all files match the manifest" in out
    as_json = json.loads(_edgeflow("info", str(art), "--json").stdout)
    assert as_json["sha256_ok"] and set(as_json["files"]) == set(manifest["files"])

    # a truncated copy: described, the damaged file named, exit status 1
    victim = next(n for n, m in manifest["files"].items() if m["role"] == "model")
    data = (art / victim).read_bytes()
    (art / victim).write_bytes(data[: len(data) // 2])
    r = _edgeflow("info", str(art))
    assert r.returncode == 1
    assert f"{victim} (model" in r.stdout and "truncated or modified" in r.stdout and "MISMATCH" in r.stdout


def test_info_without_artifact_still_describes_the_device_and_video_backend():
    r = _edgeflow("info")
    assert r.returncode == 0, r.stderr
    assert "onnxruntime" in r.stdout and "video files    PyAV" in r.stdout


def test_info_on_a_non_artifact_is_one_line(tmp_path):
    r = _edgeflow("info", str(tmp_path))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "manifest" in r.stderr


def test_bench_plot_without_matplotlib_fails_before_measuring(tmp_path):
    """A matplotlib that cannot be imported (stand-in package first on the path) -> refused up front."""
    fake = tmp_path / "matplotlib"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('No module named matplotlib (stand-in)')\n")
    r = _edgeflow("bench", "--plot", str(tmp_path / "p.png"), "--iterations", "50", env_extra={"PYTHONPATH": str(tmp_path)})
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["edgeflow bench: error: --plot needs matplotlib: pip install matplotlib "
                                             "(or drop --plot)"]
    assert "bench:" not in r.stdout  # no row was measured


def test_demo_ground_truth_needs_no_training_textures(caplog):
    """The demo's accuracy uses procedural textures (no scikit-image hint) and the same exact flow."""
    from edgeflow.commands.demo import DATA, _Accuracy
    from edgeflow.synthetic import SyntheticSequence, TextureBank

    meta = json.loads((DATA / "sample.json").read_text())
    with caplog.at_level(logging.INFO):
        acc = _Accuracy(meta)
    assert not [r for r in caplog.records if "scikit-image" in r.getMessage()]
    photos = SyntheticSequence(meta["height"], meta["width"], seed=meta["seed"], length=meta["length"],
                               textures=TextureBank("auto"))
    for t in (0, meta["length"] // 2, meta["length"] - 2):
        f1, v1 = acc.sequence.flow(t)
        f2, v2 = photos.flow(t)
        np.testing.assert_array_equal(v1, v2)
        np.testing.assert_array_equal(f1, f2)


def test_video_backend_reason_names_the_decoder_and_why():
    from edgeflow.sources.video import choose_backend

    cls, why = choose_backend("auto")
    assert cls.__name__ == "_PyAVDecoder" and why.startswith("PyAV ") and "preferred" in why
    cls, why = choose_backend("opencv")
    import cv2

    assert cls.__name__ == "_OpenCVDecoder" and why.startswith(f"OpenCV {cv2.__version__}")
    assert ("a pip build" in why) == ("site-packages" in cv2.__file__) and "opencv was asked for" in why


def test_demo_scores_dis_presets_on_the_same_decoded_frames_after_the_stream():
    """The demo's comparison: the model's EPE and OpenCV DIS ultrafast / fast / medium on exactly the
    pairs the model was scored on (real decoded frames of the bundled clip), with their times."""
    from types import SimpleNamespace

    from edgeflow.commands.demo import DATA, DEMO_BASELINES, _Accuracy
    from edgeflow.sources import open_source

    meta = json.loads((DATA / "sample.json").read_text())
    acc = _Accuracy(meta)
    frames = []
    with open_source(str(DATA / "sample.mp4")) as src:
        for frame in src:
            frames.append(frame.image)
            if len(frames) == 4:
                break
    for i, frame in enumerate(frames):  # what the stream delivers: frame 0 is a reference, no flow
        flow = acc.sequence.flow(i - 1)[0] if i else None
        acc(SimpleNamespace(index=i, prev_index=i - 1 if i else None, frame=frame, flow=flow))
    assert sorted(acc.model_epe) == [0, 1, 2] and max(acc.model_epe.values()) < 1e-6  # ground truth scores 0
    assert [p[2] for p in acc.pairs] == [0, 1, 2] and acc.compared()[0] == 3
    scores = acc.baselines()
    assert list(scores) == list(DEMO_BASELINES)
    for name, (epe, ms) in scores.items():
        assert 0 < epe < 2.0 and ms > 0, (name, epe, ms)
