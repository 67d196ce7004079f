"""Latency accounting: percentiles against hand-computed values, the report, sysfs readers, bench/info CLI."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from edgeflow.monitoring import sysinfo
from edgeflow.monitoring.latency import LatencyRecorder, LatencyStats, percentile

os.environ.setdefault("OMP_NUM_THREADS", "1")


# -- percentiles -------------------------------------------------------------------------------
def test_percentiles_match_hand_computed_linear_interpolation():
    # x = 1..10 ms. Rank of q is (n-1)*q/100 = 9q/100, interpolated between neighbours:
    #   p50: rank 4.5  -> 5 + 0.5*(6-5)   = 5.5
    #   p90: rank 8.1  -> 9 + 0.1*(10-9)  = 9.1
    #   p95: rank 8.55 -> 9 + 0.55*(10-9) = 9.55
    #   p99: rank 8.91 -> 9 + 0.91*(10-9) = 9.91
    #   std (population) = sqrt(mean((x-5.5)^2)) = sqrt(8.25)
    s = LatencyStats.from_samples([7, 3, 1, 10, 2, 9, 4, 8, 6, 5])  # order must not matter
    assert s.count == 10
    assert s.min == 1 and s.max == 10
    assert s.median == pytest.approx(5.5)
    assert s.mean == pytest.approx(5.5)
    assert s.p90 == pytest.approx(9.1)
    assert s.p95 == pytest.approx(9.55)
    assert s.p99 == pytest.approx(9.91)
    assert s.std == pytest.approx(math.sqrt(8.25))


def test_percentile_uneven_example_and_edges():
    # [10, 20, 30, 40]: p95 rank 3*0.95 = 2.85 -> 30 + 0.85*10 = 38.5; p25 rank 0.75 -> 17.5
    assert percentile([40, 10, 30, 20], 95) == pytest.approx(38.5)
    assert percentile([40, 10, 30, 20], 25) == pytest.approx(17.5)
    assert percentile([42.0], 99) == 42.0
    assert math.isnan(percentile([], 50))
    empty = LatencyStats.from_samples([])
    assert empty.count == 0 and empty.to_dict()["median"] is None  # JSON-safe


# -- recorder / report -------------------------------------------------------------------------
def _feed(rec: LatencyRecorder, e2e_ms, times_s, inference_ms=5.0):
    for e, t in zip(e2e_ms, times_s):
        rec.add_frame("result")
        rec.add_result({"wait": 0.001, "inference": inference_ms / 1e3}, e / 1e3, t)


def test_report_fps_jitter_drift_and_accounting():
    rec = LatencyRecorder()
    rec.add_frame("reference", "first_frame")
    rec.add_frame("dropped", "queue_full")
    rec.add_frame("dropped", "queue_full")
    rec.add_drop("source", 3)
    # 20 results: first 10 at 10 ms, last 10 at 20 ms; results every 100 ms except one 150 ms gap
    times = [0.1 * i for i in range(20)]
    times = times[:10] + [t + 0.05 for t in times[10:]]
    _feed(rec, [10.0] * 10 + [20.0] * 10, times)
    rep = rec.report(end={"reason": "eof"})
    assert rep.count == 20
    # fps = (n-1) / (t_last - t_first) = 19 / 1.95
    assert rep.fps == pytest.approx(19 / 1.95)
    intervals = np.diff(times) * 1e3
    assert rep.jitter_ms == pytest.approx(float(np.std(intervals)))
    assert rep.interval.median == pytest.approx(100.0)
    # drift window: 10% of 20 results = 2 results each side
    assert rep.drift["window_results"] == 2
    assert rep.drift["first_median_ms"] == pytest.approx(10.0)
    assert rep.drift["last_median_ms"] == pytest.approx(20.0)
    assert rep.drift["delta_ms"] == pytest.approx(10.0)
    assert rep.frames == {"delivered": 23, "results": 20, "reference": 1, "dropped": {"queue_full": 2, "source": 3},
                          "dropped_total": 5}
    assert rep.stages["inference"].median == pytest.approx(5.0)
    d = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert d["latency_ms"]["end_to_end"]["p90"] == pytest.approx(20.0)
    assert "linear" in d["percentiles"]
    assert "end-to-end" in rep.summary()


def test_empty_report_is_valid_json():
    rep = LatencyRecorder().report(end={"reason": "eof"})
    d = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert d["count"] == 0 and d["fps"] is None and d["drift"]["delta_ms"] is None


def test_reservoir_keeps_memory_bounded_and_exact_aggregates():
    rec = LatencyRecorder(max_samples=100)
    n = 5000
    _feed(rec, np.linspace(1, 50, n), np.arange(n) * 0.01)
    rep = rec.report(end={"reason": "eof"})
    assert rep.sampled
    assert len(rec.samples.cols["end_to_end"]) == 100
    assert rep.latency.count == n
    assert rep.latency.min == pytest.approx(1.0) and rep.latency.max == pytest.approx(50.0)
    assert rep.latency.mean == pytest.approx(25.5)
    assert abs(rep.latency.median - 25.5) < 5  # a uniform sample's median
    assert rep.drift["first_median_ms"] < rep.drift["last_median_ms"]  # windows still in time order


def test_report_write_is_atomic(tmp_path):
    rec = LatencyRecorder()
    _feed(rec, [1.0, 2.0], [0.0, 0.1])
    path = tmp_path / "sub" / "report.json"
    rec.report(end={"reason": "eof"}).write(path)
    assert json.loads(path.read_text())["count"] == 2
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]


# -- sysfs / procfs readers ------------------------------------------------------------------
def _fake_sysfs(root):
    def put(rel, text):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    put("sys/class/thermal/thermal_zone0/temp", "48250\n")
    put("sys/class/thermal/thermal_zone0/type", "cpu-thermal\n")
    put("sys/class/thermal/thermal_zone1/temp", "51000\n")
    put("sys/class/thermal/thermal_zone1/type", "gpu-thermal\n")
    put("sys/class/thermal/thermal_zone10/temp", "bogus\n")
    put("sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "1500000\n")
    put("sys/devices/system/cpu/cpu1/cpufreq/scaling_cur_freq", "600000\n")
    put("sys/devices/gpu.0/devfreq/17000000.ga10b/cur_freq", "306000000\n")
    put("proc/device-tree/model", "NVIDIA Jetson Orin Nano Developer Kit\x00")
    put("proc/cpuinfo", "processor\t: 0\nmodel name\t: ARMv8 Processor rev 1 (v8l)\n")


def test_sysinfo_reads_jetson_style_tree(tmp_path):
    _fake_sysfs(tmp_path)
    root = str(tmp_path)
    assert sysinfo.thermal(root) == {"cpu-thermal": 48.25, "gpu-thermal": 51.0}
    assert sysinfo.cpu_clocks_mhz(root) == {"cpu0": 1500.0, "cpu1": 600.0}
    assert sysinfo.gpu_clocks_mhz(root) == {"17000000.ga10b": 306.0}
    assert sysinfo.device_model(root) == "NVIDIA Jetson Orin Nano Developer Kit"
    assert sysinfo.cpu_model(root) == "ARMv8 Processor rev 1 (v8l)"
    snap = sysinfo.snapshot(root)
    assert set(snap) == {"temperature_c", "cpu_mhz", "gpu_mhz"}


def test_sysinfo_missing_files_give_empty_results(tmp_path):
    assert sysinfo.snapshot(str(tmp_path)) == {"temperature_c": {}, "cpu_mhz": {}, "gpu_mhz": {}}
    assert sysinfo.device_model(str(tmp_path)) is None


def test_rss_from_psutil_only(monkeypatch):
    """psutil gives the RSS; without it the number is absent and the source says what to install
    (no second /proc reader)."""
    import builtins

    real_import = builtins.__import__

    def no_psutil(name, *a, **k):
        if name == "psutil":
            raise ImportError("hidden for the test")
        return real_import(name, *a, **k)

    with_psutil = sysinfo.rss_bytes()
    assert sysinfo.rss_source() == "psutil" and with_psutil and with_psutil > 2**20
    monkeypatch.setattr(builtins, "__import__", no_psutil)
    assert sysinfo.rss_bytes() is None
    assert sysinfo.rss_source() == "none (pip install psutil)"


# -- bench / info commands ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_flow_artifact import build_tiny_artifact

    return build_tiny_artifact(tmp_path_factory.mktemp("art") / "tiny")


def test_bench_cli_rows_json_and_plot(tiny, tmp_path, capsys):
    from edgeflow.cli import main

    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    rc = main(["bench", str(tiny), str(tiny), "--resolution", "64x48", "40x32", "--warmup", "1", "--iterations", "5",
               "--threads", "1", "--json", str(out), "--plot", str(png)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "median" in text and "p99" in text and "throughput" in text
    doc = json.loads(out.read_text())
    paths = [(r["name"], r["path"], r["resolution"]) for r in doc["rows"]]
    for res in ("64x48", "40x32"):
        assert paths.count(("tiny-diff", "infer", res)) == 2  # two artifacts side by side
        assert ("tiny-diff", "infer-cached", res) in paths
        assert ("tiny-diff", "stream", res) in paths
        assert ("opencv", "dis-ultrafast", res) in paths
        assert ("opencv", "dis-medium", res) in paths
    for row in doc["rows"]:
        assert row["stats_ms"]["count"] == 5 and len(row["latencies_ms"]) == 5
        s = row["stats_ms"]
        assert s["min"] <= s["median"] <= s["p90"] <= s["p95"] <= s["p99"] <= s["max"]
        assert row["throughput"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_cli_rejects_bad_resolution(tiny, capsys):
    from edgeflow.cli import main

    assert main(["bench", str(tiny), "--resolution", "64by48"]) == 2
    assert "WxH" in capsys.readouterr().err


def test_info_cli_json(capsys):
    from edgeflow.cli import main

    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["versions"]["numpy"] == np.__version__
    assert info["backends"]["onnxruntime"] is True
    assert "CPUExecutionProvider" in info["backends"]["onnxruntime_providers"]
    assert info["device"]["cores"] >= 1
    assert main(["info"]) == 0
    assert "onnxruntime" in capsys.readouterr().out
