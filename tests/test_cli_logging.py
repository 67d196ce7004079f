"""The runtime library logs, the CLI decides what a person sees: no print() in library modules,
one console handler installed by edgeflow.cli (INFO, or warnings only with --quiet)."""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

import converters
import edgeflow
from converters.progress import Steps
from edgeflow.cli import console_logging, main
from tiny_flow_artifact import build_tiny_artifact

PACKAGE = Path(edgeflow.__file__).parent
TOOLCHAIN = Path(converters.__file__).parent


def _library_files():
    """The runtime library (edgeflow/ less the CLI: cli.py, commands/) and the whole toolchain
    library (converters/, training and the zoo included), script entry points (__main__.py) aside."""
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "commands" or rel.name in ("cli.py", "__main__.py"):
            continue
        yield path
    for path in sorted(TOOLCHAIN.rglob("*.py")):
        rel = path.relative_to(TOOLCHAIN)
        if rel.name == "__main__.py":
            continue
        yield path


def test_no_print_calls_in_library_modules():
    found = []
    for path in _library_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not found, "use logging (the CLI's console handler shows it): " + ", ".join(found)


def test_console_handler_shows_progress_and_warnings_and_quiet_keeps_warnings(capsys):
    log = logging.getLogger("edgeflow.tests")
    for quiet in (False, True):
        undo = console_logging(quiet=quiet)
        try:
            log.info("building engine ...")
            log.warning("device lost; reconnecting")
        finally:
            undo()
        err = capsys.readouterr().err.splitlines()
        assert ("building engine ..." in err) is (not quiet)
        assert "edgeflow: warning: device lost; reconnecting" in err
    log.warning("after the CLI returned")  # the handler is gone again
    assert "edgeflow: warning: after the CLI returned" not in capsys.readouterr().err


def test_cli_run_shows_the_drift_note_through_logging(tmp_path, capsys):
    art = build_tiny_artifact(tmp_path / "tiny")  # no input_reference: the drift sink says so, at INFO
    args = ["run", str(art), "--source", "synthetic://?width=48&height=40&frames=6", "--no-status"]
    assert main(args) == 0
    assert capsys.readouterr().err.count("no drift reference") == 1
    assert main(args + ["--quiet"]) == 0
    assert "no drift reference" not in capsys.readouterr().err


def test_convert_progress_goes_through_the_console_handler(capsys):
    """Convert's step lines are log records: shown by the CLI's handler, gone with --quiet."""
    for quiet in (False, True):
        undo = console_logging(quiet=quiet)
        try:
            steps = Steps(2)
            with steps.step("Exporting ONNX"):
                steps.note("1 correlation node")
        finally:
            undo()
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.splitlines()
        if quiet:
            assert lines == []
        else:
            assert lines[0] == "[1/2] Exporting ONNX ..." and lines[1].startswith("[1/2] done (")
            assert lines[1].endswith("s): 1 correlation node")


def test_progress_bars_show_only_on_an_interactive_console_handler(monkeypatch, capsys):
    """A long step's bar (edgeflow.console.progress_bar: calibration, distillation, training, parity
    and latency loops, the TensorRT build) is drawn where the CLI's handler shows INFO on a
    terminal; --quiet, a pipe / file (and pytest's capture) and no handler at all draw nothing."""
    import io
    import sys

    from edgeflow.console import progress_bar

    class Tty(io.StringIO):
        def isatty(self):
            return True

    def run(quiet, stream):
        monkeypatch.setattr(sys, "stderr", stream)
        undo = console_logging(quiet=quiet) if quiet is not None else (lambda: None)
        try:
            total = 0
            for i in progress_bar(range(5), 5, "calibration pairs"):  # the values pass through
                total += i
                if i == 2:
                    logging.getLogger("edgeflow.tests").info("a step line")
            assert total == 10
        finally:
            undo()
        return stream.getvalue()

    drawn = run(False, Tty())
    assert "calibration pairs:" in drawn and "/5 [" in drawn and drawn.endswith("\r")  # drawn, then erased
    assert "a step line" in re.split(r"[\r\n]", drawn)  # a line of its own, never glued to the bar
    assert run(True, Tty()) == ""  # --quiet: warnings only, no bar
    assert run(False, io.StringIO()) == "a step line\n"  # not a terminal: the messages, no bar
    assert run(None, Tty()) == ""  # a Python caller who configured no logging
    monkeypatch.undo()
    assert capsys.readouterr().err == ""
