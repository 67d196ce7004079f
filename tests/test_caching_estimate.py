"""report.json says what feature caching gains for the converted model, measured on its own graphs."""

import json

import numpy as np
import pytest

from converters.caching import caching_estimate, caching_summary
from converters.report import conversion_report_text


def test_report_carries_the_caching_estimate(small_artifact):
    report = json.loads((small_artifact / "report.json").read_text())
    est = report["feature_caching"]
    e, d = est["encoder_ms"], est["decoder_ms"]
    assert e > 0 and d > 0 and est["whole_pair_ms"] > 0
    assert est["cached_ms"] == pytest.approx(e + d)
    assert est["recompute_ms"] == pytest.approx(2 * e + d)
    assert est["gain_bound"] == pytest.approx((2 * e + d) / (e + d))
    assert est["gain_vs_whole_pair"] == pytest.approx(est["whole_pair_ms"] / (e + d))
    # Caching saves one encoder run: never more than 2x over recomputing, never a loss in theory.
    assert 1.0 < est["gain_bound"] < 2.0
    assert 0.0 < est["encoder_share"] < 1.0


def test_estimate_drives_the_split_like_the_runtime(small_artifact):
    """The decoder is fed the encoder outputs by name; a wrong plan would raise, not time garbage."""
    rng = np.random.default_rng(0)
    frames = [rng.uniform(0, 255, (1, 3, 96, 128)).astype(np.float32) for _ in range(2)]
    est = caching_estimate(small_artifact / "model.onnx", small_artifact / "encoder.onnx", small_artifact / "decoder.onnx",
                           *frames, iterations=2, threads=1, warmup=1)
    assert est["iterations"] == 2 and est["threads"] == 1
    line = caching_summary(est)
    assert line.startswith("feature caching: encoder ") and f"{est['gain_bound']:.2f}x" in line


def test_convert_report_has_the_caching_line(small_artifact):
    class Result:
        report = json.loads((small_artifact / "report.json").read_text())

    out = conversion_report_text(Result())
    assert "feature caching: encoder" in out and "whole pair" in out
