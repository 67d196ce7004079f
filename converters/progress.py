"""Step-by-step progress for long host-side jobs (convert, train): what runs now, how long it took."""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager

log = logging.getLogger("edgeflow.converters.progress")


class Steps:
    """``with steps.step("Exporting ONNX"): ...`` logs ``[2/6] Exporting ONNX ...`` when the step
    starts and ``[2/6] done (1.3 s)`` when it ends, at INFO on ``edgeflow.converters.progress``:
    the CLI's console handler shows them (not with ``--quiet``), a Python caller sees them once it
    configures logging. ``quiet`` silences them at the source too."""

    def __init__(self, total: int, quiet: bool = False):
        self.total = total
        self.index = 0
        self.quiet = quiet

    def _log(self, text: str) -> None:
        if not self.quiet:
            log.info("[%d/%d] %s", self.index, self.total, text)

    @contextmanager
    def step(self, title: str):
        self.index += 1
        self._log(f"{title} ...")
        start = time.perf_counter()
        self.detail = ""
        try:
            yield self
        except BaseException:
            self._log("failed")
            raise
        took = time.perf_counter() - start
        extra = f": {self.detail}" if self.detail else ""
        self._log(f"done ({took:.1f} s){extra}")

    def note(self, detail: str) -> None:
        """A short result shown after 'done' (e.g. 'max |diff| 2e-6 px')."""
        self.detail = detail


def progress_bar(iterable, total: int | None = None, desc: str = "", disable: bool = False):
    """tqdm when installed (it is, with the convert extra), a silent pass-through otherwise."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return iterable
    return tqdm(iterable, total=total, desc=desc, disable=disable or not sys.stderr.isatty(), leave=False)
