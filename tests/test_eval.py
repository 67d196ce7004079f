"""``edgeflow eval``: metrics through the evaluation loop, baselines, visualisation, JSON, CLI errors."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeflow.artifact import ArtifactWriter
from edgeflow.cli import main
from edgeflow.datasets import MOTORCYCLE, FlowPair, MemoryDataset, read_image, write_png
from edgeflow.errors import InputError
from edgeflow.evaluation.report import SCHEMA
from edgeflow.evaluation.evaluate import Method, artifact_method, baseline_method, evaluate
from edgeflow.flow import write_flow

H, W = 16, 16
CONST = (1.0, -0.5)  # the constant flow the tiny artifact predicts


def const_artifact(root, u=CONST[0], v=CONST[1]):
    """An ONNX 'model' whose flow is (u, v) everywhere: 0 * frames[:, :2] + (u, v)."""
    x1 = helper.make_tensor_value_info("frame1", TensorProto.FLOAT, [1, 3, "h", "w"])
    x2 = helper.make_tensor_value_info("frame2", TensorProto.FLOAT, [1, 3, "h", "w"])
    y = helper.make_tensor_value_info("flow", TensorProto.FLOAT, [1, 2, "h", "w"])
    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "starts"),
        numpy_helper.from_array(np.array([2], np.int64), "ends"),
        numpy_helper.from_array(np.array([1], np.int64), "axes"),
        numpy_helper.from_array(np.zeros((), np.float32), "zero"),
        numpy_helper.from_array(np.array([u, v], np.float32).reshape(1, 2, 1, 1), "bias"),
    ]
    nodes = [
        helper.make_node("Add", ["frame1", "frame2"], ["sum"]),
        helper.make_node("Slice", ["sum", "starts", "ends", "axes"], ["two"]),
        helper.make_node("Mul", ["two", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "bias"], ["flow"]),
    ]
    model = helper.make_model(helper.make_graph(nodes, "const", [x1, x2], [y], initializer=inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    with ArtifactWriter(root) as writer:
        onnx.save(model, writer.path("model.onnx"))
        writer.add("model.onnx", "model")
        writer.commit({
            "model": {"name": "const", "arch": "test", "config": {}},
            "inputs": [{"name": "frame1", "shape": [1, 3, "h", "w"], "dtype": "float32"},
                       {"name": "frame2", "shape": [1, 3, "h", "w"], "dtype": "float32"}],
            "outputs": [{"name": "flow", "shape": [1, 2, "h", "w"], "dtype": "float32"}],
            "preprocessing": {"color_order": "RGB", "layout": "NCHW", "input_range": [0, 255],
                              "pad_multiple": 1, "pad_mode": "replicate"},
            "precision": "fp32",
        })
    return root


def textured(h=H, w=W, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def gt_flow(u, v, h=H, w=W):
    flow = np.empty((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = u, v
    return flow


def constant(name, u, v):
    return Method(name, "callable", lambda f1, f2: gt_flow(u, v, *f1.shape[:2]))


@pytest.fixture
def two_pairs():
    """Pair A: GT (3, 4) on all 256 px. Pair B: GT (0, 0.5) valid on 64 px (top 4 rows)."""
    valid_b = np.zeros((H, W), bool)
    valid_b[:4] = True
    return [FlowPair("a", "seqA", textured(), textured(seed=1), gt_flow(3, 4), np.ones((H, W), bool)),
            FlowPair("b", "seqB", textured(), textured(seed=2), gt_flow(0, 0.5), valid_b)]


# -- metrics through the loop, against hand-computed values --------------------------------------
def test_metrics_hand_computed(two_pairs):
    report = evaluate(MemoryDataset("test", "mem", two_pairs), [constant("zero", 0, 0)])
    a = report.summary("zero", "seqA")["per_pixel"]
    # |(0,0) - (3,4)| = 5 everywhere: no pixel below 1/3/5 px; 5 > 3 and 5 > 0.05 * 5 -> outlier.
    assert a["epe"] == pytest.approx(5.0)
    assert (a["1px"], a["3px"], a["5px"], a["fl_all"]) == (0.0, 0.0, 0.0, 100.0)
    b = report.summary("zero", "seqB")
    assert b["n_valid"] == 64 and b["per_pixel"]["epe"] == pytest.approx(0.5)
    assert (b["per_pixel"]["1px"], b["per_pixel"]["fl_all"]) == (100.0, 0.0)
    overall = report.summary("zero")
    assert overall["n_pairs"] == 2 and overall["n_valid"] == 320
    assert overall["per_pixel"]["epe"] == pytest.approx((5 * 256 + 0.5 * 64) / 320)  # 4.1
    assert overall["per_pair"]["epe"] == pytest.approx((5 + 0.5) / 2)
    assert overall["per_pixel"]["1px"] == pytest.approx(100 * 64 / 320)
    assert overall["per_pixel"]["fl_all"] == pytest.approx(100 * 256 / 320)
    assert overall["per_pair"]["fl_all"] == pytest.approx(50.0)
    assert report.metric("zero", "epe", average="pair") == pytest.approx(2.75)


def test_artifact_through_runtime_matches_hand_values(tmp_path, two_pairs):
    method = artifact_method(const_artifact(tmp_path / "const"))
    assert method.kind == "artifact" and method.name == "const"
    report = evaluate(MemoryDataset("test", "mem", two_pairs), [method])
    # pair A: |(1, -0.5) - (3, 4)| = sqrt(4 + 20.25); pair B: |(1, -1)| = sqrt(2)
    ea, eb = math.sqrt(24.25), math.sqrt(2.0)
    assert report.summary("const", "seqA")["per_pixel"]["epe"] == pytest.approx(ea, rel=1e-6)
    assert report.summary("const", "seqB")["per_pixel"]["epe"] == pytest.approx(eb, rel=1e-6)
    assert report.summary("const", "seqB")["per_pixel"]["3px"] == 100.0
    assert report.metric("const") == pytest.approx((ea * 256 + eb * 64) / 320, rel=1e-6)
    assert report.summary("const")["ms_median"] > 0


def test_empty_ground_truth_is_null_in_json(two_pairs):
    two_pairs[1].valid[:] = False
    report = evaluate(MemoryDataset("test", "mem", two_pairs), [constant("zero", 0, 0)])
    data = report.to_dict()
    assert data["sequences"]["seqB"]["zero"]["per_pixel"]["epe"] is None
    assert data["overall"]["zero"]["n_empty"] == 1
    assert data["overall"]["zero"]["per_pixel"]["epe"] == pytest.approx(5.0)
    json.dumps(data, allow_nan=False)


def test_max_pairs_highlights_and_table(two_pairs):
    moto = FlowPair("motorcycle_stereo", MOTORCYCLE, textured(), textured(seed=3), gt_flow(-2, 0), np.ones((H, W), bool))
    ds = MemoryDataset("builtin", "builtin", two_pairs + [moto], highlights=(MOTORCYCLE,))
    full = evaluate(ds, [constant("zero", 0, 0), constant("right", 1, 0)])
    assert full.highlights == [MOTORCYCLE]
    assert full.summary("right", MOTORCYCLE)["per_pixel"]["epe"] == pytest.approx(3.0)
    table = full.format_table()
    assert table.count(MOTORCYCLE) == 1 and "seqA" in table and "overall" in table
    matrix = full.format_epe_matrix()
    assert "zero" in matrix.splitlines()[0] and "right" in matrix.splitlines()[0]
    assert len(evaluate(ds, [constant("zero", 0, 0)], max_pairs=1).pairs) == 1
    with pytest.raises(InputError, match="at least 1"):
        evaluate(ds, [constant("zero", 0, 0)], max_pairs=0)
    with pytest.raises(InputError, match="nothing to evaluate"):
        evaluate(ds, [])


def test_wrong_shape_prediction_is_an_error(two_pairs):
    bad = Method("bad", "callable", lambda f1, f2: np.zeros((2, H, W), np.float32))
    with pytest.raises(InputError, match="bad returned flow of shape"):
        evaluate(MemoryDataset("test", "mem", two_pairs), [bad])


# -- baselines ----------------------------------------------------------------------------------
def shifted_pair(dx=2, dy=1, h=48, w=64):
    """A smooth random texture and the same texture moved by (dx, dy): exact integer flow."""
    cv2 = pytest.importorskip("cv2")
    big = cv2.GaussianBlur(textured(h + 20, w + 20, seed=5), (0, 0), 1.5)
    f1 = np.ascontiguousarray(big[10:10 + h, 10:10 + w])
    f2 = np.ascontiguousarray(big[10 - dy:10 - dy + h, 10 - dx:10 - dx + w])
    return f1, f2, gt_flow(dx, dy, h, w)


@pytest.mark.parametrize("name", ["dis-ultrafast", "dis-medium", "farneback"])
def test_baselines_on_a_tiny_pair(name):
    f1, f2, gt = shifted_pair()
    method = baseline_method(name)
    flow = method.infer(f1, f2)
    assert flow.shape == gt.shape and flow.dtype == np.float32
    inner = (slice(8, -8), slice(8, -8))  # borders are hard for everyone
    err = np.hypot(*(flow - gt)[inner].reshape(-1, 2).T).mean()
    assert err < 1.0, f"{name}: EPE {err:.2f} on a 2 px shift"


def test_unknown_baseline():
    from edgeflow.evaluation.baselines import parse_baselines

    assert parse_baselines("dis-medium, farneback,dis-medium") == ["dis-medium", "farneback"]
    assert len(parse_baselines("all")) == 4
    with pytest.raises(InputError, match="unknown baseline 'raft'"):
        parse_baselines("dis-medium,raft")


# -- CLI: triples on disk, artifact, baselines, JSON, --save-vis --------------------------------
@pytest.fixture
def triples_dir(tmp_path):
    d = tmp_path / "triples"
    d.mkdir()
    for i, (dx, dy) in enumerate([(2, 1), (1, -2)]):
        f1, f2, gt = shifted_pair(dx, dy, h=32, w=40)
        write_png(d / f"shift_{i:04d}_frame1.png", f1)
        write_png(d / f"shift_{i:04d}_frame2.png", f2)
        write_flow(d / f"shift_{i:04d}_flow.flo", gt)
    return d


def test_cli_artifact_baseline_json_and_vis(tmp_path, triples_dir, capsys):
    art = const_artifact(tmp_path / "const")
    out, vis = tmp_path / "out" / "r.json", tmp_path / "vis"
    rc = main(["eval", str(art), "--data", str(triples_dir), "--baseline", "dis-ultrafast",
               "--json", str(out), "--save-vis", str(vis), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "const" in text and "dis-ultrafast" in text and "overall" in text and "Fl-all" in text
    data = json.loads(out.read_text())
    assert data["schema"] == SCHEMA and data["average"] == "pixel"
    assert data["data"]["layout"] == "triples" and data["data"]["n_pairs"] == 2
    assert data["data"]["sequences"] == ["shift"]
    assert [m["name"] for m in data["methods"]] == ["const", "dis-ultrafast"]
    assert [m["kind"] for m in data["methods"]] == ["artifact", "baseline"]
    for block in (data["overall"], data["sequences"]["shift"]):
        for method in ("const", "dis-ultrafast"):
            s = block[method]
            assert set(s) >= {"n_pairs", "n_empty", "n_valid", "per_pixel", "per_pair", "ms_median", "ms_mean"}
            assert set(s["per_pixel"]) == {"epe", "1px", "3px", "5px", "fl_all"}
    assert data["highlights"] == {}
    pair = data["pairs"][0]
    assert (pair["name"], pair["sequence"], pair["height"], pair["width"]) == ("shift_0000", "shift", 32, 40)
    # constant (1, -0.5) against the GT (2, 1): EPE = sqrt(1 + 2.25)
    assert pair["results"]["const"]["epe"] == pytest.approx(math.sqrt(3.25), rel=1e-6)
    assert set(pair["results"]["const"]) == {"epe", "1px", "3px", "5px", "fl_all", "n_valid", "ms"}
    pngs = sorted(p.relative_to(vis).as_posix() for p in vis.rglob("*.png"))
    assert pngs == ["shift/shift_0000.const.png", "shift/shift_0000.dis-ultrafast.png",
                    "shift/shift_0001.const.png", "shift/shift_0001.dis-ultrafast.png"]
    panel = read_image(vis / pngs[0])
    assert panel.shape[1] == 4 * 40 + 3 * 4 and panel.shape[0] > 32  # four panels + gaps, label strip


def test_cli_no_model_pair_average(triples_dir, capsys):
    rc = main(["eval", "--no-model", "--data", str(triples_dir), "--baseline", "dis-medium,farneback",
               "--max-pairs", "1", "--average", "pair", "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "1 pairs" in out and "Averaged per pair" in out and "EPE (px)" in out


@pytest.mark.parametrize("argv, needle", [
    (["--data", "{tmp}/missing"], "does not exist"),
    (["--data", "{tmp}/empty"], "is empty; expected one of: sintel"),
    (["--data", "{tmp}/other"], "matches no known layout"),
    (["--data", "{tmp}/other", "--format", "middlebury"], "not Middlebury"),
    (["--data", "{tmp}/other", "--baseline", "raft"], "unknown baseline"),
    (["--data", "{tmp}/other", "--no-model"], "--no-model needs --baseline"),
    (["{tmp}/no-artifact", "--data", "{tmp}/triples"], "has no manifest.json"),
    (["{tmp}/missing.pt", "--data", "{tmp}/triples"], "model file not found"),
])
def test_cli_errors_are_one_line(tmp_path, triples_dir, capsys, argv, needle):
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    (tmp_path / "no-artifact").mkdir()
    rc = main(["eval", *[a.format(tmp=tmp_path) for a in argv]])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("edgeflow eval: error: ") and err.count("\n") == 1, err
    assert needle in err


def test_cli_unknown_format_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--data", "x", "--format", "chairs"])
    assert exc.value.code == 2
    assert "invalid choice: 'chairs'" in capsys.readouterr().err


def test_cli_missing_bundled_model(monkeypatch, tmp_path, triples_dir, capsys):
    import edgeflow.model

    monkeypatch.setattr(edgeflow.model, "DEFAULT_ARTIFACT", tmp_path / "nowhere")
    rc = main(["eval", "--data", str(triples_dir)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--no-model --baseline" in err


def test_eager_torch_model(tmp_path):
    """MODEL as a zoo name runs eagerly through converters (host only)."""
    pytest.importorskip("torch")
    from converters.eager import EagerFlowModel

    model = EagerFlowModel("pwc-lite")
    f1, f2, _ = shifted_pair(h=40, w=56)  # not a multiple of the stride: padded and cropped
    flow = model.infer(f1, f2)
    assert flow.shape == (40, 56, 2) and flow.dtype == np.float32 and np.isfinite(flow).all()
    assert model.info["arch"] == "pwc"
