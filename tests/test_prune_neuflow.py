"""Structured pruning of the NeuFlow family (the edge default) and distillation (small sizes, few steps)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from test_prune import assert_distilled, convert_pruned

from converters.export import export_onnx
from converters.prune import distill, kept_width, prune_model
from converters.zoo.complexity import count_macs, count_parameters
from converters.zoo.neuflow import NEUFLOW_LITE_CONFIG, NeuFlowNet

#: The default's config, and the other branches of the family: raw 1/8 features in the 1/8
#: estimator (no ``context8``) and the optional 1/4 refinement level.
CONFIGS = {
    "default": NEUFLOW_LITE_CONFIG,
    "raw8-refine4": dataclasses.replace(NEUFLOW_LITE_CONFIG, context8=0, refine4=(32, 16)),
}


def neuflow(config=NEUFLOW_LITE_CONFIG, seed=0):
    torch.manual_seed(seed)
    return NeuFlowNet(config).eval()


def frames(h=64, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g) * 255, torch.rand(1, 3, h, w, generator=g) * 255


def test_pruning_keeps_correlations_and_flow_heads_and_shrinks_the_rest():
    model = neuflow()
    result = prune_model(model, 0.5)
    pruned = result.model
    assert isinstance(pruned, NeuFlowNet)
    after = result.config_after
    assert after["channels"] == [8, 16, 32, 48] and after["context8"] == 16
    assert after["decoder16"] == [48, 32] and after["decoder8"] == [32, 24, 16] and after["context"] == [16, 16, 16]
    assert (after["md16"], after["md8"], after["convs"]) == (4, 2, [1, 2, 4, 4])  # search radii and depth unchanged
    assert count_parameters(pruned) < 0.35 * count_parameters(model)
    assert count_macs(pruned, 64, 96)["total"] < 0.4 * count_macs(model, 64, 96)["total"]
    dec = pruned.decoder
    cost16, cost8 = 81, 25  # (2 * 4 + 1) ** 2 and (2 * 2 + 1) ** 2: never pruned
    assert dec.estimator16.convs[0][0].in_channels == cost16 + 48  # [cost16, f16]
    assert dec.estimator8.convs[0][0].in_channels == cost8 + 16 + 4  # [cost8, context8, up-flow, up-features]
    for head in (dec.estimator16.predict, dec.estimator8.predict, dec.upfeat, list(dec.context.layers)[-1]):
        assert head.out_channels == 2
    captured = {}
    hooks = [corr.register_forward_hook(lambda m, i, o, key=key: captured.update({key: o.shape[1]}))
             for key, corr in (("16", dec.corr16), ("8", dec.corr8))]
    with torch.no_grad():
        flow = pruned(*frames())
    for hook in hooks:
        hook.remove()
    assert flow.shape == (1, 2, 64, 96) and captured == {"16": cost16, "8": cost8}


def _conv_outputs(model, f1, f2):
    seen = {}
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: seen.update({name: o}))
             for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        flow = model(f1, f2)
    for hook in hooks:
        hook.remove()
    return flow, seen


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_pruning_is_exact_when_the_dropped_channels_are_zero(name):
    """Checks every index mapping (concat offsets, context8, the C'/C rescale of both cost volumes)
    layer by layer: with the dropped filters exactly zero, every conv of the pruned network must
    output exactly the kept channels of the original (the kept ones are the last, non-zero ones)."""
    model = neuflow(CONFIGS[name])
    with torch.no_grad():
        for conv in model.modules():
            if isinstance(conv, torch.nn.Conv2d) and conv.out_channels != 2:  # flow heads are never pruned
                drop = conv.out_channels - kept_width(conv.out_channels, 0.5)
                conv.weight[:drop] = 0
                conv.bias[:drop] = 0
    pruned = prune_model(model, 0.5).model
    f1, f2 = frames()
    ref, ref_layers = _conv_outputs(model, f1, f2)
    got, got_layers = _conv_outputs(pruned, f1, f2)
    assert set(ref_layers) == set(got_layers)
    for layer, out in got_layers.items():
        kept = ref_layers[layer][:, -out.shape[1]:]
        rel = float((kept - out).abs().max() / kept.abs().max())
        assert rel < 1e-5, (layer, rel)
    assert torch.allclose(ref, got, atol=1e-5, rtol=1e-5), (ref - got).abs().max()


def test_pruned_model_saves_loads_exports_and_runs_in_onnxruntime(tmp_path):
    from converters.load import save_checkpoint
    from converters.zoo.registry import model_from_checkpoint

    pruned = prune_model(neuflow(), 0.5).model
    save_checkpoint(pruned, tmp_path / "pruned.pt")
    loaded = model_from_checkpoint(torch.load(tmp_path / "pruned.pt", weights_only=True), "pruned.pt")
    assert isinstance(loaded, NeuFlowNet) and loaded.config == pruned.config
    f1, f2 = frames()
    path = tmp_path / "pruned.onnx"
    dyn = {n: {2: "h", 3: "w"} for n in ("frame1", "frame2", "flow")}
    export_onnx(loaded, (f1, f2), path, ["frame1", "frame2"], ["flow"], dyn)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"frame1": f1.numpy(), "frame2": f2.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(out, pruned(f1, f2).numpy(), atol=1e-4)


def test_distillation_trains_a_neuflow_student_on_its_two_scale_pyramid():
    """``distill`` reads ``return_pyramid`` ([flow16, flow8], each in its own pixels) and the 16-pixel
    ``pad_multiple``; a size that is not a multiple of 16 is rounded down to one."""
    teacher = neuflow()
    student = prune_model(teacher, 0.5).model
    with torch.no_grad():
        _, pyramid = student(*frames(), return_pyramid=True)
    assert [p.shape[-1] for p in pyramid] == [96 // 16, 96 // 8]
    before = [p.detach().clone() for p in student.parameters()]
    stats = distill(student, teacher, steps=2, height=72, width=72, batch=2)
    assert_distilled(student, teacher, before, stats, [64, 64])


def test_convert_default_with_prune_and_distillation(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # without bundled default weights, random init warns
        manifest, report = convert_pruned("default", tmp_path / "small")
    assert manifest["valid"] and manifest["pruning"]["ratio"] == 0.5
    finetune = manifest["pruning"]["finetune"]
    assert finetune["steps"] == 1  # at the family's distillation size, not the export size
    assert finetune["resolution"] == [256, 192] and finetune["max_motion"] == 64.0
    assert manifest["model"]["config"]["channels"] == [8, 16, 32, 48]
    rows = {r["name"]: r for r in report["variants"]}
    assert set(rows) == {"fp32", "fp32-pruned50"}
    assert rows["fp32-pruned50"]["params_m"] < 0.35 * rows["fp32"]["params_m"]
    assert rows["fp32-pruned50"]["gmacs"] < rows["fp32"]["gmacs"]
    assert rows["fp32-pruned50"]["file"] == "model.onnx"
