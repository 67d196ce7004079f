"""The Lucas-Kanade refinement stage (converters/zoo/refine.py): it must turn a flow that is
about a pixel off into a sub-pixel one where there is texture, survive a gain / offset change
between the frames, keep the incoming flow where there is no texture, sample exactly like
bilinear GridSample with border clamping, and hold no parameters (the network's weights load
unchanged)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from converters.zoo import build_model, get_model
from converters.zoo.neuflow import DEFAULT_CONFIG, NEUFLOW_LITE_CONFIG
from converters.zoo.refine import LucasKanade, box, frame_pyramid, sample_border
from edgeflow.synthetic.builtin_eval import GlobalMotion, global_motion_pair
from edgeflow.synthetic.families import family_texture

torch.set_num_threads(1)


def _pair(translation, tone=None):
    texture = family_texture("fractal", np.random.default_rng(3), 384)
    pair = global_motion_pair(GlobalMotion("t", "fractal", translation=translation), texture)
    frame2 = pair.frame2 if tone is None else np.clip(pair.frame2 * tone[0] + tone[1], 0, 255).astype(np.uint8)
    as_tensor = lambda f: torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1)[None].float()  # noqa: E731
    return as_tensor(pair.frame1), as_tensor(frame2), torch.from_numpy(pair.flow).permute(2, 0, 1)[None], pair.valid


def _epe(flow, truth, valid):
    err = (flow - truth).norm(dim=1)[0].numpy()
    return float(err[np.asarray(valid, bool)].mean())


def _refine(f1, f2, flow, iterations=6):
    lk = LucasKanade(iterations, window=11, smooth=9, max_step=0.5, damping=1e-3)
    (n1,), (n2,) = frame_pyramid(f1, (1,), 5), frame_pyramid(f2, (1,), 5)
    return lk(n1, n2, flow)


@pytest.mark.parametrize("tone", [None, (1.3, 12.0), (0.8, -10.0)])
def test_one_pixel_off_becomes_sub_pixel_even_with_a_lighting_change(tone):
    f1, f2, truth, valid = _pair((3.4, -1.7), tone)
    start = truth + torch.tensor([0.8, -0.6]).view(1, 2, 1, 1)  # a coarse network's error
    before, after = _epe(start, truth, valid), _epe(_refine(f1, f2, start), truth, valid)
    assert before == pytest.approx(1.0, abs=0.01)
    # Not ~0: the renders' bilinear resampling and the frame borders (content that leaves the
    # frame) cost ~0.15 px even when the fit starts from the true flow.
    assert after < 0.3, (before, after)


def test_textureless_regions_keep_the_incoming_flow():
    flat = torch.full((1, 3, 64, 96), 128.0)
    start = torch.randn(1, 2, 64, 96)
    refined = _refine(flat, flat, start)
    assert (refined - start).abs().max() < 1e-3


def test_sample_border_is_bilinear_grid_sample_with_border_clamping():
    image = torch.rand(2, 1, 40, 56)
    flow = torch.randn(2, 2, 40, 56) * 9.0  # many samples fall outside
    ys, xs = torch.meshgrid(torch.arange(40.0), torch.arange(56.0), indexing="ij")
    grid = torch.stack([(2 * (xs + flow[:, 0]) + 1) / 56 - 1, (2 * (ys + flow[:, 1]) + 1) / 40 - 1], dim=-1)
    expected = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    torch.testing.assert_close(sample_border(image, flow), expected, rtol=0, atol=1e-5)


def test_box_is_a_border_shrinking_mean():
    x = torch.rand(1, 1, 9, 13)
    padded = F.avg_pool2d(x, 5, 1, 2, count_include_pad=False)
    torch.testing.assert_close(box(x, 5), padded, rtol=0, atol=1e-6)


def test_default_is_the_network_plus_refinement_with_the_same_weights():
    """The refinement adds no parameters: the shipped weights are the network's, and the
    ``default`` output improves on the bare network's on a textured sub-pixel motion."""
    model = get_model("default")
    assert model.config == DEFAULT_CONFIG and model.config.lk_scales
    bare = build_model("neuflow", NEUFLOW_LITE_CONFIG)
    bare.load_state_dict(model.state_dict())
    bare.eval()
    f1, f2, truth, valid = _pair((5.6, 2.3))
    with torch.no_grad():
        refined, plain = model(f1, f2), bare(f1, f2)
    assert _epe(refined, truth, valid) < 0.5 * _epe(plain, truth, valid)
