"""Shared fixtures: one small real conversion reused by every test that needs an artifact."""

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def small_artifact(tmp_path_factory):
    """pwc-lite converted at 96x128 (bundled weights when shipped), with encoder/decoder graphs."""
    pytest.importorskip("torch")
    from converters.convert import CheckOptions, ConvertJob, ConvertOptions, ExportOptions

    out = tmp_path_factory.mktemp("artifacts") / "pwc-lite-small"
    result = ConvertJob(ConvertOptions("pwc-lite", out=out, export=ExportOptions(height=96, width=128),
                                       check=CheckOptions(parity_pairs=1, latency_iterations=1))).run()
    assert result.valid
    return out
