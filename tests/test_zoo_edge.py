"""Issue 14's edge candidates (NeuFlow-, RAPIDFlow-, FastFlowNet-style) and the `default` name:
split exactness, batching, loss-compatible pyramids, gradients, INT8-friendly ops, ONNX export
with dynamic size matching eager PyTorch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from converters.train.loss import PWC_ALPHAS, multiscale_loss
from converters.zoo import MODELS, RandomWeightsWarning, build_model, correlation_attributes, get_model
from converters.zoo.complexity import count_macs, count_parameters
from zoo_checks import frames, load_models, whole_and_split

torch.set_num_threads(1)
NAMES = ["neuflow-lite", "rapid-lite", "fastflow-lite", "default"]


@pytest.fixture(scope="module")
def models():
    return load_models(NAMES, pretrained=False)


@pytest.mark.parametrize("name", NAMES)
def test_split_is_exact_and_batches_agree(models, name):
    model = models[name]
    f1, f2 = frames(96, 160, batch=2)
    flow, split = whole_and_split(model, f1, f2)
    with torch.no_grad():
        single = model(f1[1:], f2[1:])
    assert flow.shape == (2, 2, 96, 160) and torch.isfinite(flow).all()
    torch.testing.assert_close(split, flow, rtol=0, atol=0)
    torch.testing.assert_close(flow[1:], single, rtol=1e-4, atol=1e-4)
    assert model.pad_multiple <= 32
    feats = model.encoder(f1)
    assert [f.shape[1] for f in feats] == list(model.encoder.feature_channels)
    assert [96 // f.shape[2] for f in feats] == list(model.encoder.feature_strides)


@pytest.mark.parametrize("name", NAMES)
def test_pyramid_feeds_the_loss_and_every_parameter_learns(name):
    model = build_model(name).train()
    f1, f2 = frames(64, 96)
    flow, pyramid = model(f1, f2, return_pyramid=True)
    for level in pyramid:
        assert 64 // level.shape[-2] in PWC_ALPHAS
    target = torch.randn(1, 2, 64, 96)
    multiscale_loss(flow, pyramid, target).total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing[:5]


@pytest.mark.parametrize("name", NAMES)
def test_int8_friendly_ops_only(models, name):
    """ReLU family only: no GELU / sigmoid / softmax that would have to stay float."""
    kinds = {type(m).__name__ for m in models[name].modules()}
    assert not kinds & {"GELU", "SiLU", "Sigmoid", "Softmax", "Tanh", "LayerNorm", "BatchNorm2d"}
    assert "ReLU" in kinds and correlation_attributes(models[name])


def test_candidates_need_far_fewer_macs_than_pwc_lite(models):
    """The 3x latency goal is measured by benchmarks/bench_default_candidates.py (not a timed test);
    here only the MAC budget that makes it possible: at least 2.5x fewer than pwc-lite at 320x256."""
    reference = count_macs(build_model("pwc-lite"), 256, 320)["total"]
    for name, model in models.items():
        macs = count_macs(model, 256, 320)["total"]
        assert macs * 2.5 < reference, name
        assert count_parameters(model) < 1.5e6


@pytest.mark.parametrize("name", NAMES)
def test_exports_with_dynamic_size(models, name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from converters.export import export_onnx

    model = models[name]
    x = frames(64, 96)
    dyn = {n: {2: "height", 3: "width"} for n in ("frame1", "frame2", "flow")}
    result = export_onnx(model, x, tmp_path / "model.onnx", ["frame1", "frame2"], ["flow"], dyn)
    assert result.correlation == correlation_attributes(model)
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    g1, g2 = frames(128, 160, seed=3)
    with torch.no_grad():
        expected = model(g1, g2).numpy()
    (out,) = session.run(None, {"frame1": g1.numpy(), "frame2": g2.numpy()})
    np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-3)


def test_default_is_a_zoo_name_next_to_pwc_lite():
    assert "default" in MODELS and "pwc-lite" in MODELS
    entry = MODELS["default"]
    assert entry.model_class is not MODELS["pwc-lite"].model_class
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        model = get_model("default")
    assert model.zoo_name == "default" and isinstance(model, entry.model_class)


def test_neuflow_optional_quarter_level_is_split_exact_and_exports(tmp_path):
    """``refine4`` (the 1/4 level under test for trainability, docs/model_card_default.md)."""
    import dataclasses

    ort = pytest.importorskip("onnxruntime")
    from converters.export import export_onnx
    from converters.zoo.neuflow import NEUFLOW_LITE_CONFIG, NeuFlowNet

    model = NeuFlowNet(dataclasses.replace(NEUFLOW_LITE_CONFIG, refine4=(32, 16))).eval()
    f1, f2 = frames(64, 96)
    with torch.no_grad():
        flow, pyramid = model(f1, f2, return_pyramid=True)
        split = model.decoder(model.encoder(f1), model.encoder(f2))
    torch.testing.assert_close(split, flow, rtol=0, atol=0)
    assert [64 // p.shape[-2] for p in pyramid] == [16, 8, 4]
    dyn = {n: {2: "height", 3: "width"} for n in ("frame1", "frame2", "flow")}
    export_onnx(model, (f1, f2), tmp_path / "m.onnx", ["frame1", "frame2"], ["flow"], dyn)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    g1, g2 = frames(96, 128, seed=4)
    with torch.no_grad():
        expected = model(g1, g2).numpy()
    np.testing.assert_allclose(session.run(None, {"frame1": g1.numpy(), "frame2": g2.numpy()})[0], expected,
                               rtol=1e-3, atol=1e-3)
