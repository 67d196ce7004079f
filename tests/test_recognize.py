"""Recognizers: each third-party correlation API in a small random model is swapped for edgeflow's
op, verified layer by layer, exported with one Correlation node per call, and the ONNX graph
matches the ORIGINAL model. Stand-ins for uninstallable packages: tests/byo_layers.py."""

import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch

from converters.export import export_onnx
from converters.recognize import declare, parse_declaration, recognize
from edgeflow.errors import EdgeflowError
import byo_layers as L

H, W = 24, 32


def _frames(seed=0, h=H, w=W):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g) * 255, torch.rand(1, 3, h, w, generator=g) * 255


def _onnx_run(path, a, b):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"a": a.numpy(), "b": b.numpy()})[0]


def _assert_exports_like(model, rec, path, frames, nodes):
    """Export the recognized copy: ``nodes`` Correlation nodes, and the graph computes what ``model`` does."""
    a, b = frames
    assert export_onnx(rec.module, (a, b), path, ["a", "b"], ["flow"]).correlation_nodes == nodes
    with torch.no_grad():
        want = model(a, b).numpy()
    np.testing.assert_allclose(_onnx_run(path, a, b), want, rtol=1e-4, atol=1e-4)


CASES = {
    # name: (layer, output channels, lite stride, expected api, expected attrs subset)
    "sampler": (lambda: L.SpatialCorrelationSampler(1, 9, 1, 0, 1), 81, None, "spatial-correlation-sampler", {"max_displacement": 4, "normalize": 0}),
    "sampler-dilated": (lambda: L.SpatialCorrelationSampler(1, 7, 1, 0, 1, dilation_patch=2), 49, None, "spatial-correlation-sampler", {"max_displacement": 6, "stride2": 2}),
    "sampler-kernel-stride-pad": (lambda: L.SpatialCorrelationSampler(3, 5, 2, 1), 25, None, "spatial-correlation-sampler", {"kernel_size": 3, "stride1": 2, "pad_size": 3}),
    "ptlflow-iter": (lambda: L.IterSpatialCorrelationSampler(1, 9, 1, 0), 81, None, "PTLFlow IterSpatialCorrelationSampler", {"max_displacement": 4}),
    "localcorr": (lambda: L.TritonSpatialCorrelationSampler(1, 9, 1, 0, 1, 1), 81, None, "localcorr", {"max_displacement": 4}),
    "mmcv": (lambda: L.Correlation(max_displacement=3, dilation_patch=2), 49, None, "mmcv Correlation", {"max_displacement": 6, "stride2": 2}),
    "flownet2": (lambda: L.FlowNet2Correlation(pad_size=6, kernel_size=1, max_displacement=6, stride1=1, stride2=2), 49, None, "flownet2 Correlation", {"max_displacement": 6, "normalize": 1}),
    "flownet2-kernel3": (lambda: L.FlowNet2Correlation(pad_size=3, kernel_size=3, max_displacement=2, stride1=2, stride2=1), 25, None, "flownet2 Correlation", {"kernel_size": 3, "stride1": 2}),
    "cupy-pwc": (lambda: L.ModuleCorrelation(), 81, None, "cupy ModuleCorrelation (PWC-Net)", {"max_displacement": 4}),
    "cupy-liteflownet": (lambda: L.LiteModuleCorrelation(), 49, 2, "cupy ModuleCorrelation (LiteFlowNet)", {"max_displacement": 6, "stride1": 2}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_api_is_swapped_verified_and_exported(tmp_path, case):
    make, channels, stride, api, attrs = CASES[case]
    torch.manual_seed(0)
    model = L.TinyFlow(make(), channels, stride).eval()
    a, b = _frames()
    rec = recognize(model, (a, b))
    assert [layer.status for layer in rec.layers] == ["replaced"], rec.lines()
    layer = rec.layers[0]
    assert layer.api == api and layer.calls == 1 and layer.max_abs < 1e-3
    assert attrs.items() <= layer.attrs.as_onnx_attributes().items()
    assert "replaced corr" in rec.lines()[0]
    assert type(model.corr).__module__ == L.__name__, "the user's model is never modified"
    result = export_onnx(rec.module, (a, b), tmp_path / "m.onnx", ["a", "b"], ["flow"],
                         {"a": {2: "h", 3: "w"}, "b": {2: "h", 3: "w"}})
    assert result.correlation_nodes == 1
    # The graph against the ORIGINAL model, at the export size and at a second one.
    for h, w in ((H, W), (40, 56)):
        x, y = _frames(1, h, w)
        with torch.no_grad():
            want = model(x, y).numpy()
        np.testing.assert_allclose(_onnx_run(tmp_path / "m.onnx", x, y), want, rtol=1e-4, atol=1e-4)


def test_functional_forms_are_patched_only_in_the_copy(tmp_path):
    model = L.FunctionalSampler().eval()
    a, b = _frames()
    rec = recognize(model, (a, b))
    assert sorted(layer.path.rsplit(".", 1)[1] for layer in rec.replaced) == ["FunctionCorrelation", "spatial_correlation_sample"]
    assert L.spatial_correlation_sample.__module__ == L.__name__ and not hasattr(L.spatial_correlation_sample, "_edgeflow")
    _assert_exports_like(model, rec, tmp_path / "f.onnx", (a, b), nodes=2)


def test_original_that_cannot_run_here_is_swapped_unverified():
    L.CudaOnly.enabled = True
    try:
        model = L.TinyFlow(L.ModuleCorrelation(), 81).eval()
        rec = recognize(model, _frames())
    finally:
        L.CudaOnly.enabled = False
    (layer,) = rec.layers
    assert layer.status == "unverified" and "could not run here" in layer.line()
    with torch.no_grad():
        out = rec.module(*_frames())
    assert out.shape == (1, 2, H, W)


def test_unsupported_parameters_keep_the_layer_with_the_reason():
    model = L.TinyFlow(L.SpatialCorrelationSampler(1, 4, 1, 0), 16).eval()  # even patch
    rec = recognize(model, _frames())
    (layer,) = rec.layers
    assert layer.status == "skipped" and "patch_size=4" in layer.line()
    assert rec.module is model


def test_wrong_mapping_is_caught_by_the_numeric_check(monkeypatch):
    """If a mapping were wrong, the layer-by-layer check refuses the swap instead of exporting it."""
    from converters.recognize import apis

    real = apis.sampler_attrs
    monkeypatch.setattr(apis, "sampler_module", lambda obj, api: apis.Mapping(api, real(1, 9, 1, 0, 1, 2), True))
    model = L.TinyFlow(L.SpatialCorrelationSampler(1, 9, 1, 0), 81).eval()
    rec = recognize(model, _frames())
    (layer,) = rec.layers
    assert layer.status == "skipped" and "differs from the original" in layer.reason


def test_escape_hatch_declares_a_hand_written_layer(tmp_path):
    model = L.HandWrittenFlow().eval()
    a, b = _frames()
    rec = declare(model, "matcher", (a, b), max_displacement=3)
    assert rec.layers[0].status == "replaced" and rec.layers[0].api == "declared"
    _assert_exports_like(model, rec, tmp_path / "h.onnx", (a, b), nodes=1)


def test_escape_hatch_refuses_wrong_attributes_and_paths():
    model = L.HandWrittenFlow().eval()
    with pytest.raises(EdgeflowError, match="differs from the original"):
        declare(model, "matcher", _frames(), max_displacement=3, normalize=False)
    with pytest.raises(EdgeflowError, match="no module at that path"):
        declare(model, "decoder.matcher", _frames(), max_displacement=3)


def test_parse_declaration():
    assert parse_declaration("dec.corr:max_displacement=4,stride2=2,normalize=0,output=5d") == (
        "dec.corr", {"max_displacement": 4, "stride2": 2, "normalize": False, "output": "5d"})
    for bad in ("dec.corr", "dec.corr:stride2=2", "dec.corr:max_displacement=x", "dec.corr:md=4"):
        with pytest.raises(EdgeflowError):
            parse_declaration(bad)


def _traced(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(model, _frames())


def test_trace_of_a_third_party_layer_is_rewritten_to_the_op(tmp_path):
    """The trace keeps the submodule (class name, traced methods): its body is replaced and checked."""
    model = L.TinyFlow(L.IterSpatialCorrelationSampler(1, 7, 1, 0, 1, dilation_patch=2), 49).eval()
    traced = _traced(model)
    rec = recognize(traced, _frames())
    (layer,) = rec.layers
    assert layer.status == "replaced" and layer.attrs.max_displacement == 6 and layer.attrs.stride2 == 2, rec.lines()
    assert "edgeflow::correlation" not in str(traced.inlined_graph), "the loaded trace itself is untouched"
    a, b = _frames()
    _assert_exports_like(model, rec, tmp_path / "t.onnx", (a, b), nodes=1)


def test_trace_whose_layer_cannot_be_matched_warns_that_it_lost_the_correlation():
    model = L.TinyFlow(L.IterSpatialCorrelationSampler(1, 4, 1, 0), 16).eval()  # even patch: no edgeflow equivalent
    traced = _traced(model)
    rec = recognize(traced, _frames())
    assert rec.module is traced and rec.layers == [] and len(rec.warnings) == 1
    assert "trace lost the correlation" in rec.warnings[0] and "--trust-pickle" in rec.warnings[0]


class _TwoCalls(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.corr = L.IterSpatialCorrelationSampler(1, 5, 1, 0, 1, dilation_patch=2)

    def forward(self, a, b):
        fa, fb = self.features(a), self.features(b)
        return self.corr(fa, fb).flatten(1, 2).mean(1, keepdim=True) + self.corr(fb, fa).flatten(1, 2).amax(1, keepdim=True)


def test_pt2_program_groups_are_recognized_by_their_module_stack(tmp_path):
    """torch.export inlines the sampler into aten ops; each call is found, checked and replaced."""
    model = _TwoCalls().eval()
    a, b = _frames()
    torch.export.save(torch.export.export(model, (a, b)), str(tmp_path / "m.pt2"))
    program = torch.export.load(str(tmp_path / "m.pt2")).module()
    rec = recognize(program, (a, b))
    assert [layer.status for layer in rec.layers] == ["replaced", "replaced"], rec.lines()
    assert {layer.attrs.stride2 for layer in rec.layers} == {2} and "call 2" in rec.layers[1].path
    _assert_exports_like(model, rec, tmp_path / "m.onnx", (a, b), nodes=2)


class _FunctionalLoop(torch.nn.Module):
    """The functional form called in a loop from one source line, post-processed on that line."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, a, b):
        fa, fb = self.features(a), self.features(b)
        costs = []
        for f1, f2 in ((fa, fb), (fa[:, :, ::2, ::2], fb[:, :, ::2, ::2])):
            costs.append(L.spatial_correlation_sample(f1, f2, kernel_size=1, patch_size=5, dilation_patch=2).flatten(1, 2) / 8)
        return costs[0].mean(1, keepdim=True) + torch.nn.functional.interpolate(costs[1], size=a.shape[-2:]).amax(1, keepdim=True)


def test_pt2_functional_calls_are_recognized_by_their_source_line(tmp_path):
    """A function leaves no module in the .pt2; its calls are found from the nodes' recorded
    source line, one per connected piece (two calls from one loop line), and checked numerically."""
    model = _FunctionalLoop().eval()
    a, b = _frames()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.export.save(torch.export.export(model, (a, b)), str(tmp_path / "m.pt2"))
        program = torch.export.load(str(tmp_path / "m.pt2")).module()
    rec = recognize(program, (a, b))
    assert [layer.status for layer in rec.layers] == ["replaced", "replaced"], rec.lines()
    assert all(layer.attrs.stride2 == 2 and layer.attrs.max_displacement == 4 for layer in rec.layers)
    assert "spatial_correlation_sample()" in rec.layers[0].path and "call 2" in rec.layers[1].path
    _assert_exports_like(model, rec, tmp_path / "m.onnx", (a, b), nodes=2)
