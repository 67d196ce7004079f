"""Watching a running device: input drift, latency objectives, the live page's server (issue 17).

Real parts only: the bundled model on the bundled H.264 clip and on a darkened, noisy re-encoding
of it; real sockets on 127.0.0.1 (aiohttp's client against the page's server, urllib against the
Prometheus endpoint); `edgeflow bench` as a subprocess for its exit status.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from edgeflow import drift
from edgeflow.sinks.drift import DriftSink, reference_of
from edgeflow.sinks.slo import SloSink
from edgeflow.stream import IterableSource, Stream

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "edgeflow" / "data" / "sample.mp4"
BUNDLED = ROOT / "edgeflow" / "data" / "pwc-lite"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_flow_artifact import build_tiny_artifact

    return build_tiny_artifact(tmp_path_factory.mktemp("art") / "tiny")


def tiny_frames(n, h=32, w=32):
    from tiny_flow_artifact import moving_frames

    return IterableSource(moving_frames(n, h, w))


# -- the statistic ------------------------------------------------------------------------------
def test_ks_to_sketch_is_zero_for_the_reference_and_one_outside_it():
    rng = np.random.default_rng(0)
    ref = rng.normal(100, 10, 5000)
    q = drift.sketch(ref)["q"]
    assert drift.ks_to_sketch(rng.normal(100, 10, 2000), q) < 0.05
    assert drift.ks_to_sketch(rng.normal(130, 10, 2000), q) > 0.8
    assert drift.ks_to_sketch(np.full(50, 10.0), q) == 1.0  # all below the reference minimum
    assert drift.ks_to_sketch(np.full(50, 1000.0), q) == 1.0  # all above its maximum
    # ties: a feature that is mostly exactly zero in the reference (saturation) is not "drifted" at zero
    tied = drift.sketch(np.r_[np.zeros(900), rng.uniform(0, 0.1, 100)])["q"]
    assert drift.ks_to_sketch(np.r_[np.zeros(90), rng.uniform(0, 0.1, 10)], tied) < 0.1


def test_frame_features_respond_to_what_they_name():
    rng = np.random.default_rng(1)
    img = rng.integers(60, 200, size=(240, 320, 3), dtype=np.uint8)
    base = drift.frame_features(img)
    dark = drift.frame_features((img * 0.3).astype(np.uint8))
    assert dark["luma_mean"] < 0.4 * base["luma_mean"] and dark["contrast"] < base["contrast"]
    blurred = img.astype(np.float32)
    for _ in range(3):
        blurred = (blurred + np.roll(blurred, 1, 0) + np.roll(blurred, 1, 1) + np.roll(blurred, (1, 1), (0, 1))) / 4
    assert drift.frame_features(blurred.astype(np.uint8))["sharpness"] < 0.5 * base["sharpness"]
    blown = img.copy()
    blown[:120] = 255
    assert drift.frame_features(blown)["saturation"] > 0.4 > base["saturation"]
    red = img.copy()
    red[..., 0] = 250
    assert drift.frame_features(red)["red_ratio"] > base["red_ratio"] + 0.1


# -- drift on the real clip -------------------------------------------------------------------
def darkened_noisy_copy(src: Path, dst: Path, frames: int = 40) -> Path:
    """Night on a cheap sensor: 35 % of the light, Gaussian noise (sigma 12), re-encoded as H.264."""
    av = pytest.importorskip("av")
    rng = np.random.default_rng(0)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        st = out.add_stream("libx264", rate=30)
        st.width, st.height, st.pix_fmt = 320, 240, "yuv420p"
        for i, fr in enumerate(inp.decode(video=0)):
            if i >= frames:
                break
            img = fr.to_ndarray(format="rgb24").astype(np.float32) * 0.35 + rng.normal(0, 12, (240, 320, 3))
            for packet in st.encode(av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), format="rgb24")):
                out.mux(packet)
        for packet in st.encode():
            out.mux(packet)
    return dst


def drift_of(clip, report_path, reference=None, frames=32):
    warn = io.StringIO()
    sink = DriftSink(reference=reference, max_rate=0, warn=warn)  # score every result the worker can take
    Stream(None, str(clip), sinks=[sink], max_frames=frames, threads=1, report=report_path).run()
    return json.loads(Path(report_path).read_text())["input_drift"], warn.getvalue()


@pytest.fixture(scope="module")
def clip_reference():
    """A `recording` reference made from the clip's first 60 frames with the bundled model (what
    `python -m converters.reference ARTIFACT --clip` does), independent of the bundled manifest."""
    import edgeflow
    from converters.reference import clip_pairs, reference_from_pairs

    model = edgeflow.load(None, threads=1)
    try:
        return reference_from_pairs(clip_pairs(str(CLIP), limit=60), model.infer, "test clip", kind="recording")
    finally:
        model.close()


def test_darkened_noisy_clip_scores_clearly_higher_than_the_clip(tmp_path, clip_reference):
    pytest.importorskip("av")
    dark = darkened_noisy_copy(CLIP, tmp_path / "night.mp4")
    same, warn_same = drift_of(CLIP, tmp_path / "same.json", clip_reference)
    night, warn_night = drift_of(dark, tmp_path / "night.json", clip_reference)
    print("input_drift clip:", json.dumps(same), "\ninput_drift darkened noisy copy:", json.dumps(night))
    assert same["reference"] and same["frames_scored"] >= drift.MIN_FRAMES
    assert set(same["features"]) == set(drift.FEATURES)
    assert same["threshold"] == drift.DEFAULT_THRESHOLDS["recording"]
    assert same["score"] < same["threshold"] < night["score"]
    assert night["score"] > same["score"] + 0.25
    assert night["features"]["luma_mean"] > 0.9 and night["features"]["contrast"] > 0.9
    assert night["first_frame_above"] is not None and same["first_frame_above"] is None
    assert warn_night.count("input drift score") == 1 and "input drift" not in warn_same


def test_bundled_artifact_has_a_reference_and_sees_the_night(tmp_path):
    """`make demo` and `edgeflow run` on the bundled model score drift out of the box."""
    pytest.importorskip("av")
    ref = reference_of(BUNDLED)
    assert ref is not None, "the bundled artifact must carry an input_reference"
    dark = darkened_noisy_copy(CLIP, tmp_path / "night.mp4", frames=24)
    same, _ = drift_of(CLIP, tmp_path / "same.json", frames=24)
    night, _ = drift_of(dark, tmp_path / "night.json", frames=24)
    assert same["threshold"] == drift.default_threshold(ref)
    assert night["score"] > same["score"] + 0.1 and night["above_threshold"]


def test_artifact_without_reference_says_so_once(tiny, tmp_path):
    warn = io.StringIO()
    sink = DriftSink(warn=warn)
    report = Stream(str(tiny), tiny_frames(12), sinks=[sink], report=tmp_path / "r.json").run()
    assert warn.getvalue().count("no drift reference") == 1
    section = json.loads((tmp_path / "r.json").read_text())["input_drift"]
    assert section["score"] is None and section["reference"] is False
    assert "no drift reference" in report.summary()


def test_convert_stores_an_input_reference(small_artifact):
    ref = reference_of(small_artifact)
    assert ref is not None and ref["frames"] >= 20 and ref["flows"] >= 10
    assert ref["kind"] == "validation" and drift.default_threshold(ref) == 0.75
    assert set(ref["features"]) == set(drift.FEATURES)
    assert all(len(s["q"]) == len(drift.LEVELS) for s in ref["features"].values())
    assert len(json.dumps(ref)) < 8000  # compact enough for a manifest


# -- latency objectives -------------------------------------------------------------------------
def test_slo_met_for_a_generous_objective_and_missed_for_an_impossible_one(tiny, tmp_path):
    generous, impossible = SloSink({"p95": 1e6, "p99": 1e6}), SloSink({"p95": 1e-6})
    Stream(str(tiny), tiny_frames(40), sinks=[generous]).run()
    Stream(str(tiny), tiny_frames(40), sinks=[impossible], report=tmp_path / "r.json").run()
    ok, bad = generous.final, json.loads((tmp_path / "r.json").read_text())["slo"]
    assert ok["met"] is True and bad["met"] is False
    assert ok["objectives"]["p95"]["met"] and ok["objectives"]["p95"]["windows_breached"] == 0
    o = bad["objectives"]["p95"]
    assert o["target_ms"] == 1e-6 and o["measured_ms"] > 0 and o["met"] is False
    assert bad["windows"] >= 1 and o["windows_breached"] == bad["windows"]


def test_bench_exits_nonzero_when_the_objective_is_missed(tiny, tmp_path):
    def bench(ms):
        cmd = [sys.executable, "-m", "edgeflow", "bench", str(tiny), "--resolution", "32x32", "--warmup", "1",
               "--iterations", "8", "--no-dis", "--no-stream", "--slo-p95-ms", str(ms), "--json", str(tmp_path / f"{ms}.json")]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)

    ok, missed = bench(1e6), bench(1e-6)
    assert ok.returncode == 0, ok.stderr
    assert missed.returncode == 1 and "MISSED" in missed.stdout
    assert json.loads((tmp_path / "1e-06.json").read_text())["slo"]["met"] is False


def test_prometheus_exports_drift_and_slo_gauges(tiny):
    from edgeflow.sinks.prometheus import PrometheusSink

    ref = drift.build_reference([f for f in __import__("tiny_flow_artifact").moving_frames(30)])
    scraped = {}
    d, s = DriftSink(reference=ref, max_rate=0, warn=io.StringIO()), SloSink({"p95": 1e-6})
    prom = PrometheusSink(0, host="127.0.0.1")
    prom.add_gauges(d.gauges)
    prom.add_gauges(s.gauges)

    def paced(n=120):  # camera-like pacing, so SLO windows close and the drift worker keeps up
        import time

        from tiny_flow_artifact import moving_frames

        for f in moving_frames(n):
            time.sleep(0.012)
            yield f

    def grab(result):
        if result.index == 110:
            d.drain()
            with urllib.request.urlopen(f"http://127.0.0.1:{prom.port}/metrics", timeout=5) as resp:
                scraped["text"] = resp.read().decode()

    Stream(str(tiny), IterableSource(paced(), live=True), sinks=[d, s, prom, grab]).run()
    assert scraped
    for text in scraped.values():
        assert "edgeflow_input_drift_score " in text
        assert 'edgeflow_input_drift_feature{feature="luma_mean"}' in text
        assert 'edgeflow_slo_target_seconds{objective="p95"} ' in text
        assert 'edgeflow_slo_met{objective="p95"} 0.0' in text


# -- the live page's server (browser-free half; tests/test_watch_browser.py drives Chromium) -----
def test_live_page_server_pushes_newest_pictures_and_stats(tiny):
    aiohttp = pytest.importorskip("aiohttp")
    from edgeflow.watch import WatchSink, parse_serve
    from tiny_flow_artifact import moving_frames

    assert parse_serve(":0") == ("127.0.0.1", 0) and parse_serve("0.0.0.0:8080") == ("0.0.0.0", 8080)
    with pytest.raises(Exception, match="HOST:PORT"):
        parse_serve("localhost:http")

    def paced():
        """Frames every 10 ms until the client has seen enough (or 60 s): on a busy host the client
        can take seconds to import aiohttp and connect, and a fixed-length clip would end first."""
        import itertools
        import time

        deadline = time.monotonic() + 60
        frames = moving_frames(50, 48, 64)
        for f in itertools.cycle(frames):
            if time.monotonic() > deadline or (len(set(got["ids"])) >= 3 and got["stats"] >= 3):
                return
            time.sleep(0.01)
            yield f

    watch = WatchSink("127.0.0.1", 0, fps=20, slo=SloSink({"p95": 1e6}))
    got = {"ids": [], "stats": 0, "page": "", "history": None}

    async def client(url):
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as resp:
                got["page"] = await resp.text()
            async with session.ws_connect(url + "ws") as ws:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        data = json.loads(msg.data)
                        got["stats"] += 1
                        got["history"] = data.get("history", got["history"])
                        got["slo"] = data.get("slo")
                    elif msg.type == aiohttp.WSMsgType.BINARY:
                        got["ids"].append(int.from_bytes(msg.data[:4], "little"))
                        n = int.from_bytes(msg.data[4:8], "little")
                        assert msg.data[8:10] == msg.data[8 + n:10 + n] == b"\xff\xd8"  # camera and flow JPEGs
                    if len(set(got["ids"])) >= 3 and got["stats"] >= 3:
                        return

    def on_first(result):
        if result.index == 1:
            import threading

            threading.Thread(target=lambda: asyncio.run(asyncio.wait_for(client(watch.url), 60)), daemon=True,
                             name="test-client").start()

    with Stream(str(tiny), IterableSource(paced(), live=True), sinks=[watch, on_first]) as stream:
        for r in stream:
            if len(set(got["ids"])) >= 3 and got["stats"] >= 3:
                break
    assert "<canvas" in got["page"] and "edgeflowWatch" in got["page"]
    assert len(set(got["ids"])) >= 3 and got["ids"] == sorted(got["ids"])  # newer pictures only, never older
    assert got["stats"] >= 3 and got["slo"]["objectives"]["p95"]["target_ms"] == 1e6
    assert watch.server is None  # closed with the stream


def test_serve_on_a_port_in_use_is_one_clear_error(tiny):
    pytest.importorskip("aiohttp")
    import socket

    from edgeflow.errors import EdgeflowError
    from edgeflow.watch import WatchSink

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EdgeflowError, match=f"cannot serve the live page on 127.0.0.1:{port}.*choose another"):
            Stream(str(tiny), tiny_frames(4), sinks=[WatchSink("127.0.0.1", port)]).run()


def test_preview_colours_match_the_colour_wheel():
    """The page's LUT colouring is flow_to_color up to the table's quantization."""
    from edgeflow.flow.visualize import flow_to_color
    from edgeflow.watch.server import preview_flow_color

    y, x = np.mgrid[0:120, 0:160]
    flow = np.stack([np.cos(x / 20) * 3, np.sin(y / 15) * 2 - 1], axis=-1).astype(np.float32)
    flow[0, 0] = np.nan
    diff = np.abs(preview_flow_color(flow).astype(int) - flow_to_color(flow).astype(int))
    assert diff.mean() < 2 and np.percentile(diff, 99) < 25
    assert (preview_flow_color(flow)[0, 0] == 0).all()
