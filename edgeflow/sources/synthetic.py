"""``synthetic://``: moving textures with exact ground-truth flow, for tests, demos and soak runs.

Frames come from :class:`edgeflow.synthetic.SyntheticSequence`; each frame after the first
carries the exact flow from the previous frame in ``extras["flow"]`` (``HxWx2`` float32) and
its visibility mask in ``extras["flow_valid"]`` (``HxW`` bool), so a pipeline can score itself
online. Rendering is deterministic in ``seed``. Like a file it is produced on demand
(``realtime=True`` paces at ``fps``); ``sensor_ts`` is the nominal time ``n / fps``.

Query options: ``width`` (320), ``height`` (240), ``frames`` (length; unset or 0 = endless),
``seed`` (0), ``fps`` (30), ``realtime``, ``loop`` (restart after ``frames``; the first frame of
each pass has no flow, as there is no true motion across the restart), ``max_speed`` (pixels per
frame), ``objects`` (max foreground objects), ``augment`` (photometric noise).
"""

from __future__ import annotations

import time
from typing import Optional

from edgeflow.errors import EdgeflowError, SourceError
from edgeflow.sources.base import Frame, Source
from edgeflow.sources.pacing import Pacer


class SyntheticSource(Source):
    is_live = False
    OPTIONS = {
        "width": int, "height": int, "frames": int, "seed": int, "fps": float,
        "realtime": bool, "loop": bool, "max_speed": float, "objects": int, "augment": bool,
    }

    def __init__(self, location: str = "", *, uri: Optional[str] = None, width: int = 320, height: int = 240,
                 frames: Optional[int] = None, seed: int = 0, fps: float = 30.0, realtime: bool = False,
                 loop: bool = False, max_speed: Optional[float] = None, objects: int = 6, augment: bool = False):
        super().__init__(uri or "synthetic://")
        if frames is not None and frames < 0:
            raise SourceError(f"{self.uri}: frames must be >= 0 (0 = endless), got {frames}")
        if not fps or fps <= 0:
            raise SourceError(f"{self.uri}: fps must be > 0, got {fps}")
        self.width, self.height = width, height
        self.length = frames or None
        self.seed = seed
        self.fps = float(fps)
        self.realtime, self.loop = realtime, loop
        self._sequence_args = dict(length=self.length, max_objects=objects, max_speed=max_speed, augment=augment)
        self._sequence = None
        self._t = 0  # frame index within the sequence
        self._position = 0  # frames produced, across loops: the nominal clock
        self._pacer = Pacer()

    def _open(self) -> None:
        from edgeflow.synthetic import SyntheticSequence

        try:
            self._sequence = SyntheticSequence(self.height, self.width, self.seed, **self._sequence_args)
        except EdgeflowError as exc:
            raise SourceError(f"{self.uri}: {exc}") from None

    def _read(self, timeout: Optional[float]) -> Optional[Frame]:
        if self.length is not None and self._t >= self.length:
            if not self.loop:
                return None
            self._t = 0
        t = self._t
        image = self._sequence.frame(t)
        extras = {}
        if t > 0:
            flow, valid = self._sequence.flow(t - 1)
            extras = {"flow": flow, "flow_valid": valid}
        sensor_ts = self._position / self.fps
        self._t += 1
        self._position += 1
        if self.realtime and self._pacer.wait(sensor_ts, self._wait):
            return None
        return Frame(image=image, index=-1, timestamp=time.monotonic(), sensor_ts=sensor_ts, extras=extras)

    def _close(self) -> None:
        self._sequence = None
