"""Issue 14 data: texture families and their train / held-out split, between-frame photometric
change, motion regimes, non-rigid warps with exact flow, and the unseen evaluation set."""

import numpy as np
import pytest
import torch

from edgeflow.synthetic import SyntheticFlowGenerator, warp_backward
from edgeflow.synthetic.families import (
    FAMILIES,
    HELDOUT_FAMILIES,
    HELDOUT_PHOTOS,
    TRAIN_FAMILIES,
    TRAIN_PHOTOS,
    family_texture,
    heldout_bank,
    training_bank,
)
from edgeflow.synthetic.generator import nonrigid_warp
from edgeflow.synthetic.photometric import PhotometricAugment, augment_pair
from edgeflow.synthetic.textures import skimage_available

pytestmark = pytest.mark.skipif(not skimage_available(), reason="scikit-image not installed")


def test_split_is_disjoint_and_never_holds_the_motorcycle():
    assert not set(TRAIN_FAMILIES) & set(HELDOUT_FAMILIES)
    assert not set(TRAIN_PHOTOS) & set(HELDOUT_PHOTOS)
    train = training_bank(per_family=1)
    families = {name.rstrip("0123456789") for name in train.names}
    assert not families & set(HELDOUT_FAMILIES) and not families & set(HELDOUT_PHOTOS)
    assert set(TRAIN_FAMILIES) <= families
    assert not any("motorcycle" in name for name in train.names + heldout_bank(per_family=1).names)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_is_deterministic_textured_rgb(family):
    a = family_texture(family, np.random.default_rng(3), 96)
    b = family_texture(family, np.random.default_rng(3), 96)
    assert a.shape == (96, 96, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert a.std() > 5  # not flat


def test_nonrigid_warp_keeps_the_flow_exact():
    """Frame 2 = a linear ramp (value = position) bent by a smooth field; sampling it at p + flow
    must give back p (frame 1's ramp): that checks the fixed-point inversion, not a statistic."""
    h, w = 60, 80
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    image2 = np.stack([xs, ys])  # identity scene: flow 0 everywhere
    flow = np.zeros((h, w, 2), np.float32)
    valid = np.ones((h, w), bool)
    for seed in range(6):
        rng = np.random.default_rng(seed)
        bent, new_flow, new_valid = nonrigid_warp(rng, image2.copy(), flow, valid, 6.0)
        if new_flow is flow:
            continue  # this draw skipped the warp (applied to half of the samples)
        assert np.abs(new_flow).max() > 0.5
        back, inside = warp_backward(bent.transpose(1, 2, 0), new_flow)
        ok = new_valid & inside
        ok[:4], ok[-4:], ok[:, :4], ok[:, -4:] = False, False, False, False
        err = np.abs(back - np.stack([xs, ys], -1)).max(-1)[ok]
        assert err.max() < 0.05
        return
    pytest.fail("no draw applied the warp")


def test_photometric_change_between_frames_is_opt_in():
    rng = np.random.default_rng(0)
    frame = rng.uniform(40, 200, (3, 32, 32)).astype(np.float32)
    plain = PhotometricAugment(noise=0, blur=0, frame_jitter=0)
    a1, a2 = augment_pair(plain, frame.copy(), frame.copy(), np.random.default_rng(1))
    assert np.array_equal(a1, a2)  # default: both frames share the same photometry
    change = PhotometricAugment(noise=0, blur=0, frame_jitter=0, change_prob=1.0, change_gain=0.4,
                                change_offset=20, jpeg_prob=1.0)
    diffs = [np.abs(np.subtract(*augment_pair(change, frame.copy(), frame.copy(), np.random.default_rng(s)),
                                dtype=np.float32)).mean() for s in range(4)]
    assert min(diffs) > 2.0


def test_motion_regimes_change_only_the_drawn_motion():
    bank = training_bank(per_family=1)
    base = SyntheticFlowGenerator(64, 96, seed=5, augment=False, textures=bank, max_motion=16)
    same = SyntheticFlowGenerator(64, 96, seed=5, augment=False, textures=bank, max_motion=16, small_prob=0, large_prob=0)
    assert np.array_equal(base.sample(0).flow, same.sample(0).flow)
    small = SyntheticFlowGenerator(64, 96, seed=5, augment=False, textures=bank, max_motion=16, small_prob=1.0)
    large = SyntheticFlowGenerator(64, 96, seed=5, augment=False, textures=bank, max_motion=16, large_prob=1.0,
                                   large_motion=80)
    small_mag = np.mean([np.abs(small.sample(i).flow).max() for i in range(4)])
    large_mag = np.mean([np.abs(large.sample(i).flow).max() for i in range(4)])
    assert small_mag < 4.0 < 30.0 < large_mag


def test_unseen_set_is_deterministic_and_its_geometry_is_exact():
    from edgeflow.synthetic.unseen_eval import unseen_eval_set

    pairs = unseen_eval_set()
    again = unseen_eval_set()
    assert [p.name for p in pairs] == [p.name for p in again]
    assert len(pairs) == 12 and pairs[-1].name == "motorcycle_stereo"
    for p, q in zip(pairs, again):
        assert np.array_equal(p.frame2, q.frame2) and np.array_equal(p.flow, q.flow)
        if p.name in ("lighting_change", "noise_defocus", "motorcycle_stereo"):
            continue  # photometric change / real pair: warp error is not small by design
        warped, _ = warp_backward(p.frame2, p.flow)
        err = np.abs(warped - p.frame1.astype(np.float32)).mean(-1)[p.valid]
        assert np.median(err) < 3.0, p.name


def test_fast_correlation_handles_dilated_search():
    from converters.ops import Correlation
    from converters.train.fast_correlation import FastCorrelation, supported

    layer = Correlation(max_displacement=6, kernel_size=1, stride1=1, stride2=2, pad_size=6)
    assert supported(layer)
    fast = FastCorrelation(layer)
    a = torch.randn(2, 5, 9, 11, requires_grad=True)
    b = torch.randn(2, 5, 9, 11, requires_grad=True)
    ref = layer(a, b)
    out = fast(a, b)
    assert out.shape == ref.shape == (2, 49, 9, 11)
    grad = torch.randn_like(ref)
    g_ref = torch.autograd.grad(ref, (a, b), grad)
    g_out = torch.autograd.grad(out, (a, b), grad)
    assert torch.allclose(out, ref, atol=1e-6)
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(g_out, g_ref))


def test_gpu_path_renders_exact_pairs_and_trains_resumably_on_cpu(tmp_path):
    """The GPU session's code at a tiny size on the CPU: on-device pairs are exact (warp check
    without photometry), and a time-boxed session saves a state that a second call resumes."""
    from converters.train import gpu_run
    from converters.train.gpu_data import GpuSyntheticBatches

    source = GpuSyntheticBatches(2, 64, 96, "cpu", objects=3)
    source._photometric = lambda gen, a, b: (a, b)
    batch = source.batch(3)
    assert torch.equal(batch.flow, source.batch(3).flow)
    for i in range(2):
        f1, f2 = (t[i].permute(1, 2, 0).numpy() for t in (batch.frame1, batch.frame2))
        flow, valid = batch.flow[i].permute(1, 2, 0).numpy(), batch.valid[i].numpy() > 0
        warped, _ = warp_backward(f2, flow)
        assert np.median(np.abs(warped - f1).mean(-1)[valid]) < 0.5
    args = ["--device", "cpu", "--steps", "4", "--batch", "2", "--size", "64", "96", "--init-from", "none",
            "--out", str(tmp_path / "gpu"), "--minutes", "10"]
    torch.set_num_threads(1)
    assert gpu_run.main(args) == 0
    state = torch.load(tmp_path / "gpu" / "state.pt", weights_only=True)
    assert state["step"] == 4
    assert gpu_run.main(args[:3] + ["6"] + args[4:]) == 0
    assert torch.load(tmp_path / "gpu" / "state.pt", weights_only=True)["step"] == 6


def test_stage_overrides_switch_the_data_mix_at_their_step():
    from converters.train.data import DataConfig, SyntheticBatches

    config = DataConfig.from_dict({
        "batch_size": 1, "max_motion": 8.0, "photometric": "change", "large_prob": 1.0, "large_motion": 40.0,
        "stages": [{"start": 0, "size": [48, 64], "crop": [48, 64], "large_prob": 0.0, "photometric": "default"},
                   {"start": 5, "size": [48, 64], "crop": [48, 64]}],
    })
    source = SyntheticBatches(config)
    easy, full = source._generator(config.stage_at(0)), source._generator(config.stage_at(5))
    assert easy.large_prob == 0.0 and full.large_prob == 1.0
    assert easy.augment != full.augment and full.augment.change_prob > 0
    with pytest.raises(Exception, match="unknown key"):
        DataConfig.from_dict({"stages": [{"start": 0, "size": [8, 8], "crop": [8, 8], "typo": 1}]})
