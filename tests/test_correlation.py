"""The correlation op against the naive reference, its gradients, and its ONNX export."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from converters.export import attach_correlation_functions, correlation_nodes, export_onnx
from converters.ops import Correlation, CorrelationAttrs, correlation, correlation_reference
from converters.ops.onnx_function import FORMULATIONS
from edgeflow.errors import EdgeflowError

# (max_displacement, kernel_size, stride1, stride2, pad_size, normalize)
ATTRIBUTE_SETS = [
    (4, 1, 1, 1, None, True),  # PWC-Net
    (4, 1, 1, 2, None, True),  # stride2 = 2
    (20, 1, 1, 2, None, True),  # FlowNetC
    (3, 3, 1, 1, None, True),  # kernel 3
    (2, 1, 2, 1, None, False),  # stride1 = 2, no normalization
    (3, 3, 2, 2, 1, True),  # everything at once, pad smaller than the border
    (0, 1, 1, 1, None, True),  # degenerate: a single displacement
]
SHAPES = [(2, 5, 13, 17), (1, 3, 9, 11)]  # non-multiples of every stride


def _inputs(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def _fits(attrs, shape):
    a = CorrelationAttrs(*attrs)
    try:
        a.out_size(shape[2], shape[3])
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("attrs", ATTRIBUTE_SETS)
@pytest.mark.parametrize("shape", SHAPES + [(1, 4, 45, 50)])
def test_eager_matches_reference_fp32(attrs, shape):
    if not _fits(attrs, shape):
        pytest.skip("input too small for these attributes")
    f1, f2 = _inputs(shape)
    got = correlation(f1, f2, *attrs).numpy()
    ref = correlation_reference(f1.numpy(), f2.numpy(), *attrs)
    assert got.shape == ref.shape
    assert got.shape[1] == CorrelationAttrs(*attrs).out_channels
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("attrs", ATTRIBUTE_SETS[:4])
def test_eager_matches_reference_fp16(attrs):
    shape = (1, 8, 45, 50)
    f1, f2 = _inputs(shape, seed=3)
    got = correlation(f1.half(), f2.half(), *attrs)
    assert got.dtype == torch.float16
    # Reference on the fp16-rounded inputs: only accumulation/output rounding may differ.
    ref = correlation_reference(f1.half().double().numpy(), f2.half().double().numpy(), *attrs)
    np.testing.assert_allclose(got.float().numpy(), ref, rtol=1e-3, atol=2e-3)


def test_output_size_and_channel_order():
    # A single bright pixel in f2 displaced by (+1 row, -2 cols) lights up exactly channel (dy=1, dx=-2).
    f1 = torch.zeros(1, 1, 9, 9)
    f2 = torch.zeros(1, 1, 9, 9)
    f1[0, 0, 4, 4] = 1.0
    f2[0, 0, 5, 2] = 1.0
    out = correlation(f1, f2, max_displacement=3)
    d = 2 * 3 + 1
    assert out.shape == (1, d * d, 9, 9)
    i, j = 1 + 3, -2 + 3
    assert out[0, i * d + j, 4, 4] == 1.0
    assert out.sum() == 1.0


def test_invalid_attributes_raise():
    with pytest.raises(ValueError, match="odd"):
        Correlation(4, kernel_size=2)
    with pytest.raises(ValueError, match="too small"):
        correlation(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), 4, pad_size=0)


@pytest.mark.parametrize("attrs", [(2, 1, 1, 1, None, True), (2, 3, 2, 2, None, True), (2, 1, 1, 2, 1, False)])
def test_gradcheck(attrs):
    f1, f2 = _inputs((1, 2, 7, 8), seed=5)
    f1 = f1.double().requires_grad_()
    f2 = f2.double().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: correlation(a, b, *attrs), (f1, f2), eps=1e-6, atol=1e-5)


class _TwoCorrelations(torch.nn.Module):
    """Two attribute sets in one graph: needs one function body per set (IR-10 overloads)."""

    def __init__(self):
        super().__init__()
        self.a = Correlation(3)
        self.b = Correlation(4, stride2=2, kernel_size=3, pad_size=5)

    def forward(self, x, y):
        return torch.cat([self.a(x, y), self.b(x * 0.5, y)], dim=1)


def _bare_session(path):
    # No edgeflow code registered: the standard-op function body must carry the computation.
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("formulation", FORMULATIONS)
@pytest.mark.parametrize("opset", [17, 18])
def test_export_runs_in_bare_onnxruntime(tmp_path, formulation, opset):
    net = _TwoCorrelations().eval()
    if formulation == "gather":  # its single generic body covers kernel 1 / stride1 1 only
        net.b = Correlation(4, stride2=2)
    x, y = _inputs((1, 6, 24, 32))
    path = tmp_path / "corr.onnx"
    dyn = {"x": {2: "h", 3: "w"}, "y": {2: "h", 3: "w"}}
    result = export_onnx(net, (x, y), path, ["x", "y"], ["out"], dyn, opset=opset, formulation=formulation)
    assert result.correlation_nodes == 2 and len(result.correlation) == 2
    model = onnx.load(str(path))
    assert len(model.functions) == (1 if formulation == "gather" else 2)
    nodes = correlation_nodes(model)
    assert {n.op_type for n in nodes} == {"Correlation"} and {n.domain for n in nodes} == {"edgeflow"}
    assert all(n.domain == "" for f in model.functions for n in f.node), "function bodies use standard ops only"
    sess = _bare_session(path)
    # A different spatial size from the export one: the body is size-agnostic.
    x2, y2 = _inputs((1, 6, 30, 44), seed=9)
    got = sess.run(None, {"x": x2.numpy(), "y": y2.numpy()})[0]
    np.testing.assert_allclose(got, net(x2, y2).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_function_attached_once_per_attribute_set(tmp_path):
    net = torch.nn.ModuleDict()
    x, y = _inputs((1, 3, 16, 16))
    path = tmp_path / "one.onnx"

    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c = Correlation(2)

        def forward(self, a, b):
            return self.c(a, b) + self.c(b, a)

    export_onnx(Twice(), (x, y), path, ["a", "b"], ["o"], expected_correlations=2)
    model = onnx.load(str(path))
    assert len(model.functions) == 1 and model.functions[0].name == "Correlation"
    assert not model.functions[0].overload
    # Re-attaching is idempotent.
    attach_correlation_functions(model)
    assert len(model.functions) == 1
    del net


def test_export_refused_when_the_graph_lacks_correlation_nodes(tmp_path):
    """The guard: a graph with fewer Correlation nodes than correlation calls is never written as valid."""
    x, y = _inputs((1, 3, 16, 16))
    with pytest.raises(EdgeflowError, match="dropped or decomposed"):
        export_onnx(Correlation(2), (x, y), tmp_path / "d.onnx", ["a", "b"], ["o"], exporter="dynamo", expected_correlations=2)
