"""Progress bars for long steps, drawn on the terminal the log records go to (tqdm where installed).

Library code never decides whether a person is watching, so nothing takes a ``quiet`` flag: a bar is
drawn only when an INFO record of the step's logger would reach a handler that writes to a
terminal. That is the CLI's console handler on a TTY (``edgeflow/cli.py`` ``console_logging``); not
with ``--quiet`` (the handler then passes warnings only), not in tests (captured streams), not when
stderr is a file or a pipe, and not for a Python caller who has not configured logging. tqdm comes
with the toolchain (the ``convert`` extra); the runtime does not need it (a TensorRT build on a
device without it shows its start and end log lines, no bar).
"""

from __future__ import annotations

import logging


def terminal_stream(logger: logging.Logger):
    """The stream of the first handler that would show ``logger``'s INFO records on a terminal, else None.

    Walks the handlers the way :meth:`logging.Logger.callHandlers` does (up the hierarchy while
    ``propagate``), so a Python caller's ``logging.basicConfig()`` on a TTY gets bars too."""
    if not logger.isEnabledFor(logging.INFO):
        return None
    current = logger
    while current is not None:
        for handler in current.handlers:
            stream = getattr(handler, "stream", None)
            if isinstance(handler, logging.StreamHandler) and handler.level <= logging.INFO and _isatty(stream):
                return stream
        if not current.propagate:
            break
        current = current.parent
    return None


def _isatty(stream) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class _NoBar:
    """What :func:`progress_bar` hands back without tqdm: the iterable, and bar calls that do nothing."""

    def __init__(self, iterable=None):
        self.iterable = iterable if iterable is not None else ()
        self.n = 0

    def __iter__(self):
        return iter(self.iterable)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_description(self, *args, **kwargs) -> None:
        pass

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(iterable=None, total: int | None = None, desc: str = "", logger: logging.Logger | None = None, **kwargs):
    """A tqdm bar over ``iterable`` (or a manual one: ``update``), shown on :func:`terminal_stream`
    of ``logger`` (default ``edgeflow``) and erased when it closes; a bar that draws nothing otherwise.
    Extra keyword arguments go to tqdm (``initial``, ``mininterval``, ...)."""
    stream = terminal_stream(logger or logging.getLogger("edgeflow"))
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar(iterable)
    return tqdm(iterable, total=total, desc=desc, file=stream, disable=stream is None, leave=False,
                dynamic_ncols=True, **kwargs)
