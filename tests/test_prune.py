"""Structured pruning of the PWC family and distillation fine-tuning (small sizes, few steps)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from converters.export import export_onnx
from converters.prune import distill, kept_width, prune_model
from converters.zoo import build_model
from converters.zoo.complexity import count_macs, count_parameters
from edgeflow.errors import EdgeflowError


def lite():
    torch.manual_seed(0)
    return build_model("pwc-lite").eval()


def frames(h=64, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g) * 255, torch.rand(1, 3, h, w, generator=g) * 255


def test_kept_width_rounds_to_simd_friendly_sizes():
    assert [kept_width(c, 0.5) for c in (16, 32, 48, 96, 128)] == [8, 16, 24, 48, 64]
    assert kept_width(8, 0.5) == 4 and kept_width(3, 0.9) == 1 and kept_width(64, 0.01) == 64


def test_pruning_keeps_correlation_channels_and_concatenations():
    model = lite()
    result = prune_model(model, 0.5)
    pruned = result.model
    assert result.config_after["pyramid_channels"] == [8, 16, 32, 48, 64]
    assert count_parameters(pruned) < 0.35 * count_parameters(model)
    assert count_macs(pruned, 64, 96)["total"] < 0.4 * count_macs(model, 64, 96)["total"]
    cost = 81
    for corr in pruned.decoder.correlations:
        assert corr.out_channels == cost  # (2 * 4 + 1) ** 2, never pruned
    levels = len(pruned.decoder.estimators)
    for i, est in enumerate(pruned.decoder.estimators):
        feat = result.config_after["pyramid_channels"][pruned.config.output_level - 1 + levels - 1 - i]
        expected = cost if i == 0 else cost + feat + 4  # [cost, frame-1 features, up-flow, up-features]
        assert est.convs[0][0].in_channels == expected
        assert est.predict.out_channels == 2
    with torch.no_grad():
        captured = {}
        hook = pruned.decoder.correlations[-1].register_forward_hook(lambda m, i, o: captured.setdefault("out", o))
        flow = pruned(*frames())
        hook.remove()
    assert flow.shape == (1, 2, 64, 96) and captured["out"].shape[1] == cost


def _zero_dropped_channels(model, ratio):
    """Make the channels pruning will drop exactly zero, so pruning must be lossless."""
    convs = []
    for level in model.encoder.levels:
        convs += [block[0] for block in level]
    for est in model.decoder.estimators:
        convs += [block[0] for block in est.convs]
    convs += [block[0] for block in list(model.decoder.context.layers)[:-1]]
    with torch.no_grad():
        for conv in convs:
            drop = conv.out_channels - kept_width(conv.out_channels, ratio)
            conv.weight[:drop] = 0
            conv.bias[:drop] = 0


def test_pruning_is_exact_when_the_dropped_channels_are_zero():
    """Checks every index mapping (concat offsets, correlation re-normalization) end to end."""
    model = lite()
    _zero_dropped_channels(model, 0.5)
    pruned = prune_model(model, 0.5).model
    f1, f2 = frames()
    with torch.no_grad():
        ref, got = model(f1, f2), pruned(f1, f2)
    assert torch.allclose(ref, got, atol=1e-4, rtol=1e-4), (ref - got).abs().max()


def test_pruned_model_exports_and_runs_in_onnxruntime(tmp_path):
    pruned = prune_model(lite(), 0.5).model
    f1, f2 = frames()
    path = tmp_path / "pruned.onnx"
    dyn = {n: {2: "h", 3: "w"} for n in ("frame1", "frame2", "flow")}
    result = export_onnx(pruned, (f1, f2), path, ["frame1", "frame2"], ["flow"], dyn)
    assert result.correlation_nodes == 4
    model = onnx.load(str(path))
    assert sum(n.op_type == "Correlation" for n in model.graph.node) == 4
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"frame1": f1.numpy(), "frame2": f2.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(out, pruned(f1, f2).numpy(), atol=1e-3)


def test_distillation_moves_the_student_towards_the_teacher():
    teacher = lite()
    student = prune_model(teacher, 0.5).model
    before = [p.detach().clone() for p in student.parameters()]
    stats = distill(student, teacher, steps=2, height=64, width=64, batch=2)
    assert_distilled(student, teacher, before, stats, [64, 64])


def assert_distilled(student, teacher, before, stats, resolution):
    """Two steps ran and moved the student; trained with the fast training-only correlation, both
    models are handed back with the exportable op (the caller's teacher is never swapped)."""
    from converters.ops import Correlation

    assert stats["steps"] == 2 and np.isfinite(stats["final_loss"]) and stats["resolution"] == resolution
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))
    assert not student.training
    for model in (student, teacher):
        kinds = {type(m).__name__ for m in model.modules() if "Correlation" in type(m).__name__}
        assert kinds == {Correlation.__name__}, kinds


def test_bad_requests_are_clean_errors():
    with pytest.raises(EdgeflowError, match="--prune"):
        prune_model(lite(), 1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = build_model("flownetc-s")
    with pytest.raises(EdgeflowError, match="PWC family"):
        prune_model(other, 0.5)


def convert_pruned(name: str, out) -> tuple[dict, dict]:
    """``edgeflow convert NAME --prune 0.5 --finetune-steps 1`` at 64x64 through the CLI; (manifest, report)."""
    from edgeflow.cli import main

    code = main(["convert", name, "--height", "64", "--width", "64", "--prune", "0.5", "--finetune-steps", "1",
                 "--no-split", "--parity-pairs", "1", "--latency-iterations", "2", "--quiet", "--out", str(out)])
    assert code == 0
    return json.loads((out / "manifest.json").read_text()), json.loads((out / "report.json").read_text())


def test_convert_with_prune_reports_before_and_after(tmp_path):
    manifest, report = convert_pruned("pwc-lite", tmp_path / "small")
    assert manifest["valid"] and manifest["pruning"]["ratio"] == 0.5
    assert manifest["model"]["config"]["pyramid_channels"] == [8, 16, 32, 48, 64]
    rows = {r["name"]: r for r in report["variants"]}
    assert set(rows) == {"fp32", "fp32-pruned50"}
    assert rows["fp32-pruned50"]["params_m"] < 0.35 * rows["fp32"]["params_m"]
    assert rows["fp32-pruned50"]["gmacs"] < rows["fp32"]["gmacs"]
    for row in rows.values():
        assert row["latency"]["median_ms"] > 0 and row["epe_vs_gt"] is not None and row["size_mb"] > 0
    assert rows["fp32-pruned50"]["file"] == "model.onnx" and rows["fp32"]["file"] is None
