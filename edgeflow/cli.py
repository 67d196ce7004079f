"""The ``edgeflow`` command line.

Each sub-command lives in its own module under :mod:`edgeflow.commands` and exposes
``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. Command modules import
heavy dependencies (torch, onnx, cv2) inside ``run`` only, so ``edgeflow --help`` and the
runtime commands stay fast and torch-free on a device.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading

from edgeflow import __version__
from edgeflow.errors import EdgeflowError

# Order is the order shown in --help.
COMMAND_MODULES = [
    "demo",
    "convert",
    "run",
    "bench",
    "eval",
    "train",
    "info",
    "build_plugin",
    "export",
]


def _load_commands():
    commands = []
    for name in COMMAND_MODULES:
        try:
            commands.append(importlib.import_module(f"edgeflow.commands.{name}"))
        except ModuleNotFoundError as err:
            # A command whose module is not written yet (or was removed) is simply absent.
            if err.name != f"edgeflow.commands.{name}":
                raise
    return commands


class EarlySignals:
    """SIGINT / SIGTERM that arrive before a command has its own handlers: remembered, not raised.

    Why: ``edgeflow run`` imports numpy and onnxruntime and loads a model before its stream can
    stop cleanly; a Ctrl-C in that window (the first ~0.1 s) used to end in a KeyboardInterrupt
    traceback and no report. :func:`main` installs this first; commands that declare
    ``HANDLES_SIGNALS = True`` read :attr:`received` when their own handlers take over (``run``
    then stops its stream at once and still writes ``--report``); every other command gets the
    previous handlers back before it starts, and a signal that came earlier ends it with the usual
    status. A second signal while waiting aborts (KeyboardInterrupt), as it does later on.
    """

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self):
        self.received = None
        self._saved: dict = {}

    def install(self) -> "EarlySignals":
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name)
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def restore(self) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved = {}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeflow",
        description="Convert PyTorch optical-flow models for edge devices, run them on camera "
        "streams, and measure per-frame latency.",
    )
    parser.add_argument("--version", action="version", version=f"edgeflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _load_commands():
        p = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _handles_signals=getattr(module, "HANDLES_SIGNALS", False))
    return parser


def _foreign_package() -> str | None:
    """One line when the imported ``edgeflow`` package is not ours (PyPI's unrelated "edgeflow"
    replaced our ``__init__``): then our commands would fail in confusing ways further on."""
    import edgeflow

    if getattr(edgeflow, "__distribution__", None) == "edgeflow-sdk":
        return None
    return (f"the `edgeflow` package imported from {getattr(edgeflow, '__file__', '?')} is not edgeflow-sdk's "
            "(PyPI's `edgeflow` is an unrelated project): pip uninstall edgeflow, then reinstall the edgeflow-sdk wheel")


def main(argv: list[str] | None = None) -> int:
    early = EarlySignals().install()  # before anything heavy is imported
    try:
        return _main(argv, early)
    except KeyboardInterrupt:  # a second signal before the command took over
        print("edgeflow: interrupted", file=sys.stderr)
        return 130
    finally:
        early.restore()


class _ConsoleFormatter(logging.Formatter):
    """What a person sees of the library's logging: progress lines as they are, warnings and
    errors as ``edgeflow: warning: ...`` like the CLI's own messages."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"edgeflow: {record.levelname.lower()}: {text}"
        return text


class _ConsoleHandler(logging.StreamHandler):
    """stderr, written around the progress bars of long steps (edgeflow/console.py): once tqdm is
    in use, a record goes through ``tqdm.write``, which lifts the bars, writes the line and redraws
    them, so a message never lands on the end of a half-drawn bar."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm = sys.modules.get("tqdm")  # no bar can be on screen before tqdm was imported
        if tqdm is None:
            return super().emit(record)
        try:
            tqdm.tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def console_logging(quiet: bool = False):
    """Install the console handler on the ``edgeflow`` logger (stderr; INFO, or WARNING with
    ``--quiet``). The library only logs; this is the one place that decides what is shown, progress
    bars included (they follow this handler: on a terminal at INFO only, edgeflow/console.py).
    Returns an undo callable (``main`` runs many times in one process in tests)."""
    logger = logging.getLogger("edgeflow")
    handler = _ConsoleHandler(sys.stderr)
    handler.setFormatter(_ConsoleFormatter())
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # shown once, by this handler

    def undo():
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]

    return undo


def _main(argv, early: EarlySignals) -> int:
    foreign = _foreign_package()
    if foreign:
        print(f"edgeflow: error: {foreign}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    if not args._handles_signals:
        early.restore()
        if early.received is not None:
            print(f"edgeflow {args.command}: interrupted", file=sys.stderr)
            return 128 + int(early.received)
    args._early_signals = early
    undo_logging = console_logging(quiet=bool(getattr(args, "quiet", False)))
    try:
        return int(args._run(args) or 0)
    except EdgeflowError as err:
        from edgeflow.sources.uri import redact  # a URI with a password may be quoted

        print(f"edgeflow {args.command}: error: {redact(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgeflow {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        undo_logging()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
