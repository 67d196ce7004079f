"""Data-set readers on small fixtures written here, in every supported layout."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

from edgeflow.datasets import (
    LAYOUTS,
    MOTORCYCLE,
    FlowPair,
    detect_layout,
    open_dataset,
    read_image,
    write_png,
)
from edgeflow.datasets import builtin as builtin_module
from edgeflow.datasets import images as images_module
from edgeflow.datasets.triples import sequence_of
from edgeflow.errors import InputError
from edgeflow.flow import write_flow
from edgeflow.flow.io import write_kitti_png

H, W = 12, 16


def frame(value: int, h: int = H, w: int = W) -> np.ndarray:
    """A frame whose pixels encode ``value`` (so a test can tell which file was read)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = value
    img[..., 1] = np.arange(w, dtype=np.uint8)[None, :]
    img[..., 2] = np.arange(h, dtype=np.uint8)[:, None]
    return img


def const_flow(u: float, v: float, h: int = H, w: int = W) -> np.ndarray:
    flow = np.empty((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = u, v
    return flow


# -- MPI-Sintel ---------------------------------------------------------------------------------
def make_sintel(root, sequences=("alley_1", "cave_2"), frames=3, passes=("clean", "final")):
    train = root / "training"
    for s, seq in enumerate(sequences):
        for p, pass_ in enumerate(passes):
            d = train / pass_ / seq
            d.mkdir(parents=True)
            for i in range(1, frames + 1):
                write_png(d / f"frame_{i:04d}.png", frame(100 * p + 10 * s + i))
        fd = train / "flow" / seq
        fd.mkdir(parents=True)
        for i in range(1, frames):
            write_flow(fd / f"frame_{i:04d}.flo", const_flow(s, i))
    return root


def test_sintel_clean_pairs_sequences_and_values(tmp_path):
    root = make_sintel(tmp_path / "MPI-Sintel")
    assert detect_layout(root) == "sintel"
    ds = open_dataset(root)
    assert ds.layout == "sintel" and ds.options == {"pass": "clean"}
    assert ds.keys() == [("alley_1", "frame_0001"), ("alley_1", "frame_0002"),
                         ("cave_2", "frame_0001"), ("cave_2", "frame_0002")]
    assert ds.sequences() == ["alley_1", "cave_2"]
    pairs = list(ds)
    assert all(isinstance(p, FlowPair) for p in pairs)
    p = pairs[3]  # cave_2, frame 2 -> 3, clean pass
    assert p.frame1[0, 0, 0] == 10 + 2 and p.frame2[0, 0, 0] == 10 + 3
    np.testing.assert_array_equal(p.flow, const_flow(1, 2))
    assert p.valid.all() and p.valid.shape == (H, W)
    np.testing.assert_array_equal(p.frame1, frame(12))


def test_sintel_final_both_and_training_dir(tmp_path):
    root = make_sintel(tmp_path / "s")
    final = list(open_dataset(root, sintel_pass="final"))
    assert final[0].frame1[0, 0, 0] == 100 + 1
    both = open_dataset(root, sintel_pass="both")
    assert len(both) == 8
    assert both.sequences() == ["clean/alley_1", "clean/cave_2", "final/alley_1", "final/cave_2"]
    direct = open_dataset(root / "training", format="sintel")
    assert direct.keys() == open_dataset(root).keys()
    assert detect_layout(root / "training") == "sintel"


def test_sintel_missing_pass_and_missing_frame(tmp_path):
    root = make_sintel(tmp_path / "s", passes=("clean",))
    with pytest.raises(InputError, match="no 'final' pass"):
        open_dataset(root, sintel_pass="final")
    (root / "training" / "clean" / "alley_1" / "frame_0003.png").unlink()
    with pytest.raises(InputError, match="frame_0003"):
        open_dataset(root)


# -- KITTI 2015 ---------------------------------------------------------------------------------
def make_kitti(root, scenes=2):
    t = root / "training"
    for d in ("image_2", "flow_occ", "flow_noc"):
        (t / d).mkdir(parents=True)
    for s in range(scenes):
        write_png(t / "image_2" / f"{s:06d}_10.png", frame(s))
        write_png(t / "image_2" / f"{s:06d}_11.png", frame(50 + s))
        occ = np.zeros((H, W), bool)
        occ[::2] = True  # sparse ground truth
        noc = occ.copy()
        noc[:, :4] = False  # fewer pixels without occlusions
        flow = const_flow(1.5 + s, -2.25)
        write_kitti_png(t / "flow_occ" / f"{s:06d}_10.png", flow, occ)
        write_kitti_png(t / "flow_noc" / f"{s:06d}_10.png", flow, noc)
    return root


def test_kitti_pairs_valid_mask_and_noc(tmp_path):
    root = make_kitti(tmp_path / "kitti")
    assert detect_layout(root) == "kitti"
    ds = open_dataset(root)
    assert ds.keys() == [("000000", "000000"), ("000001", "000001")]
    assert ds.options == {"gt": "flow_occ"}
    p = list(ds)[1]
    assert p.frame1[0, 0, 0] == 1 and p.frame2[0, 0, 0] == 51
    assert p.valid.sum() == (H // 2) * W and p.valid[0].all() and not p.valid[1].any()
    np.testing.assert_array_equal(p.flow[p.valid], np.tile([2.5, -2.25], (p.valid.sum(), 1)))
    assert (p.flow[~p.valid] == 0).all()
    noc = list(open_dataset(root / "training", kitti_gt="noc"))[0]
    assert noc.valid.sum() == (H // 2) * (W - 4)
    assert not noc.valid[:, :4].any()


def test_kitti_missing_frame(tmp_path):
    root = make_kitti(tmp_path / "k")
    (root / "training" / "image_2" / "000001_11.png").unlink()
    with pytest.raises(InputError, match="000001_11.png"):
        open_dataset(root)


# -- Middlebury ---------------------------------------------------------------------------------
def test_middlebury_pairs_and_unknown_flow(tmp_path):
    root = tmp_path / "middlebury"
    for i, seq in enumerate(("Dimetrodon", "RubberWhale", "Venus")):
        d = root / "other-data" / seq
        d.mkdir(parents=True)
        write_png(d / "frame10.png", frame(i))
        write_png(d / "frame11.png", frame(10 + i))
    for seq in ("Dimetrodon", "RubberWhale"):  # Venus has no ground truth here: skipped
        (root / "other-gt-flow" / seq).mkdir(parents=True)
    valid = np.ones((H, W), bool)
    valid[3, 5] = valid[0, 0] = False  # written as 1e10 ("unknown")
    write_flow(root / "other-gt-flow" / "Dimetrodon" / "flow10.flo", const_flow(0.5, -1), valid)
    write_flow(root / "other-gt-flow" / "RubberWhale" / "flow10.flo", const_flow(2, 3))
    assert detect_layout(root) == "middlebury"
    ds = open_dataset(root)
    assert ds.keys() == [("Dimetrodon", "Dimetrodon"), ("RubberWhale", "RubberWhale")]
    dim = list(ds)[0]
    np.testing.assert_array_equal(dim.valid, valid)
    assert dim.flow[3, 5].tolist() == [0, 0] and dim.flow[1, 1].tolist() == [0.5, -1]
    assert dim.frame1[0, 0, 0] == 0 and dim.frame2[0, 0, 0] == 10


# -- flat folder of triples ---------------------------------------------------------------------
def test_triples_flo_png_jpg_and_sequences(tmp_path):
    d = tmp_path / "triples"
    d.mkdir()
    for i, name in enumerate(("alley_0001", "alley_0002", "road")):
        ext = "jpg" if name == "road" else "png"
        write_png(d / f"{name}_frame1.png", frame(i))
        if ext == "jpg":
            import cv2

            cv2.imwrite(str(d / f"{name}_frame2.jpg"), frame(20)[..., ::-1])
        else:
            write_png(d / f"{name}_frame2.png", frame(20 + i))
        flow_ext = "png" if name == "alley_0002" else "flo"
        write_flow(d / f"{name}_flow.{flow_ext}", const_flow(i, -i))
    (d / "README.txt").write_text("ignored")
    assert detect_layout(d) == "triples"
    ds = open_dataset(d)
    assert ds.keys() == [("alley", "alley_0001"), ("alley", "alley_0002"), ("road", "road")]
    pairs = list(ds)
    np.testing.assert_array_equal(pairs[1].flow, const_flow(1, -1))  # from the KITTI PNG
    assert pairs[2].frame2.shape == (H, W, 3)
    assert all(p.valid.all() for p in pairs)


def test_triples_sequence_rule():
    assert sequence_of("alley_0001") == "alley"
    assert sequence_of("car-12") == "car"
    assert sequence_of("a_1_2") == "a_1"
    assert sequence_of("road") == "road"
    assert sequence_of("0001") == "0001"
    assert sequence_of("2011_09") == "2011_09"


def test_triples_errors(tmp_path):
    d = tmp_path / "t"
    d.mkdir()
    write_png(d / "x_frame1.png", frame(0))
    with pytest.raises(InputError, match="x_frame2"):
        open_dataset(d)
    write_png(d / "x_frame2.png", frame(1))
    with pytest.raises(InputError, match="x_flow.flo or x_flow.png"):
        open_dataset(d)
    write_flow(d / "x_flow.flo", const_flow(0, 0))
    write_flow(d / "x_flow.png", const_flow(0, 0))
    with pytest.raises(InputError, match="both"):
        open_dataset(d)
    (d / "x_flow.png").unlink()
    write_flow(d / "x_flow.flo", const_flow(0, 0, h=H + 1))
    with pytest.raises(InputError, match="flow .* is 16x13 but the frames are 16x12"):
        list(open_dataset(d))
    write_flow(d / "x_flow.flo", const_flow(0, 0))
    write_png(d / "x_frame2.png", frame(1, w=W + 2))
    with pytest.raises(InputError, match="frames differ in size"):
        list(open_dataset(d))


# -- detection and errors -----------------------------------------------------------------------
def test_detect_errors_are_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError) as err:
        open_dataset(empty)
    msg = str(err.value)
    assert "is empty" in msg and "\n" not in msg
    for layout in LAYOUTS:
        assert layout in msg
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="matches no known layout"):
        detect_layout(other)
    with pytest.raises(InputError, match="does not exist"):
        open_dataset(tmp_path / "missing")
    with pytest.raises(InputError, match="is a file"):
        open_dataset(other / "notes.txt")
    with pytest.raises(InputError, match="unknown data format"):
        open_dataset(other, format="chairs")
    with pytest.raises(InputError, match="not KITTI"):
        open_dataset(other, format="kitti")


def test_head_limits_pairs_without_loading(tmp_path):
    root = make_sintel(tmp_path / "s")
    sub = open_dataset(root).head(3)
    assert len(sub) == 3 and len(list(sub)) == 3
    assert len(open_dataset(root).head(None)) == 4


# -- built-in set -------------------------------------------------------------------------------
def test_builtin_adapter_marks_motorcycle(monkeypatch):
    Pair = namedtuple("Pair", "name frame1 frame2 flow valid")
    items = [Pair("astronaut_translate", frame(0), frame(1), const_flow(1, 0), np.ones((H, W), bool)),
             Pair("motorcycle_stereo", frame(2), frame(3), const_flow(-5, 0), np.eye(H, W, dtype=bool))]
    monkeypatch.setattr(builtin_module, "_load_builtin_set", lambda: items)
    ds = open_dataset("builtin")
    assert ds.layout == "builtin" and ds.highlights == (MOTORCYCLE,)
    assert ds.keys() == [("astronaut_translate", "astronaut_translate"), (MOTORCYCLE, "motorcycle_stereo")]
    moto = list(ds)[1]
    assert moto.valid.sum() == H and moto.flow.dtype == np.float32


def test_builtin_real_set_if_available():
    pytest.importorskip("skimage")
    try:
        ds = open_dataset("builtin")
    except InputError as err:  # the synthetic package is still being written
        pytest.skip(str(err))
    assert len(ds) >= 2 and MOTORCYCLE in ds.sequences() and ds.highlights == (MOTORCYCLE,)
    for pair in ds:
        assert pair.frame1.dtype == np.uint8 and pair.frame1.shape == pair.frame2.shape
        assert pair.flow.shape == pair.frame1.shape[:2] + (2,) and pair.valid.any()


# -- image io -----------------------------------------------------------------------------------
def test_read_image_gray_and_pil_fallback(tmp_path, monkeypatch):
    cv2 = pytest.importorskip("cv2")
    gray = (np.arange(H * W) % 256).astype(np.uint8).reshape(H, W)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    rgb = read_image(tmp_path / "g.png")
    assert rgb.shape == (H, W, 3) and (rgb == gray[..., None]).all()
    write_png(tmp_path / "c.png", frame(7))
    monkeypatch.setattr(images_module, "_cv2", lambda: None)
    if images_module._pil() is not None:
        np.testing.assert_array_equal(read_image(tmp_path / "c.png"), frame(7))
    monkeypatch.setattr(images_module, "_pil", lambda: None)
    with pytest.raises(InputError, match="install OpenCV"):
        read_image(tmp_path / "c.png")
    write_png(tmp_path / "own.png", frame(9))  # neither library: the project's 16-bit PNG codec
    back = cv2.imread(str(tmp_path / "own.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(back[..., ::-1], frame(9).astype(np.uint16) * 257)


def test_read_image_errors(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot decode"):
        read_image(tmp_path / "bad.png")
    with pytest.raises(InputError, match="cannot read image"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="not a regular file"):
        read_image(tmp_path)
