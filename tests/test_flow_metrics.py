"""Flow metrics against hand-computed values, the Middlebury colour wheel, and panel layout."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeflow.errors import InputError
from edgeflow.flow import (
    FlowMetricsAggregator,
    aggregate_metrics,
    end_point_error,
    error_to_color,
    flow_metrics,
    flow_to_color,
    make_colorwheel,
    side_by_side,
)

# gt = 0; EPEs 0.5, 5, 2, 10 (3-4-5 and 6-8-10 triangles).
PRED = np.array([[[0.5, 0.0], [3.0, 4.0], [0.0, 2.0], [6.0, 8.0]]])
GT = np.zeros((1, 4, 2))


def test_metrics_hand_computed():
    m = flow_metrics(PRED, GT)
    assert m["epe"] == pytest.approx((0.5 + 5 + 2 + 10) / 4)
    assert m["1px"] == 25.0
    assert m["3px"] == 50.0
    assert m["5px"] == 50.0  # EPE == 5 is not below 5
    assert m["fl_all"] == 50.0  # 5 and 10 exceed 3 px (and 5 % of |gt| = 0)
    assert m["n_valid"] == 4
    np.testing.assert_allclose(end_point_error(PRED, GT), [[0.5, 5, 2, 10]])


def test_fl_all_needs_both_absolute_and_relative_error():
    gt = np.array([[[100.0, 0.0], [100.0, 0.0], [0.0, 2.0]]])
    pred = np.array([[[104.0, 0.0], [106.0, 0.0], [0.0, 5.5]]])
    m = flow_metrics(pred, gt)  # EPE 4 < 5 % of 100; EPE 6 > 5; EPE 3.5 > 3 and > 0.1
    assert m["fl_all"] == pytest.approx(200 / 3)
    assert m["3px"] == 0.0 and m["5px"] == pytest.approx(200 / 3)


def test_valid_mask_and_unknown_gt_are_excluded():
    gt = GT.copy()
    gt[0, 3] = (1e10, 1e10)  # Middlebury "unknown"
    valid = np.array([[1, 0, 1, 1]])
    m = flow_metrics(PRED, gt, valid)
    assert m["n_valid"] == 2
    assert m["epe"] == pytest.approx((0.5 + 2) / 2)
    assert m["1px"] == 50.0 and m["fl_all"] == 0.0
    gt[0, 0] = (np.nan, 0)
    assert flow_metrics(PRED, gt, valid)["n_valid"] == 1


def test_nan_prediction_counts_as_infinite_error():
    pred = PRED.copy()
    pred[0, 0] = (np.nan, 0)
    m = flow_metrics(pred, GT)
    assert m["epe"] == math.inf
    assert m["1px"] == 0.0 and m["fl_all"] == 75.0


def test_no_valid_pixel_gives_nan_metrics():
    m = flow_metrics(PRED, GT, np.zeros((1, 4), bool))
    assert m["n_valid"] == 0
    assert all(math.isnan(m[k]) for k in ("epe", "1px", "3px", "5px", "fl_all"))


@pytest.mark.parametrize(
    "pred, gt, valid, message",
    [
        (np.zeros((2, 3, 2)), np.zeros((3, 2, 2)), None, "resize pred"),
        (np.zeros((2, 3)), np.zeros((2, 3)), None, "HxWx2"),
        (np.zeros((2, 4, 5)), np.zeros((4, 5, 2)), None, "transpose"),
        (np.zeros((2, 3, 2)), np.zeros((2, 3, 2)), np.ones((3, 2)), "valid mask"),
        (np.zeros((1, 1, 2), dtype=object), np.zeros((1, 1, 2)), None, "numeric"),
    ],
)
def test_shape_mismatches_raise_input_error(pred, gt, valid, message):
    with pytest.raises(InputError, match=message):
        flow_metrics(pred, gt, valid)


def test_aggregator_per_pixel_vs_per_pair():
    agg = FlowMetricsAggregator()
    first = agg.add(PRED, GT)  # 4 pixels, EPE 4.375
    second = agg.add(np.array([[[1.0, 0.0]]]), np.zeros((1, 1, 2)))  # 1 pixel, EPE 1
    agg.add(PRED, GT, np.zeros((1, 4)))  # empty pair: counted, not averaged
    assert first["epe"] == pytest.approx(4.375) and second["epe"] == 1.0
    s = agg.summary()
    assert (s["n_pairs"], s["n_empty"], s["n_valid"]) == (3, 1, 5)
    assert s["per_pixel"]["epe"] == pytest.approx((17.5 + 1) / 5)
    assert s["per_pair"]["epe"] == pytest.approx((4.375 + 1) / 2)
    assert s["per_pixel"]["1px"] == pytest.approx(100 * 1 / 5)  # EPE 1 is not below 1
    assert s["per_pair"]["1px"] == pytest.approx((25 + 0) / 2)
    assert s["per_pixel"]["fl_all"] == pytest.approx(100 * 2 / 5)
    assert s["per_pair"]["fl_all"] == pytest.approx(25.0)


def test_aggregate_metrics_from_dicts_matches_streaming():
    rng = np.random.default_rng(0)
    pairs = [
        (rng.normal(size=(5, 6, 2)) * 4, rng.normal(size=(5, 6, 2)) * 10, rng.random((5, 6)) > 0.3)
        for _ in range(4)
    ]
    agg = FlowMetricsAggregator()
    results = [agg.add(*pair) for pair in pairs]
    from_dicts = aggregate_metrics(results)
    streamed = agg.summary()
    for scope in ("per_pixel", "per_pair"):
        for key, value in streamed[scope].items():
            assert from_dicts[scope][key] == pytest.approx(value)
    assert from_dicts["n_valid"] == streamed["n_valid"]
    with pytest.raises(InputError, match="lacks keys"):
        aggregate_metrics([{"epe": 1.0}])


def test_empty_aggregator_summary_is_nan():
    s = FlowMetricsAggregator().summary()
    assert s["n_pairs"] == 0
    assert math.isnan(s["per_pixel"]["epe"]) and math.isnan(s["per_pair"]["epe"])


# ---------------------------------------------------------------- colour wheel


def test_colorwheel_segments_match_baker_et_al():
    wheel = make_colorwheel()
    assert wheel.shape == (55, 3)
    assert wheel[0].tolist() == [255, 0, 0]  # red
    assert wheel[15].tolist() == [255, 255, 0]  # yellow after RY=15
    assert wheel[21].tolist() == [0, 255, 0]  # green after YG=6
    assert wheel[25].tolist() == [0, 255, 255]  # cyan after GC=4
    assert wheel[36].tolist() == [0, 0, 255]  # blue after CB=11
    assert wheel[49].tolist() == [255, 0, 255]  # magenta after BM=13
    assert wheel[54].tolist() == [255, 0, 255 - math.floor(255 * 5 / 6)]  # back towards red
    assert wheel[1].tolist() == [255, 17, 0]  # floor(255 / 15)


def _color(u, v, **kw):
    return flow_to_color(np.array([[[u, v]]], np.float32), **kw)[0, 0].tolist()


def test_flow_directions_follow_middlebury_convention():
    flow = np.array([[[1, 0], [0, 1], [-1, 0], [0, -1], [0, 0]]], np.float32)
    right, down, left, up, still = flow_to_color(flow)[0].tolist()
    assert right == [255, 0, 0]  # right is red
    assert down[0] == 255 and down[1] > 200 and down[2] == 0  # down is yellow
    assert left[0] == 0 and left[2] == 255 and left[1] > 150  # left is cyan-blue
    assert up[2] == 255 and up[0] > up[1]  # up is blue-violet
    assert still == [255, 255, 255]  # no motion is white


def test_max_flow_sets_saturation_and_beyond_is_darkened():
    assert _color(1.0, 0.0, max_flow=2.0) == [255, 127, 127]  # half saturated red
    assert _color(4.0, 0.0, max_flow=2.0) == [191, 0, 0]  # out of range: x0.75
    with pytest.raises(InputError, match="max_flow"):
        _color(1.0, 0.0, max_flow=0)


def test_invalid_and_nan_pixels_are_black():
    flow = np.ones((2, 2, 2), np.float32)
    flow[0, 0, 0] = np.nan
    flow[0, 1] = 1e10
    img = flow_to_color(flow, valid=np.array([[1, 1], [0, 1]]))
    assert img.dtype == np.uint8 and img.shape == (2, 2, 3)
    assert img[0, 0].tolist() == img[0, 1].tolist() == img[1, 0].tolist() == [0, 0, 0]
    assert img[1, 1].any()
    assert not flow_to_color(np.full((2, 2, 2), np.nan)).any()


def test_error_to_color_uses_kitti_bands():
    epe = np.array([[0.0, 2.9, 3.0, 100.0, np.nan, np.inf]])
    img = error_to_color(epe)
    assert img[0, 0].tolist() == [49, 54, 149]  # tiny error: dark blue
    assert img[0, 1].tolist() == [224, 243, 248]  # just below tau = 3 px
    assert img[0, 2].tolist() == [254, 224, 144]  # at tau: first warm band
    assert img[0, 3].tolist() == [165, 0, 38] == img[0, 5].tolist()  # >= 16 tau: dark red
    assert img[0, 4].tolist() == [0, 0, 0]
    assert not error_to_color(epe, valid=np.zeros((1, 6))).any()
    with pytest.raises(InputError, match="HxW"):
        error_to_color(np.zeros((2, 2, 2)))


# ---------------------------------------------------------------- panels


def test_side_by_side_layout_and_labels():
    rgb = np.full((10, 8, 3), 100, np.uint8)
    gray = np.full((6, 5), 50, np.uint8)
    flow = np.zeros((4, 4, 2), np.float32)
    out = side_by_side([rgb, gray, flow], gap=2)
    assert out.shape == (10, 8 + 2 + 5 + 2 + 4, 3) and out.dtype == np.uint8
    assert (out[:10, :8] == 100).all() and (out[:, 8:10] == 0).all()
    assert (out[:6, 10:15] == 50).all() and (out[6:, 10:15] == 0).all()
    assert (out[:4, 17:21] == 255).all()  # zero flow is white
    labelled = side_by_side([rgb, gray], labels=["EPE 1.5", "gt"], gap=2, scale=2)
    strip = labelled.shape[0] - 10
    assert strip > 4 and labelled.shape[1] == 15
    assert (labelled[:strip, :8] == 255).any() and (labelled[:strip, 10:] == 255).any()
    assert (labelled[strip:, :8] == 100).all()


def test_side_by_side_rejects_bad_input():
    with pytest.raises(InputError, match="labels"):
        side_by_side([np.zeros((2, 2, 3), np.uint8)], labels=["a", "b"])
    with pytest.raises(InputError, match="uint8"):
        side_by_side([np.zeros((2, 2, 3), np.float32)])
    with pytest.raises(InputError, match="at least one"):
        side_by_side([])


def _hide(monkeypatch, *names):
    import builtins

    real_import = builtins.__import__

    def hidden(name, *a, **k):
        if name.split(".")[0] in names:
            raise ImportError(f"{name} hidden for the test")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", hidden)


@pytest.mark.parametrize("library", ["opencv", "pillow"])
def test_labels_are_drawn_by_a_library(monkeypatch, library):
    """OpenCV's putText, else Pillow's ImageDraw: longer text, wider ink; bigger scale, taller."""
    from edgeflow.flow import visualize

    if library == "pillow":
        monkeypatch.setattr("edgeflow.optional.cv2_or_none", lambda: None)
    short, long_, big = (visualize.label_mask(t, s) for t, s in (("gt", 2), ("frame 1234", 2), ("frame 1234", 4)))
    assert short.any() and long_.any() and big.any()
    ink_width = lambda m: np.nonzero(m.any(axis=0))[0].max()  # noqa: E731
    assert ink_width(long_) > 2 * ink_width(short)
    assert big.shape[0] > long_.shape[0]


def test_labels_without_opencv_or_pillow_is_one_line(monkeypatch):
    from edgeflow.errors import EdgeflowError

    monkeypatch.setattr("edgeflow.optional.cv2_or_none", lambda: None)
    _hide(monkeypatch, "PIL")
    with pytest.raises(EdgeflowError, match="pip install pillow") as info:
        side_by_side([np.zeros((8, 8, 3), np.uint8)], labels=["a"])
    assert "\n" not in str(info.value)
    assert side_by_side([np.zeros((8, 8, 3), np.uint8)]).shape == (8, 8, 3)  # no labels, no library needed
