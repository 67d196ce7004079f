"""Native-rate pacing for sources that could go faster (files, folders, the generator).

``realtime=True`` makes a file behave like the camera that recorded it, so a pipeline's latency
and drop numbers on a recording mean what they would mean live. Frames are released at
``anchor + (media_time - media_anchor)``; a consumer that falls more than ``max_lag`` behind
re-anchors instead of receiving a burst of overdue frames (a camera would not burst either).
"""

from __future__ import annotations

import time
from typing import Callable, Optional


class Pacer:
    def __init__(self, max_lag: float = 0.25):
        self.max_lag = max_lag
        self._anchor_wall: Optional[float] = None
        self._anchor_media = 0.0

    def reset(self) -> None:
        self._anchor_wall = None

    def wait(self, media_time: float, sleep: Callable[[float], bool]) -> bool:
        """Block until ``media_time`` (seconds on the source's clock) is due. ``sleep(seconds)``
        returns True when interrupted (source closing); that is passed back to the caller."""
        now = time.monotonic()
        if self._anchor_wall is None:
            self._anchor_wall, self._anchor_media = now, media_time
            return False
        delay = self._anchor_wall + (media_time - self._anchor_media) - now
        if delay > 0:
            return sleep(delay)
        if -delay > self.max_lag or media_time < self._anchor_media:
            # Consumer too slow, or the media clock jumped back (loop): follow, do not burst.
            self._anchor_wall, self._anchor_media = now, media_time
        return False
