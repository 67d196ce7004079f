"""``F.scaled_dot_product_attention`` through the dynamo exporter, i.e. through a ``.pt2``.

Flow models use attention for global matching (NeuFlow: 3-D ``(B, L, E)`` queries); torch's own
ONNX function takes 4-D inputs only, so PTLFlow's neuflow saved as ``.pt2`` failed to convert
(``only 4D query, key, and value are supported``). converters.export registers a translation
for every rank; these tests check it numerically against PyTorch in a bare onnxruntime session
and run a ``.pt2`` with a correlation layer and 3-D attention through ``edgeflow convert``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
import byo_layers as L  # noqa: E402

from converters.convert import CheckOptions, ConvertJob, ConvertOptions, ExportOptions  # noqa: E402
from converters.export import export_onnx  # noqa: E402


class Attention(torch.nn.Module):
    """Global matching in miniature: frame-1 features attend over frame-2 features."""

    def __init__(self, rank: int = 3, mask: str | None = None, causal: bool = False, scale: float | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.features = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Conv2d(8, 2, 1)
        self.rank, self.mask, self.causal, self.scale = rank, mask, causal, scale

    def forward(self, a, b):
        fa, fb = self.features(a / 255.0), self.features(b / 255.0)
        n, c, h, w = fa.shape
        q, k = fa.flatten(2).transpose(1, 2), fb.flatten(2).transpose(1, 2)  # (B, L, E)
        if self.rank == 5:  # (B, 1, 2, L, E/2): two "heads" behind an extra batch axis
            q, k = (t.reshape(n, h * w, 2, c // 2).permute(0, 2, 1, 3).unsqueeze(1) for t in (q, k))
        mask = None
        if self.mask == "float":
            mask = torch.linspace(-1.0, 0.0, h * w).expand(h * w, h * w)
        elif self.mask == "bool":
            mask = torch.ones(h * w, h * w, dtype=torch.bool).triu(-3)
        out = F.scaled_dot_product_attention(q, k, k, attn_mask=mask, is_causal=self.causal, scale=self.scale)
        if self.rank == 5:
            out = out.squeeze(1).permute(0, 2, 1, 3).reshape(n, h * w, c)
        return self.head(out.transpose(1, 2).reshape(n, c, h, w))


def _pt2_module(model, x, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.export.save(torch.export.export(model, (x, x.flip(-1))), str(tmp_path / "m.pt2"))
        return torch.export.load(str(tmp_path / "m.pt2")).module()


@pytest.mark.parametrize("kwargs", [dict(), dict(causal=True), dict(mask="float"), dict(mask="bool"),
                                    dict(scale=0.05), dict(rank=5)], ids=str)
def test_attention_of_any_rank_exports_from_a_pt2_and_matches_pytorch(kwargs, tmp_path):
    model = Attention(**kwargs).eval()
    x = torch.rand(1, 3, 12, 16) * 255
    module = _pt2_module(model, x, tmp_path)
    export_onnx(module, (x, x.flip(-1)), tmp_path / "m.onnx", ["frame1", "frame2"], ["flow"],
                exporter="dynamo", expected_correlations=0)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"frame1": x.numpy(), "frame2": x.flip(-1).numpy()})[0]
    with torch.no_grad():
        want = model(x, x.flip(-1)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


class CorrAndAttention(torch.nn.Module):
    """A local correlation (spatial-correlation-sampler) and 3-D attention, as NeuFlow has both."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.flow = L.TinyFlow(L.SpatialCorrelationSampler(1, 5, 1, 0, 1), 25)
        self.attention = Attention()

    def forward(self, a, b):
        return self.flow(a, b) + self.attention(a, b)


def test_pt2_with_attention_and_a_correlation_converts(tmp_path):
    x = torch.rand(1, 3, 48, 64) * 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.export.save(torch.export.export(CorrAndAttention().eval(), (x, x.clone())), str(tmp_path / "m.pt2"))
    result = ConvertJob(ConvertOptions(model=str(tmp_path / "m.pt2"), out=tmp_path / "art", force=True,
                                       export=ExportOptions(height=48, width=64, pad_multiple=8),
                                       check=CheckOptions(parity_pairs=1, latency_iterations=1))).run()
    assert result.valid
    assert [layer["status"] for layer in result.manifest["recognition"]["layers"]] == ["replaced"]
    assert all(p["passed"] for p in result.parity.values()) and len(result.parity) == 2
