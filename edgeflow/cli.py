"""The ``edgeflow`` command line.

Each sub-command lives in its own module under :mod:`edgeflow.commands` and exposes
``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. Command modules import
heavy dependencies (torch, onnx, cv2) inside ``run`` only, so ``edgeflow --help`` and the
runtime commands stay fast and torch-free on a device.
"""

from __future__ import annotations

import argparse
import importlib
import sys

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
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except EdgeflowError as err:
        print(f"edgeflow {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgeflow {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
