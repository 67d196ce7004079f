"""Sinks named by URI (jetson-utils videoOutput style): one table, one check, one-line errors;
the CLI's flags and --output go through it."""

from __future__ import annotations

import json
import re
import socket

import pytest

from edgeflow.errors import InputError
from edgeflow.sinks.uri import SINKS, open_sink, parse_sink_uri
from tiny_flow_artifact import build_tiny_artifact


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return build_tiny_artifact(tmp_path_factory.mktemp("art") / "tiny")


@pytest.mark.parametrize("uri,kind,location", [
    ("flow.mp4", "video", "flow.mp4"),
    ("out/clip.MKV", "video", "out/clip.MKV"),
    ("frames.jsonl", "jsonl", "frames.jsonl"),
    ("log.csv", "csv", "log.csv"),
    ("file:///tmp/x/frames.ndjson", "jsonl", "/tmp/x/frames.ndjson"),
    ("prometheus://127.0.0.1:9108", "prometheus", ("127.0.0.1", 9108)),
    ("prometheus://:0", "prometheus", ("127.0.0.1", 0)),
    ("prometheus://[::1]:9200", "prometheus", ("::1", 9200)),
    ("http://0.0.0.0:8080/", "watch", ("0.0.0.0", 8080)),
])
def test_the_table_names_each_sink(uri, kind, location):
    parsed = parse_sink_uri(uri)
    assert (parsed.kind, parsed.location) == (kind, location)


def test_every_table_example_parses_to_its_kind():
    for kind, spec in SINKS.items():
        assert parse_sink_uri(spec.example).kind == kind


@pytest.mark.parametrize("uri,message", [
    ("flow.gif", "cannot tell what to write to 'flow.gif' \\(suffix .gif\\); supported: flow.mp4"),
    ("results", "suffix none"),
    ("kafka://broker:9092", "unknown sink scheme 'kafka://'"),
    ("prometheus://127.0.0.1", "expected HOST:PORT"),
    ("prometheus://host:99999", "port 0..65535"),
    ("", "non-empty string"),
])
def test_unknown_or_bad_uris_are_one_line(uri, message):
    with pytest.raises(InputError, match=message) as info:
        parse_sink_uri(uri)
    assert "\n" not in str(info.value)


def test_open_sink_builds_typed_sinks(tmp_path):
    from edgeflow.sinks.csvfile import CsvSink
    from edgeflow.sinks.jsonl import JsonlSink
    from edgeflow.sinks.video import VideoSink

    video = open_sink(f"{tmp_path}/flow.mp4?max_flow=20&fps=12.5")
    assert isinstance(video, VideoSink) and video.max_flow == 20.0 and video.fps == 12.5
    assert isinstance(open_sink(tmp_path / "f.jsonl"), JsonlSink)
    assert isinstance(open_sink(str(tmp_path / "any.name"), kind="csv"), CsvSink)  # --csv F takes any name
    with pytest.raises(InputError, match="unknown option 'speed'; accepted options: fps, labels, max_flow"):
        open_sink(f"{tmp_path}/flow.mp4?speed=2")
    with pytest.raises(InputError, match="max_flow='fast' is not a valid float"):
        open_sink(f"{tmp_path}/flow.mp4?max_flow=fast")
    with pytest.raises(InputError, match="is a file; a prometheus sink is named like prometheus://"):
        open_sink("metrics.txt", kind="prometheus")


def test_prometheus_uri_serves_metrics_on_a_real_socket():
    pytest.importorskip("prometheus_client")
    sink = open_sink("prometheus://127.0.0.1:0")
    sink.open({})
    try:
        host, _, port = sink.bound.rpartition(":")
        host, port = host.strip("[]"), int(port)
        assert host == "127.0.0.1" and port > 0
        with socket.create_connection((host, port), timeout=5) as conn:
            conn.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            body = b""
            while chunk := conn.recv(65536):
                body += chunk
        assert b"edgeflow_frames" in body
    finally:
        sink.close(None)


def test_cli_output_flag_and_shorthands(tmp_path, artifact, capsys):
    from edgeflow.cli import main

    rc = main(["run", str(artifact), "--source", "synthetic://?width=48&height=40&frames=8", "--no-status",
               "--output", str(tmp_path / "a.jsonl"), "--output", f"file://{tmp_path}/b.csv",
               "--jsonl", str(tmp_path / "c.log")])
    assert rc == 0
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 8
    assert len((tmp_path / "b.csv").read_text().splitlines()) == 9  # header + 8 frames
    assert json.loads((tmp_path / "c.log").read_text().splitlines()[0])["index"] == 0
    capsys.readouterr()
    # unknown outputs and two outputs on one file: one line, before the model loads, nothing written
    assert main(["run", str(artifact), "--source", "synthetic://", "--output", str(tmp_path / "x.gif")]) == 2
    err = capsys.readouterr().err
    assert re.search(r"cannot tell what to write to .*x\.gif", err) and len(err.strip().splitlines()) == 1
    assert main(["run", str(artifact), "--source", "synthetic://", "--output", str(tmp_path / "d.jsonl"),
                 "--jsonl", str(tmp_path / "d.jsonl")]) == 2
    assert "--jsonl and --output name the same file" in capsys.readouterr().err
    assert not (tmp_path / "d.jsonl").exists()
