"""Sinks: JSON lines, CSV, video, the Prometheus endpoint (scraped over loopback), the status line,
and that every sink is flushed and closed on every exit path."""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import urllib.request

import numpy as np
import pytest

from edgeflow.sinks.base import Sink
from edgeflow.sinks.csvfile import COLUMNS, CsvSink
from edgeflow.sinks.jsonl import JsonlSink
from edgeflow.sinks.prometheus import PrometheusSink
from edgeflow.sinks.status import StatusLine
from edgeflow.stream import IterableSource, Stream
from edgeflow.stream.records import FrameRecord

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import edgeflow
    from tiny_flow_artifact import build_tiny_artifact

    m = edgeflow.load(build_tiny_artifact(tmp_path_factory.mktemp("art") / "tiny"), threads=1)
    yield m
    m.close()


def frames(n, h=32, w=32):
    from tiny_flow_artifact import moving_frames

    return IterableSource(moving_frames(n, h, w))


def _result_record(i, e2e=0.012, infer=0.004, t=0.0):
    return FrameRecord(index=i, status="result", prev_index=i - 1, capture_ts=t, result_ts=t + e2e,
                       stages={"wait": 0.001, "inference": infer}, end_to_end=e2e)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200
        return resp.read().decode()


# -- JSON lines / CSV --------------------------------------------------------------------------
def test_jsonl_and_csv_one_line_per_frame(model, tmp_path):
    jl, cs = JsonlSink(tmp_path / "f.jsonl"), CsvSink(tmp_path / "f.csv")
    with Stream(model, frames(12), sinks=[jl, cs]) as stream:
        results = list(stream)
    lines = (tmp_path / "f.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    assert len(recs) == 12 == stream.report.frames["delivered"]
    assert [r["index"] for r in recs] == list(range(12))
    assert recs[0]["status"] == "reference" and recs[0]["reason"] == "first_frame"
    assert all(r["status"] == "result" and r["prev_index"] == r["index"] - 1 for r in recs[1:])
    assert recs[5]["end_to_end_ms"] == pytest.approx(results[4].timings["end_to_end"], abs=1e-3)
    rows = list(csv.DictReader(open(tmp_path / "f.csv")))
    assert list(rows[0]) == COLUMNS and len(rows) == 12
    assert rows[3]["status"] == "result" and float(rows[3]["inference_ms"]) > 0
    assert jl._fh is None and cs._fh is None  # closed


def test_unwritable_jsonl_path_is_one_line_error(model, tmp_path):
    from edgeflow.errors import EdgeflowError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(EdgeflowError, match="cannot write"):
        Stream(model, frames(3), sinks=[JsonlSink(blocker / "sub" / "f.jsonl")]).run()


# -- Prometheus --------------------------------------------------------------------------------
def test_prometheus_endpoint_scraped_over_loopback():
    from prometheus_client.parser import text_string_to_metric_families

    sink = PrometheusSink(0)  # loopback by default
    before = set(threading.enumerate())
    sink.open({"model": "tiny", "backend": "onnxruntime", "source": "memory://"})
    try:
        sink.on_record(FrameRecord(index=0, status="reference", reason="first_frame"))
        for i, (e2e, inf) in enumerate([(0.004, 0.002), (0.030, 0.010), (0.200, 0.090)], start=1):
            sink.on_record(_result_record(i, e2e, inf, t=0.1 * i))
        sink.on_record(FrameRecord(index=4, status="dropped", reason="queue_full"))
        sink.on_record(FrameRecord(index=5, status="dropped", reason="queue_full", dropped_before=2))
        text = scrape(sink.url)
    finally:
        sink.close()
    fams = {f.name: f for f in text_string_to_metric_families(text)}  # also validates the format
    e2e = {(s.name, s.labels.get("le")): s.value for s in fams["edgeflow_frame_latency_seconds"].samples}
    assert e2e[("edgeflow_frame_latency_seconds_count", None)] == 3
    assert e2e[("edgeflow_frame_latency_seconds_sum", None)] == pytest.approx(0.234)
    assert e2e[("edgeflow_frame_latency_seconds_bucket", "0.005")] == 1
    assert e2e[("edgeflow_frame_latency_seconds_bucket", "0.033")] == 2
    assert e2e[("edgeflow_frame_latency_seconds_bucket", "+Inf")] == 3
    inf = {(s.name, s.labels.get("le")): s.value for s in fams["edgeflow_inference_latency_seconds"].samples}
    assert inf[("edgeflow_inference_latency_seconds_bucket", "0.0025")] == 1
    assert inf[("edgeflow_inference_latency_seconds_count", None)] == 3
    total = {s.name: s.value for s in fams["edgeflow_frames"].samples}
    assert total["edgeflow_frames_total"] == 6
    assert {s.name: s.value for s in fams["edgeflow_results"].samples}["edgeflow_results_total"] == 3
    drops = {s.labels["reason"]: s.value for s in fams["edgeflow_frames_dropped"].samples if s.name.endswith("_total")}
    assert drops == {"queue_full": 2, "source": 2}
    fps = [s.value for s in fams["edgeflow_fps"].samples][0]
    assert fps == pytest.approx(2 / (0.3 + 0.2 - 0.1 - 0.004))
    info = fams["edgeflow_stream_info"].samples[0]
    assert info.labels["model"] == "tiny" and info.value == 1
    # closed: thread gone, port released
    assert set(threading.enumerate()) <= before
    with pytest.raises(OSError):
        urllib.request.urlopen(sink.url, timeout=1)


def test_prometheus_during_a_real_stream(model):
    sink = PrometheusSink(0, host="127.0.0.1")
    seen = {}

    def scrape_once(result):
        if result.index == 10:
            seen["text"] = scrape(sink.url)

    Stream(model, frames(20), sinks=[sink, scrape_once]).run()
    assert "edgeflow_frame_latency_seconds_bucket" in seen["text"]
    assert "edgeflow_frames_total 10.0" in seen["text"]  # records of frames 0..9 were final at that point


def test_prometheus_port_in_use_is_one_line_error(model):
    from edgeflow.errors import EdgeflowError

    first = PrometheusSink(0, host="127.0.0.1")
    first.open({})
    try:
        with pytest.raises(EdgeflowError, match="choose another --metrics-port"):
            Stream(model, frames(3), sinks=[PrometheusSink(first.port, host="127.0.0.1")]).run()
    finally:
        first.close()


# -- video -------------------------------------------------------------------------------------
def test_video_sink_writes_side_by_side_h264(model, tmp_path):
    import av

    from edgeflow.sinks.video import VideoSink

    out = tmp_path / "flow.mp4"
    Stream(model, frames(9, 30, 38), sinks=[VideoSink(out, fps=10)]).run()
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        codec = stream.codec_context.name
    assert len(decoded) == 8  # one per result
    assert codec in ("h264", "mpeg4")
    h, w = decoded[0].shape[:2]
    assert h % 2 == 0 and w % 2 == 0 and w >= 2 * 38  # frame and flow side by side


def test_video_sink_opencv_fallback(model, tmp_path):
    cv2 = pytest.importorskip("cv2")
    from edgeflow.sinks.video import VideoSink

    out = tmp_path / "flow_cv.mp4"
    Stream(model, frames(5), sinks=[VideoSink(out, fps=10, backend="opencv")]).run()
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == 4


# -- status line -------------------------------------------------------------------------------
def test_status_line_only_on_a_tty():
    buf = io.StringIO()
    quiet = StatusLine(stream=buf)
    assert not quiet.enabled
    loud = StatusLine(stream=buf, interval=0.0, force=True)
    for i in range(1, 6):
        loud.on_record(_result_record(i, 0.010 * i, t=0.1 * i))
    loud.on_record(FrameRecord(index=6, status="dropped", reason="queue_full"))
    loud.close()
    text = buf.getvalue()
    assert text.startswith("\r") and text.endswith("\n")
    last = text.strip().split("\r")[-1]
    assert "6 frames" in last and "fps" in last and "p50 30.0 ms" in last and "drops 1" in last


# -- every exit path closes every sink ---------------------------------------------------------
class Tracking(Sink):
    def __init__(self, fail_on=None):
        self.closed = 0
        self.records = 0
        self.fail_on = fail_on
        self.report = None

    def on_result(self, result):
        if self.fail_on is not None and result.index == self.fail_on:
            raise RuntimeError("disk full")

    def on_record(self, record):
        self.records += 1

    def close(self, report=None):
        self.closed += 1
        self.report = report


def test_failing_sink_ends_stream_and_others_are_closed(model, tmp_path):
    good, bad = Tracking(), Tracking(fail_on=4)
    jl = JsonlSink(tmp_path / "f.jsonl")
    stream = Stream(model, frames(30), sinks=[jl, good, bad], report=tmp_path / "r.json")
    with pytest.raises(RuntimeError, match="disk full"):
        stream.run()
    assert good.closed == bad.closed == 1 and jl._fh is None
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["end"]["reason"] == "error" and "disk full" in rep["end"]["detail"]
    lines = (tmp_path / "f.jsonl").read_text().splitlines()
    assert len(lines) == rep["frames"]["delivered"]  # the failed frame got a record too
    assert json.loads(lines[4])["status"] == "dropped" and json.loads(lines[4])["reason"] == "error"


def test_sinks_closed_when_consumer_breaks_early(model):
    t = Tracking()
    with Stream(model, frames(50), sinks=[t]) as stream:
        for result in stream:
            if result.index == 3:
                break
    assert t.closed == 1 and t.report is stream.report
    assert t.records == stream.report.frames["delivered"]
    assert stream.report.end["reason"] == "stopped"


def test_callable_is_accepted_as_a_sink(model):
    got = []
    Stream(model, frames(6), sinks=[lambda r: got.append(r.index)]).run()
    assert got == [1, 2, 3, 4, 5]
    with pytest.raises(Exception, match="sink"):
        Stream(model, frames(2), sinks=[42])
