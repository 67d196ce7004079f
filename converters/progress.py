"""Step-by-step progress for long host-side jobs (convert, train): what runs now, how long it took."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager


class Steps:
    """``with steps.step("Exporting ONNX"): ...`` prints ``[2/6] Exporting ONNX ... done (1.3 s)``."""

    def __init__(self, total: int, stream=None, quiet: bool = False):
        self.total = total
        self.index = 0
        self.stream = stream or sys.stderr
        self.quiet = quiet

    def _print(self, text: str, end: str = "\n") -> None:
        if not self.quiet:
            print(text, end=end, file=self.stream, flush=True)

    @contextmanager
    def step(self, title: str):
        self.index += 1
        self._print(f"[{self.index}/{self.total}] {title} ...", end="")
        start = time.perf_counter()
        self.detail = ""
        try:
            yield self
        except BaseException:
            self._print(" failed")
            raise
        took = time.perf_counter() - start
        extra = f": {self.detail}" if self.detail else ""
        self._print(f" done ({took:.1f} s){extra}")

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
