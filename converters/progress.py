"""Step-by-step progress for long host-side jobs (convert, train): what runs now, how long it took.

Step lines are INFO log records; progress bars inside a step (calibration, distillation, training,
the parity and latency loops) are :func:`edgeflow.console.progress_bar`, drawn only where those
records reach a terminal. Nothing here takes a ``quiet`` flag: the CLI's console handler decides.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

from edgeflow.console import progress_bar  # noqa: F401  (the toolchain's bars: one implementation)

log = logging.getLogger("edgeflow.converters.progress")


class Steps:
    """``with steps.step("Exporting ONNX"): ...`` logs ``[2/6] Exporting ONNX ...`` when the step
    starts and ``[2/6] done (1.3 s)`` when it ends, at INFO on ``edgeflow.converters.progress``:
    the CLI's console handler shows them (not with ``--quiet``), a Python caller sees them once it
    configures logging."""

    def __init__(self, total: int):
        self.total = total
        self.index = 0

    def _log(self, text: str) -> None:
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
