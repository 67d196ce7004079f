"""The correlation as a torch.library custom op: every exporter and tracer keeps ONE node.

Issue 13: a user's plain ``torch.onnx.export(model, args, f)`` must work with either exporter, a
``torch.jit.trace`` must keep the op, and ``torch.export`` programs holding it must save, load
and convert. Each test runs the real exporter and the graph in a real onnxruntime session.
"""

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from converters.export import attach_correlation_functions, correlation_nodes, export_onnx
from converters.ops import Correlation, correlation


class _Net(torch.nn.Module):
    """Conv features -> correlation (called twice, two attribute sets) -> flow-like head."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.corr = Correlation(3)
        self.head = torch.nn.Conv2d(49 + 25, 2, 3, padding=1)

    def forward(self, a, b):
        fa, fb = self.conv(a), self.conv(b)
        coarse = correlation(fa[:, :, ::2, ::2], fb[:, :, ::2, ::2], 4, stride2=2)
        up = torch.nn.functional.interpolate(coarse, size=fa.shape[-2:], mode="nearest")
        return self.head(torch.cat([self.corr(fa, fb), up], 1))


def _inputs(h=24, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g), torch.rand(1, 3, h, w, generator=g)


def _run(path, a, b):
    model = onnx.load(str(path))
    attach_correlation_functions(model)  # the plain exporter writes the node; edgeflow adds the body
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, {names[0]: a.numpy(), names[1]: b.numpy()})[0]


@pytest.mark.parametrize("dynamo", [False, True])
def test_plain_torch_onnx_export_keeps_one_node_per_call(tmp_path, dynamo):
    net = _Net().eval()
    a, b = _inputs()
    path = tmp_path / "plain.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (a, b), str(path), dynamo=dynamo)
    nodes = correlation_nodes(onnx.load(str(path)))
    assert len(nodes) == 2
    assert all(n.domain == "edgeflow" and n.op_type == "Correlation" for n in nodes)
    with torch.no_grad():
        want = net(a, b).numpy()
    np.testing.assert_allclose(_run(path, a, b), want, rtol=1e-4, atol=1e-4)


def test_jit_trace_keeps_the_op_and_exports_it(tmp_path):
    net = _Net().eval()
    a, b = _inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, (a, b))
    graph = str(traced.inlined_graph)
    assert graph.count("edgeflow::correlation") == 2
    torch.jit.save(traced, str(tmp_path / "t.pt"))
    reloaded = torch.jit.load(str(tmp_path / "t.pt"))
    result = export_onnx(reloaded, (a, b), tmp_path / "t.onnx", ["a", "b"], ["o"])
    assert result.correlation_nodes == 2
    with torch.no_grad():
        want = net(a, b).numpy()
    np.testing.assert_allclose(_run(tmp_path / "t.onnx", a, b), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_torch_export_program_saves_loads_and_exports(tmp_path, exporter):
    net = _Net().eval()
    a, b = _inputs()
    program = torch.export.export(net, (a, b))
    targets = [n.target for n in program.graph.nodes if n.op == "call_function"]
    assert targets.count(torch.ops.edgeflow.correlation.default) == 2
    torch.export.save(program, str(tmp_path / "m.pt2"))
    module = torch.export.load(str(tmp_path / "m.pt2")).module()
    # torch.export modules refuse .train()/.eval() (issue 13's traceback); export_onnx copes.
    result = export_onnx(module, (a, b), tmp_path / "m.onnx", ["a", "b"], ["o"], exporter=exporter)
    assert result.correlation_nodes == 2
    with torch.no_grad():
        want = net(a, b).numpy()
    np.testing.assert_allclose(_run(tmp_path / "m.onnx", a, b), want, rtol=1e-4, atol=1e-4)


def test_custom_op_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(3)
    f1 = torch.randn(1, 2, 5, 6, dtype=torch.float64, generator=g, requires_grad=True)
    f2 = torch.randn(1, 2, 5, 6, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: correlation(x, y, 2, stride2=2, normalize=False), (f1, f2))


def test_fake_kernel_gives_the_output_shape_without_computing():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        f = torch.empty(2, 16, 30, 41)
        out = torch.ops.edgeflow.correlation(f, f, 4, 3, 2, 2, 4, True)
    assert tuple(out.shape) == (2, 25, 14, 20)  # out_size: ceil((30 + 8 - 2*5) / 2), ceil((41 - 2) / 2)
