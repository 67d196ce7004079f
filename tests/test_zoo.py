"""Zoo models: shapes, encoder/decoder split, padding helper, gradients, flow convention, export."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from converters.zoo import (
    MODELS,
    PWCConfig,
    RandomWeightsWarning,
    build_model,
    correlation_attributes,
    get_model,
)
from converters.zoo.complexity import count_macs, count_parameters
from converters.zoo.layers import backward_warp, upsample_flow
from zoo_checks import frames, load_models, whole_and_split

torch.set_num_threads(1)
NAMES = ["pwc", "pwc-lite", "flownetc-s"]


@pytest.fixture(scope="module")
def models():
    return load_models(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_split_at_320x256(models, name):
    model = models[name]
    f1, f2 = frames(256, 320)
    flow, split = whole_and_split(model, f1, f2)
    assert flow.shape == (1, 2, 256, 320) and flow.dtype == torch.float32
    assert torch.isfinite(flow).all()
    torch.testing.assert_close(split, flow, rtol=0, atol=0)
    print(f"{name}: {count_parameters(model) / 1e6:.3f} M params, pad_multiple {model.pad_multiple}")


@pytest.mark.parametrize("name", NAMES)
def test_other_multiple_sizes_and_batch(models, name):
    model = models[name]
    f1, f2 = frames(128, 192, batch=2)
    with torch.no_grad():
        flow = model(f1, f2)
        single = model(f1[1:], f2[1:])
    assert flow.shape == (2, 2, 128, 192)
    torch.testing.assert_close(flow[1:], single, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_forward_any_size_pads_and_crops(models, name):
    model = models[name]
    f1, f2 = frames(240, 320)
    with torch.no_grad():
        flow = model.forward_any_size(f1, f2)
    assert flow.shape == (1, 2, 240, 320)
    assert model.pad_multiple in (32, 64)


def test_pad_multiples_and_feature_metadata(models):
    assert models["pwc"].pad_multiple == 64
    assert models["pwc-lite"].pad_multiple == 32
    assert models["flownetc-s"].pad_multiple == 64
    f1, _ = frames(128, 128)
    for model in models.values():
        with torch.no_grad():
            feats = model.encoder(f1)
        assert [f.shape[1] for f in feats] == list(model.encoder.feature_channels)
        assert [128 // f.shape[2] for f in feats] == list(model.encoder.feature_strides)


def test_parameter_budgets(models):
    params = {name: count_parameters(model) for name, model in models.items()}
    assert 9.0e6 < params["pwc"] < 9.6e6  # published PWC-Net: 9.37 M
    assert 1.0e6 < params["pwc-lite"] < 2.0e6
    assert params["flownetc-s"] < 8e6
    macs = count_macs(models["pwc-lite"], 64, 64)
    assert macs["total"] > macs["correlation"] > 0


def test_correlation_attributes(models):
    pwc = {"max_displacement": 4, "kernel_size": 1, "stride1": 1, "stride2": 1, "pad_size": 4, "normalize": 1}
    assert correlation_attributes(models["pwc"]) == [pwc]
    assert correlation_attributes(models["pwc-lite"]) == [pwc]
    flownet = correlation_attributes(models["flownetc-s"])
    assert flownet == [{"max_displacement": 20, "kernel_size": 1, "stride1": 1, "stride2": 2, "pad_size": 20, "normalize": 1}]
    assert (2 * 20 // 2 + 1) ** 2 == 441


@pytest.mark.parametrize("name", NAMES)
def test_gradients_flow_and_pyramid(name):
    model = get_model(name, pretrained=False).train()
    f1, f2 = frames(128, 128)
    flow, pyramid = model(f1, f2, return_pyramid=True)
    assert flow.shape == (1, 2, 128, 128)
    # Coarse -> fine, each at its own resolution; the finest is the 1/4 estimate.
    sizes = [p.shape[-1] for p in pyramid]
    assert sizes == sorted(sizes) and sizes[-1] == 32 and all(p.shape[:2] == (1, 2) for p in pyramid)
    loss = flow.abs().mean() + sum(p.abs().mean() for p in pyramid)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing[:5]
    first = next(model.encoder.parameters())
    assert first.grad.abs().sum() > 0
    assert model.training and not isinstance(model.eval()(f1, f2), tuple)


def test_random_init_is_flagged():
    for name in NAMES:
        if MODELS[name].weights is not None:
            continue
        with pytest.warns(RandomWeightsWarning):
            model = get_model(name)
        assert model.pretrained is False and model.zoo_name == name
    assert get_model("pwc-lite", pretrained=False).pretrained is False


def test_lite_activation_is_configurable():
    lite = build_model("pwc-lite").config
    assert lite.activation == "relu"
    model = build_model("pwc", replace(lite, activation="leaky_relu"))
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in model.modules())
    with pytest.raises(Exception, match="activation"):
        PWCConfig(activation="gelu")


def test_backward_warp_convention():
    # Frame 2 is frame 1 shifted right by 2 and down by 1: frame1(x, y) == frame2(x + 2, y + 1),
    # so a flow of (u, v) = (2, 1) warps frame 2 back onto frame 1 (away from the borders).
    frame1 = torch.rand(1, 3, 16, 20)
    frame2 = torch.zeros_like(frame1)
    frame2[:, :, 1:, 2:] = frame1[:, :, :-1, :-2]
    flow = torch.zeros(1, 2, 16, 20)
    flow[:, 0], flow[:, 1] = 2.0, 1.0
    warped = backward_warp(frame2, flow)
    torch.testing.assert_close(warped[:, :, :-1, :-2], frame1[:, :, :-1, :-2], rtol=0, atol=1e-5)
    up = upsample_flow(flow, 4)
    assert up.shape == (1, 2, 64, 80) and torch.allclose(up[:, 0], torch.full((1, 64, 80), 8.0))


class _FlatDecoder(torch.nn.Module):
    """decoder(feats1, feats2) with positional tensors, as an exporter sees it."""

    def __init__(self, decoder, levels):
        super().__init__()
        self.decoder, self.levels = decoder, levels

    def forward(self, *feats):
        return self.decoder(list(feats[: self.levels]), list(feats[self.levels :]))


@pytest.mark.parametrize("name", ["pwc-lite", "flownetc-s"])
def test_decoder_exports_with_dynamic_size(models, name, tmp_path):
    """TorchScript ONNX export (opset 17) with dynamic H/W; ORT at another size matches eager."""
    ort = pytest.importorskip("onnxruntime")
    from converters.export import export_onnx

    model = models[name]
    f1, f2 = frames(64, 128)
    with torch.no_grad():
        feats = model.encoder(f1) + model.encoder(f2)
    levels = len(feats) // 2
    names = [f"feat1_{i}" for i in range(levels)] + [f"feat2_{i}" for i in range(levels)]
    dynamic = {key: {2: f"h_{key}", 3: f"w_{key}"} for key in names}
    dynamic["flow"] = {2: "H", 3: "W"}
    path = tmp_path / "decoder.onnx"
    result = export_onnx(_FlatDecoder(model.decoder, levels), tuple(feats), path, names, ["flow"], dynamic, opset=17)
    assert result.correlation == correlation_attributes(model)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}
    # FlowNetC reads only conv3 of frame 2; the exporter drops the unused input.
    assert inputs == {f"feat1_{i}" for i in model.decoder.used_feats1} | {f"feat2_{i}" for i in model.decoder.used_feats2}
    g1, g2 = frames(128, 192, seed=3)
    with torch.no_grad():
        feeds = model.encoder(g1) + model.encoder(g2)
        expected = model(g1, g2).numpy()
    feed = {key: value.numpy() for key, value in zip(names, feeds) if key in inputs}
    (out,) = session.run(None, feed)
    assert out.shape == (1, 2, 128, 192)
    np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-4)
