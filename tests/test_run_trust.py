"""``edgeflow run`` and its report under a careless user and a hostile neighbour (issue 15):
credentials in source URIs never reach reports, JSON lines, logs or the console; a signal in
the first moments still ends with a report and no traceback; output paths are checked before
anything runs; the report's temp file cannot be hijacked with a planted symlink. Real processes,
real signals, real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edgeflow.sources.uri import redact

ROOT = Path(__file__).resolve().parents[1]
SECRET = "hunter2-Zq"
SYNTH = "synthetic://?width=64&height=64"


def run_cli(*args, timeout=300, **kw):
    return subprocess.run([sys.executable, "-m", "edgeflow", "run", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=kw.get("cwd", ROOT))


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


# -- redaction -------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("rtsp://admin:hunter2@10.0.0.2/stream", "rtsp://admin:***@10.0.0.2/stream"),
    ("rtsp://admin:p@ss@cam:554/x?a=1", "rtsp://admin:***@cam:554/x?a=1"),  # unescaped @ in the password
    ("rtsp://admin:p%40ss@cam/x", "rtsp://admin:***@cam/x"),
    ("rtsp://TOKEN123@cam/live", "rtsp://***@cam/live"),
    ("rtsps://cam/live?user=a&password=s3cret&fps=30", "rtsps://cam/live?user=a&password=***&fps=30"),
    ("rtsp://cam/live?token=abc", "rtsp://cam/live?token=***"),
    ("cannot open rtsp://u:pw@h/x: refused: 'rtsp://u:pw@h/x'", "cannot open rtsp://u:***@h/x: refused: 'rtsp://u:***@h/x'"),
    ("clip.mp4", "clip.mp4"),
    ("/dev/video0", "/dev/video0"),
    ("synthetic://?width=320&height=240", "synthetic://?width=320&height=240"),
    ("mail me at a@b.c", "mail me at a@b.c"),
])
def test_redact(text, expected):
    assert redact(text) == expected


def test_rtsp_open_failure_keeps_the_password_out_of_every_output(tmp_path):
    """Item 5: the report written when opening fails used to carry the password."""
    uri = f"rtsp://admin:{SECRET}@127.0.0.1:{refused_port()}/stream"
    report, jsonl = tmp_path / "r.json", tmp_path / "f.jsonl"
    proc = run_cli("--source", uri, "--report", str(report), "--jsonl", str(jsonl), "--no-status")
    assert proc.returncode == 2
    assert "cannot open rtsp://admin:***@127.0.0.1" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    rep = report.read_text()
    assert json.loads(rep)["source"].startswith("rtsp://admin:***@127.0.0.1")
    outputs = [proc.stdout, proc.stderr, rep] + ([jsonl.read_text()] if jsonl.exists() else [])
    assert not any(SECRET in text for text in outputs)


def test_bad_uri_with_a_password_is_masked_in_the_error():
    proc = run_cli("--source", f"http://viewer:{SECRET}@cam.local/live", "--no-status")
    assert proc.returncode == 2 and "unknown source scheme" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout and "viewer:***@cam.local" in proc.stderr


def test_python_stream_report_and_sinks_never_see_the_password(tmp_path):
    from edgeflow.errors import EdgeflowError
    from edgeflow.stream import Stream
    from tiny_flow_artifact import build_tiny_artifact

    seen = {}

    class Spy:
        def open(self, info):
            seen["info"] = dict(info)

        def on_result(self, result):
            pass

        def on_record(self, record):
            pass

        def close(self, report=None):
            pass

    art = build_tiny_artifact(tmp_path / "tiny")
    uri = f"rtsp://admin:{SECRET}@127.0.0.1:{refused_port()}/stream"
    with pytest.raises(EdgeflowError) as err:
        Stream(art, uri, report=tmp_path / "r.json", sinks=[Spy()]).run()
    assert SECRET not in str(err.value)
    rep = (tmp_path / "r.json").read_text()
    assert SECRET not in rep and "admin:***@" in rep


def test_source_logs_are_masked(caplog):
    log = logging.getLogger("edgeflow.sources")
    with caplog.at_level(logging.INFO, logger="edgeflow.sources"):
        log.warning("%s: reconnect failed: %s", "rtsp://cam/x", f"could not open rtsp://a:{SECRET}@cam/x")
    assert caplog.records and SECRET not in caplog.text and "a:***@cam" in caplog.text


# -- output paths are checked before the stream starts ---------------------------------------------
@pytest.mark.parametrize("flag", ["--report", "--jsonl", "--csv", "--save"])
def test_unwritable_output_is_one_line_before_anything_runs(tmp_path, flag):
    blocker = tmp_path / "a-file"
    blocker.write_text("mine\n")
    other = tmp_path / "frames.jsonl"
    args = ["--source", SYNTH, "--frames", "400", "--no-status", flag, str(blocker / "sub" / "out.x")]
    if flag != "--jsonl":
        args += ["--jsonl", str(other)]
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"edgeflow run: error: {flag}") and "not a folder" in lines[0]
    assert "frames:" not in proc.stdout  # no summary: nothing ran
    assert not other.exists()  # no sink was opened
    assert blocker.read_text() == "mine\n"


def test_report_path_that_is_a_folder_is_refused(tmp_path):
    proc = run_cli("--source", SYNTH, "--frames", "3", "--no-status", "--report", str(tmp_path))
    assert proc.returncode == 2 and "is a folder" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # the write check left nothing behind


def test_two_outputs_naming_one_file_are_refused(tmp_path):
    proc = run_cli("--source", SYNTH, "--frames", "3", "--no-status", "--report", str(tmp_path / "x"),
                   "--jsonl", str(tmp_path / "x"))
    assert proc.returncode == 2 and "name the same file" in proc.stderr


# -- the report file ---------------------------------------------------------------------------------
def _report():
    from edgeflow.monitoring.latency import LatencyRecorder

    return LatencyRecorder().report(end={"reason": "eof"}, meta={"source": "clip.mp4"})


def test_report_temp_file_does_not_follow_planted_symlinks(tmp_path):
    """The old temp name was ``.NAME.tmp-PID``: a neighbour could plant a link there and have the
    report overwrite any file the user can write."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "reports"
    out.mkdir()
    for name in (f".r.json.tmp-{os.getpid()}", ".r.json.tmp", "r.json.tmp", f".r.json.{os.getpid()}.tmp"):
        (out / name).symlink_to(victim)
    _report().write(out / "r.json")
    assert victim.read_text() == "precious\n"
    assert json.loads((out / "r.json").read_text())["end"]["reason"] == "eof"
    assert not (out / "r.json").is_symlink()
    leftovers = {p.name for p in out.iterdir()} - {"r.json"}
    assert all((out / n).is_symlink() for n in leftovers)  # only the planted links, no temp file left


def test_report_replaces_a_symlink_at_the_target_instead_of_writing_through_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "r.json").symlink_to(victim)
    _report().write(tmp_path / "r.json")
    assert victim.read_text() == "precious\n" and not (tmp_path / "r.json").is_symlink()
    mode = (tmp_path / "r.json").stat().st_mode & 0o777
    assert mode & 0o044  # an ordinary readable report, not mkstemp's 0600


# -- signals in the first moments -------------------------------------------------------------------
CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path

    TARGET, MARKER = sys.argv[1], Path(sys.argv[2])

    class Slow:
        # Holds the import of TARGET for a while and says so: the parent signals inside that window.
        def find_spec(self, name, path=None, target=None):
            if name == TARGET and not MARKER.exists():
                MARKER.write_text("importing")
                time.sleep(1.5)
            return None

    sys.meta_path.insert(0, Slow())
    from edgeflow.cli import main
    sys.exit(main(sys.argv[3:]))
""")


def _signal_during_import(tmp_path, target, sig, *args):
    marker = tmp_path / "marker"
    report = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, target, str(marker), "run", "--source", SYNTH,
                             "--frames", "100000", "--no-status", "--report", str(report), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the child never imported " + target
            time.sleep(0.01)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err, report


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("target", ["edgeflow.commands.run", "edgeflow.stream.core", "onnxruntime"],
                         ids=["parsing", "imports", "model-load"])
def test_sigint_in_the_first_moments_still_writes_the_report(tmp_path, target):
    rc, out, err, report = _signal_during_import(tmp_path, target, signal.SIGINT)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert rc == 130, err
    rep = json.loads(report.read_text())
    assert (rep["end"]["reason"], rep["end"].get("detail")) == ("interrupted", "SIGINT")
    assert rep["frames"]["delivered"] < 100000


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_during_imports_is_a_clean_143_with_a_report(tmp_path):
    rc, out, err, report = _signal_during_import(tmp_path, "edgeflow.stream.core", signal.SIGTERM)
    assert rc == 143 and "Traceback" not in err, err
    assert json.loads(report.read_text())["end"]["reason"] == "terminated"


def test_other_commands_get_the_default_handlers_back():
    """Only `run` defers early signals; `info` etc. keep Python's KeyboardInterrupt behaviour."""
    code = ("import signal, edgeflow.cli as c\n"
            "seen = {}\n"
            "import edgeflow.commands.info as info\n"
            "info.run = lambda args: seen.setdefault('h', signal.getsignal(signal.SIGINT)) and 0\n"
            "c.main(['info'])\n"
            "print(seen['h'] is signal.default_int_handler, signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.stdout.split() == ["True", "True"], proc.stderr


def test_report_mode_follows_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        _report().write(tmp_path / "private.json")
    finally:
        os.umask(old)
    assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600
    _report().write(tmp_path / "shared.json")
    assert (tmp_path / "shared.json").stat().st_mode & 0o777 == 0o666 & ~old
