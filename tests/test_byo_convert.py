"""`edgeflow convert` on a user's own model: recognized layers, parity against the original at two
sizes, traces fixed to their size, input conventions honoured by the runtime, slowest ops."""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
import byo_layers as L  # noqa: E402

from converters.byo import InputOptions  # noqa: E402
from converters.convert import CheckOptions, ConvertJob, ConvertOptions, ExportOptions  # noqa: E402
from edgeflow.errors import EdgeflowError  # noqa: E402
from edgeflow.preprocess import Conventions  # noqa: E402

FAST = dict(check=CheckOptions(parity_pairs=1, latency_iterations=1), force=True)


def test_pickled_model_with_a_sampler_converts_with_its_correlation(tmp_path):
    torch.manual_seed(0)
    model = L.TinyFlow(L.SpatialCorrelationSampler(1, 7, 1, 0, 1, dilation_patch=2), 49).eval()
    torch.save(model, tmp_path / "m.pt")
    result = ConvertJob(ConvertOptions(model=str(tmp_path / "m.pt"), out=tmp_path / "art", trust_pickle=True,
                                       export=ExportOptions(height=48, width=64, pad_multiple=8), **FAST)).run()
    assert result.valid
    (layer,) = result.manifest["recognition"]["layers"]
    assert layer["status"] == "replaced" and layer["attrs"]["stride2"] == 2 and layer["attrs"]["max_displacement"] == 6
    assert result.manifest["correlation"] == [layer["attrs"]]
    assert set(result.parity) == {"model", "model@48x36"} and all(p["passed"] for p in result.parity.values())
    ops = result.report["slowest_ops"]["ops"]
    assert any(op["op_type"] == "Correlation" for op in ops) and abs(sum(op["share"] for op in ops) + result.report["slowest_ops"]["rest"]["share"] - 1) < 1e-6


class _SizeBaked(torch.nn.Module):
    """Python ints from the input's shape: a trace bakes them, as many flow models' pads/grids do."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(6, 2, 3, padding=1)

    def forward(self, a, b):
        h, w = int(a.shape[2]), int(a.shape[3])
        small = self.conv(torch.cat([a, b], 1) / 255.0)[:, :, ::2, ::2]
        return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


def _trace(tmp_path, h, w):
    x = torch.rand(1, 3, h, w) * 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(_SizeBaked().eval(), (x, x))
        torch.jit.save(traced, str(tmp_path / "trace.pt"))
    return tmp_path / "trace.pt"


def test_trace_recorded_at_one_size_and_converted_at_another_fails_loudly(tmp_path):
    path = _trace(tmp_path, 40, 48)
    with pytest.raises(EdgeflowError, match="recorded at another size"):
        ConvertJob(ConvertOptions(model=str(path), out=tmp_path / "art", export=ExportOptions(height=56, width=64, pad_multiple=1), **FAST)).run()
    assert not (tmp_path / "art").exists()


def test_trace_converts_at_its_own_size_with_static_axes(tmp_path):
    path = _trace(tmp_path, 40, 48)
    result = ConvertJob(ConvertOptions(model=str(path), out=tmp_path / "art", export=ExportOptions(height=40, width=48, pad_multiple=1), **FAST)).run()
    assert result.valid and result.manifest["recognition"]["static_shape"]
    assert result.manifest["inputs"][0]["shape"] == [1, 3, 40, 48], "a trace never gets dynamic axes"
    import edgeflow

    model = edgeflow.load(str(tmp_path / "art"))
    flow = model.infer(np.zeros((30, 40, 3), np.uint8), np.zeros((30, 40, 3), np.uint8))  # resized to 48x40
    assert flow.shape == (30, 40, 2)


class _StackedBgrUnit(torch.nn.Module):
    """Takes one (B, 2, 3, H, W) tensor, BGR, 0..1, normalized by mean/std; returns {"flows": (B, 1, 2, H, W)}."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(6, 2, 3, padding=1)

    def forward(self, images):
        return {"flows": self.conv(images.flatten(1, 2)).unsqueeze(1)}


def test_input_conventions_recorded_and_applied_by_the_runtime(tmp_path):
    torch.manual_seed(0)
    model = _StackedBgrUnit().eval()
    torch.save(model, tmp_path / "m.pt")
    opts = ConvertOptions(model=str(tmp_path / "m.pt"), out=tmp_path / "art", trust_pickle=True,
                          export=ExportOptions(height=32, width=40, pad_multiple=8),
                          inputs=InputOptions(layout="stacked", input_range="0-1", color_order="BGR",
                                              mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3)), **FAST)
    result = ConvertJob(opts).run()
    pre = json.loads((tmp_path / "art" / "manifest.json").read_text())["preprocessing"]
    assert pre["color_order"] == "BGR" and pre["input_range"] == [0, 1] and pre["model_input"] == "stacked"
    assert pre["mean"] == [0.4, 0.5, 0.6] and pre["std"] == [0.2, 0.25, 0.3] and result.valid
    import edgeflow

    rng = np.random.default_rng(5)
    f1, f2 = (rng.integers(0, 256, (32, 40, 3), dtype=np.uint8) for _ in range(2))
    got = edgeflow.load(str(tmp_path / "art")).infer(f1, f2)

    def by_hand(frame):  # what the model's authors feed it
        x = frame[:, :, ::-1].astype(np.float32) / 255.0
        x = (x - np.array([0.4, 0.5, 0.6], np.float32)) / np.array([0.2, 0.25, 0.3], np.float32)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]

    with torch.no_grad():
        want = model(torch.stack([by_hand(f1), by_hand(f2)], 1))["flows"][0, 0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conventions_numpy():
    x = np.full((1, 3, 2, 2), 255.0, np.float32)
    x[0, 0] = 0
    out = Conventions("BGR", (0.0, 1.0), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)).apply(x.copy())
    assert out[0, 0, 0, 0] == 1.0 and out[0, 2, 0, 0] == -1.0  # R (0) moved to the last channel
    assert Conventions.from_preprocessing({}).identity


def test_trace_of_a_sampler_model_converts_with_its_correlation(tmp_path):
    """The trace route end to end: the rewritten trace (not a wrapper around it) is exported."""
    torch.manual_seed(0)
    model = L.TinyFlow(L.IterSpatialCorrelationSampler(1, 5, 1, 0), 25).eval()
    x = torch.rand(1, 3, 40, 48) * 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(model, (x, x.clone())), str(tmp_path / "t.pt"))
    result = ConvertJob(ConvertOptions(model=str(tmp_path / "t.pt"), out=tmp_path / "art", export=ExportOptions(height=40, width=48), **FAST)).run()
    assert result.valid and result.manifest["recognition"]["static_shape"]
    assert [layer["status"] for layer in result.manifest["recognition"]["layers"]] == ["replaced"]
    assert len(result.manifest["correlation"]) == 1 and result.manifest["inputs"][0]["shape"] == [1, 3, 40, 48]


class _BakedConcat(torch.nn.Module):
    """Eager code that computes a size in Python: exported with dynamic axes, the graph cannot even
    run at another size (Concat of mismatched shapes)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(7, 2, 3, padding=1)

    def forward(self, a, b):
        h, w = int(a.shape[2]), int(a.shape[3])
        return self.conv(torch.cat([a / 255.0, b / 255.0, torch.ones(1, 1, h, w)], 1))


def test_graph_that_fails_at_the_second_size_is_exported_static(tmp_path):
    torch.manual_seed(0)
    torch.save(_BakedConcat().eval(), tmp_path / "m.pt")
    result = ConvertJob(ConvertOptions(model=str(tmp_path / "m.pt"), out=tmp_path / "art", trust_pickle=True,
                                       export=ExportOptions(height=48, width=64, pad_multiple=8), **FAST)).run()
    assert result.valid and result.manifest["recognition"]["static_shape"]
    assert result.manifest["inputs"][0]["shape"] == [1, 3, 48, 64], "no dynamic axes the graph cannot honour"
    assert any("exported for 64x48 only" in note for note in result.manifest["recognition"]["notes"])
