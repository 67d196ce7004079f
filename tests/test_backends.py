"""Runners in Polygraphy's shape: life cycle, their own inference times, the feed checked in one place;
the stream takes stage times from the model's runners and never reaches inside the model."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import edgeflow
from edgeflow.backends.onnxruntime import OnnxRuntimeRunner, SessionLoader
from edgeflow.errors import EdgeflowError, InputError
from edgeflow.sources import IterableSource
from edgeflow.stream import Stream
from tiny_flow_artifact import build_tiny_artifact, expected_flow, moving_frames

STREAM_DIR = Path(edgeflow.__file__).parent / "stream"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return build_tiny_artifact(tmp_path_factory.mktemp("art") / "tiny")


def _pair(h=16, w=24):
    x1 = np.zeros((1, 3, h, w), np.float32)
    return x1, x1 + 51.0


def test_runner_times_itself_and_has_a_life_cycle(artifact):
    runner = OnnxRuntimeRunner(SessionLoader(artifact / "model.onnx", threads=1))
    assert runner.is_active and runner.last_inference_time() is None
    a, b = runner.input_names
    x1, x2 = _pair()
    for _ in range(3):
        out = runner.infer({a: x1, b: x2})[runner.output_names[0]]
    np.testing.assert_allclose(out[0, 0], 51 / 255 + 1.0, atol=1e-6)
    assert len(runner.inference_times) == 3 and all(t > 0 for t in runner.inference_times)
    assert runner.last_inference_time() == runner.inference_times[-1]
    runner.deactivate()
    with pytest.raises(EdgeflowError, match="not active"):
        runner.infer({a: x1, b: x2})
    with runner:  # activate() loads again from its loader
        assert runner.infer({a: x1, b: x2})[runner.output_names[0]].shape == (1, 2, 16, 24)
    assert not runner.is_active


def test_feed_is_checked_in_one_line(artifact):
    runner = OnnxRuntimeRunner(SessionLoader(artifact / "model.onnx", threads=1))
    a, b = runner.input_names
    x1, x2 = _pair()
    with pytest.raises(InputError, match=f"missing model input.*{b}"):
        runner.infer({a: x1})
    with pytest.raises(InputError, match="has shape \\(16, 24\\).*takes 1x3x\\?x\\?"):
        runner.infer({a: x1[0, 0], b: x2})
    with pytest.raises(InputError, match="has shape \\(1, 4, 16, 24\\)"):
        runner.infer({a: np.zeros((1, 4, 16, 24), np.float32), b: x2})
    with pytest.raises(InputError, match="is int64.*takes float32"):
        runner.infer({a: x1.astype(np.int64), b: x2})
    assert runner.last_inference_time() is None  # nothing reached the backend
    runner.infer({a: x1, b: x2})
    assert runner._checked is not None  # the signature that passed is remembered


class _PublicOnly:
    """The model's public surface only: touching runner/encoder/decoder fails the test."""

    PUBLIC = {"geometry", "infer_network", "encode_network", "decode_network", "last_stage_times",
              "can_cache_features", "describe", "budget"}

    def __init__(self, model):
        object.__setattr__(self, "_m", model)

    def __getattr__(self, name):
        if name not in self.PUBLIC:
            raise AssertionError(f"the stream reached inside the model: .{name}")
        return getattr(self._m, name)


@pytest.mark.parametrize("cache", [True, False], ids=["cached", "whole"])
def test_stream_uses_the_models_public_calls_and_runner_times(artifact, cache):
    model = edgeflow.load(artifact, threads=1)
    records = []
    try:
        frames = list(moving_frames(6, 20, 28))
        with Stream(_PublicOnly(model), IterableSource(frames), cache_features=cache,
                    sinks=[_Records(records)]) as stream:
            results = list(stream)
        for r in results:
            np.testing.assert_allclose(r.flow, expected_flow(frames[r.index - 1], frames[r.index]), atol=1e-5)
        assert stream.report.meta["backend"] == "onnxruntime"
        last = [rec for rec in records if rec.status == "result"][-1]
        if cache:
            # the stage times are the runners' own records, and inference is their sum
            assert last.stages["encode"] == model.encoder.inference_times[-1]
            assert last.stages["decode"] == model.decoder.inference_times[-1]
            assert last.stages["inference"] == pytest.approx(last.stages["encode"] + last.stages["decode"])
        else:
            assert last.stages["inference"] == model.runner.inference_times[-1]
            assert "encode" not in last.stages
    finally:
        model.close()


class _Records:
    def __init__(self, out):
        self.out = out

    def open(self, info):
        pass

    def on_result(self, result):
        pass

    def on_record(self, record):
        self.out.append(record)

    def close(self, report):
        pass


def test_stream_package_names_no_model_internals():
    """Static guard beside the runtime one above: no `.runner` / `.encoder` / `.decoder` in edgeflow/stream/."""
    found = []
    for path in sorted(STREAM_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("runner", "encoder", "decoder"):
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.Constant) and node.value in ("runner", "encoder", "decoder"):
                found.append(f"{path.name}:{node.lineno} {node.value!r}")
    assert not found, found
