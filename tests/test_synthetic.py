"""edgeflow.synthetic: exact ground truth, determinism, shapes, the built-in evaluation set.

The core property: pulling frame 2 back along the flow (bilinear sample of frame 2 at
``p + flow(p)``) reproduces frame 1 on valid pixels. With photo textures that holds up to
interpolation error; with *linear* textures bilinear interpolation is exact, so there it must
hold to float precision, which checks the geometry itself rather than a statistic.
"""

import dataclasses
import sys
import time

import numpy as np
import pytest

from edgeflow.errors import EdgeflowError, InputError
from edgeflow.synthetic import (
    FlowSample,
    SyntheticFlowGenerator,
    SyntheticSequence,
    TextureBank,
    builtin_eval_set,
    warp_backward,
)
from edgeflow.synthetic.builtin_eval import stereo_flow
from edgeflow.synthetic.sampling import PlanarTexture, sample_bilinear
from edgeflow.synthetic.scene import Scene, affine
from edgeflow.synthetic.shapes import polygon
from edgeflow.synthetic.textures import SKIMAGE_IMAGES, skimage_available

H, W = 240, 320
needs_skimage = pytest.mark.skipif(not skimage_available(), reason="scikit-image not installed")


def warp_error(frame1, frame2, flow):
    """Per-pixel mean absolute difference between frame1 and frame2 pulled back by flow."""
    warped, _ = warp_backward(frame2, flow)
    return np.abs(warped - frame1.astype(np.float32)).mean(axis=-1)


def check_sample(sample, height=H, width=W):
    assert isinstance(sample, tuple) and len(sample) == 4
    f1, f2, flow, valid = sample
    assert f1.shape == f2.shape == (height, width, 3) and f1.dtype == f2.dtype == np.uint8
    assert flow.shape == (height, width, 2) and flow.dtype == np.float32
    assert valid.shape == (height, width) and valid.dtype == bool
    assert np.isfinite(flow).all()


# ----------------------------------------------------------------------------- linear-texture exactness

PAD = 320  # ramp textures extend this far beyond any bank image, so no mirroring happens


def with_linear_textures(scene):
    """The same scene with every texture replaced by ``value = texture coordinate`` (2 channels)."""
    size = 640 + 2 * PAD
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    ramp = PlanarTexture(np.stack([xx - PAD, yy - PAD], axis=-1))
    shift = affine(PAD, PAD)
    layers = [
        dataclasses.replace(layer, texture=ramp, texture_from_local=shift @ layer.texture_from_local, gain=None)
        for layer in scene.layers
    ]
    return Scene(scene.height, scene.width, layers)


def assert_exact(scene, t0, t1):
    """Frame t1 sampled at p + flow equals frame t0 at p, wherever that sample stays on one layer."""
    scene = with_linear_textures(scene)
    img1, ids1 = scene.render(t0)
    img2, ids2 = scene.render(t1)
    flow, valid = scene.flow(t0, t1, ids1)
    h, w = ids1.shape
    qx = np.arange(w)[None, :] + flow[..., 0]
    qy = np.arange(h)[:, None] + flow[..., 1]
    x0 = np.clip(np.floor(qx).astype(int), 0, w - 2)
    y0 = np.clip(np.floor(qy).astype(int), 0, h - 2)
    same = np.ones_like(valid)
    for dy in (0, 1):
        for dx in (0, 1):
            same &= ids2[y0 + dy, x0 + dx] == ids1
    check = valid & same
    assert check.sum() > 0.85 * valid.sum()  # only pixels next to an occluding edge are skipped
    warped = sample_bilinear(img2, qx, qy)
    err = np.abs(warped - img1).max(axis=-1)
    assert err[check].max() < 0.02, err[check].max()
    # Valid pixels land on their own layer; an occluded pixel (destination inside the frame)
    # practically never has all four neighbours of its destination on its own layer.
    xi = np.clip(np.rint(qx).astype(int), 0, w - 1)
    yi = np.clip(np.rint(qy).astype(int), 0, h - 1)
    assert (ids2[yi, xi] == ids1)[valid].mean() > 0.995
    inside = (qx >= 0) & (qx <= w - 1) & (qy >= 0) & (qy <= h - 1)
    occluded = inside & ~valid
    assert (occluded & same).sum() <= max(3, 0.01 * occluded.sum())
    return valid


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_pair_ground_truth_exact_on_linear_textures(index):
    gen = SyntheticFlowGenerator(H, W, seed=7, augment=False)
    valid = assert_exact(gen.scene(index), 0.0, 1.0)
    assert 0.5 < valid.mean() < 1.0


@pytest.mark.parametrize("t", [0, 37, 59, 60, 61])  # 60 is a turning point of the bounce
def test_sequence_ground_truth_exact_on_linear_textures(t):
    seq = SyntheticSequence(H, W, seed=5, bounce=60)
    assert_exact(seq.scene, seq.time(t), seq.time(t + 1))


# ----------------------------------------------------------------------------- photo textures


def test_pair_warp_reproduces_frame1():
    gen = SyntheticFlowGenerator(H, W, seed=3, augment=False)
    for index in range(4):
        f1, f2, flow, valid = gen.sample(index)
        err = warp_error(f1, f2, flow)[valid]
        baseline = np.abs(f2.astype(np.float32) - f1).mean(axis=-1)[valid]
        assert err.mean() < 4.0 and np.median(err) < 2.0, (err.mean(), np.median(err))
        assert baseline.mean() > 3 * err.mean()


def test_sequence_warp_reproduces_frame1():
    seq = SyntheticSequence(H, W, seed=11, length=70)
    for t in (0, 30, 60, 68):
        f1, f2, flow, valid = seq.pair(t)
        err = warp_error(f1, f2, flow)[valid]
        assert err.mean() < 3.0 and np.median(err) < 1.5, (t, err.mean())


def test_shapes_and_dtypes():
    for h, w in [(H, W), (53, 37)]:
        gen = SyntheticFlowGenerator(h, w, seed=0)
        sample = gen.sample(0)
        assert isinstance(sample, FlowSample)
        check_sample(sample, h, w)
    gen = SyntheticFlowGenerator(64, 80, seed=0, max_objects=0, augment=False)
    check_sample(gen.sample(5), 64, 80)


def test_determinism_per_seed_and_index():
    a = SyntheticFlowGenerator(H, W, seed=42).sample(9)
    b = SyntheticFlowGenerator(H, W, seed=42).sample(9)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c = SyntheticFlowGenerator(H, W, seed=42).sample(10)
    d = SyntheticFlowGenerator(H, W, seed=43).sample(9)
    assert not np.array_equal(a.flow, c.flow) and not np.array_equal(a.flow, d.flow)
    # __iter__ streams sample(0), sample(1), ...
    stream = iter(SyntheticFlowGenerator(H, W, seed=42))
    first, second = next(stream), next(stream)
    np.testing.assert_array_equal(second.frame1, SyntheticFlowGenerator(H, W, seed=42).sample(1).frame1)
    assert not np.array_equal(first.frame1, second.frame1)


def test_augmentation_changes_pixels_not_geometry():
    plain = SyntheticFlowGenerator(H, W, seed=1, augment=False).sample(4)
    for index in range(3):
        aug = SyntheticFlowGenerator(H, W, seed=1, augment=True).sample(index)
        ref = SyntheticFlowGenerator(H, W, seed=1, augment=False).sample(index)
        np.testing.assert_array_equal(aug.flow, ref.flow)
        np.testing.assert_array_equal(aug.valid, ref.valid)
        assert not np.array_equal(aug.frame1, ref.frame1)
    assert plain.frame1.std() > 10


def test_sequence_determinism_and_iteration():
    a = SyntheticSequence(96, 128, seed=2, length=5)
    frames = list(a)
    assert len(frames) == 5 and all(f.shape == (96, 128, 3) and f.dtype == np.uint8 for f in frames)
    b = SyntheticSequence(96, 128, seed=2, length=5)
    np.testing.assert_array_equal(frames[3], b.frame(3))
    flow, valid = b.flow(3)
    np.testing.assert_array_equal(flow, a.flow(3)[0])
    assert flow.shape == (96, 128, 2) and valid.dtype == bool
    with pytest.raises(InputError):
        b.flow(4)  # no frame 5
    noisy = SyntheticSequence(96, 128, seed=2, augment=True)
    check_sample(noisy.pair(0), 96, 128)
    np.testing.assert_array_equal(noisy.frame(1), SyntheticSequence(96, 128, seed=2, augment=True).frame(1))


def test_bad_arguments_raise_input_error():
    with pytest.raises(InputError):
        SyntheticFlowGenerator(0, 320)
    with pytest.raises(InputError):
        SyntheticFlowGenerator(H, W, max_objects=-1)
    with pytest.raises(InputError):
        SyntheticFlowGenerator(H, W).sample(-1)
    with pytest.raises(InputError):
        SyntheticSequence(H, W, length=0)


def test_star_polygon_is_bounded_by_its_radii():
    rng = np.random.default_rng(0)
    for vertices in (3, 5, 8):
        shape = polygon(np.random.default_rng(vertices), 50.0, vertices)
        pts = rng.uniform(-55, 55, size=(4000, 2)).astype(np.float32)
        inside = shape.contains(pts[:, 0], pts[:, 1])
        r = np.hypot(pts[:, 0], pts[:, 1])
        assert inside[r <= shape.radii.min() - 0.5].all()
        assert not inside[r > shape.radius + 0.5].any()
        assert 0.05 < inside.mean() < 0.9


# ----------------------------------------------------------------------------- textures


@needs_skimage
def test_texture_bank_has_bundled_photos():
    bank = TextureBank("skimage")
    assert bank.source == "skimage"
    assert set(bank.names) == {item.name for item in SKIMAGE_IMAGES}
    for image in bank.images:
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
        assert min(image.shape[:2]) >= 256 and image.std() > 10


def test_procedural_bank_is_deterministic():
    a, b = TextureBank("procedural", seed=3), TextureBank("procedural", seed=3)
    c = TextureBank("procedural", seed=4)
    assert a.source == "procedural" and len(a) >= 8
    for x, y in zip(a.images, b.images):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.images[0], c.images[0])
    assert all(im.shape[2] == 3 and im.dtype == np.uint8 and im.std() > 10 for im in a.images)
    crop = a.crop(np.random.default_rng(0), 700, 90)
    assert crop.shape == (700, 90, 3)


def test_without_skimage_falls_back_and_eval_set_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    assert not skimage_available()
    bank = TextureBank("auto")
    assert bank.source == "procedural"
    check_sample(SyntheticFlowGenerator(64, 64, seed=0, textures=bank).sample(0), 64, 64)
    with pytest.raises(EdgeflowError, match="pip install scikit-image"):
        builtin_eval_set()


# ----------------------------------------------------------------------------- built-in evaluation set


@pytest.fixture(scope="module")
def eval_set():
    if not skimage_available():
        pytest.skip("scikit-image not installed")
    return builtin_eval_set()


def test_builtin_eval_set_contents(eval_set):
    names = [p.name for p in eval_set]
    assert len(names) == len(set(names)) >= 9 and "motorcycle_stereo" in names
    for name, f1, f2, flow, valid in eval_set:
        assert f1.dtype == f2.dtype == np.uint8 and f1.shape == f2.shape and f1.shape[2] == 3
        assert flow.shape == f1.shape[:2] + (2,) and flow.dtype == np.float32
        assert valid.shape == f1.shape[:2] and valid.dtype == bool and valid.mean() > 0.5, name
        assert 200 <= f1.shape[0] <= 300 and 300 <= f1.shape[1] <= 400
    again = builtin_eval_set()
    for a, b in zip(eval_set, again):
        np.testing.assert_array_equal(a.flow, b.flow)
        np.testing.assert_array_equal(a.frame2, b.frame2)


def test_builtin_eval_synthetic_pairs_warp(eval_set):
    for name, f1, f2, flow, valid in eval_set:
        if name == "motorcycle_stereo":
            continue
        err = warp_error(f1, f2, flow)[valid]
        assert err.mean() < 4.0 and np.median(err) < 2.0, (name, err.mean())
        if name == "astronaut_translate":  # integer shift, rendered at integer offsets: exact
            assert err.max() < 0.01


def test_motorcycle_disparity_sign_and_warp(eval_set):
    """Middlebury convention: left (x, y) is at (x - d, y) in the right image, so u = -d.

    Recorded (scikit-image 0.26, half resolution): pulling the right image back with u = -d
    gives a mean error of about 4.7 gray levels on valid pixels (median 2.8); with u = +d about
    45, with zero flow about 37.
    """
    pair = next(p for p in eval_set if p.name == "motorcycle_stereo")
    _, f1, f2, flow, valid = pair
    assert f1.shape == (250, 370, 3)
    assert (flow[..., 1] == 0).all() and (flow[..., 0][valid] < 0).all()
    right_sign = warp_error(f1, f2, flow)[valid]
    wrong_sign = warp_error(f1, f2, -flow)[valid]
    zero = warp_error(f1, f2, np.zeros_like(flow))[valid]
    print(
        f"\nmotorcycle warp error (mean/median gray levels): u=-d {right_sign.mean():.2f}/{np.median(right_sign):.2f}"
        f"  u=+d {wrong_sign.mean():.2f}  zero {zero.mean():.2f}"
    )
    assert right_sign.mean() < 7.0 and np.median(right_sign) < 4.0
    assert wrong_sign.mean() > 3 * right_sign.mean() and zero.mean() > 3 * right_sign.mean()


def test_stereo_flow_masks_occlusion_and_missing_disparity():
    disp = np.full((8, 40), 4.0)
    disp[:, 20:24] = 10.0  # a near strip: background just left of it is hidden in the right view
    disp[0, :2] = np.nan
    flow, valid = stereo_flow(disp)
    assert flow.shape == (4, 20, 2)
    np.testing.assert_allclose(flow[1, 5, 0], -2.0)  # disparity halved with the resolution
    assert not valid[0, 0]  # no disparity
    assert not valid[:, 0].any()  # moves out of the right image
    assert valid[:, 10:12].all() and not valid[:, 7:9].any() and valid[:, 2:7].all()


# ----------------------------------------------------------------------------- speed (reported, not asserted)


def test_generation_speed_report():
    gen = SyntheticFlowGenerator(H, W, seed=0, augment=True)
    gen.sample(99)  # textures packed, caches warm
    count = 10
    start = time.perf_counter()
    for i in range(count):
        gen.sample(i)
    ms = (time.perf_counter() - start) / count * 1e3
    print(f"\nSyntheticFlowGenerator 320x240, augment on: {ms:.1f} ms/sample (target < 15 ms, not asserted)")
