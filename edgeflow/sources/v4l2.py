"""USB / V4L2 cameras: ``/dev/videoN`` or ``v4l2://N`` through OpenCV's V4L2 backend.

A thin seam over ``cv2.VideoCapture(N, cv2.CAP_V4L2)``; the reconnect policy comes from
:mod:`edgeflow.sources.live` (the stream's capture thread reads it). The driver queue is cut to
one buffer (``CAP_PROP_BUFFERSIZE``) so the newest frame really is new. ``fourcc=MJPG`` asks the
camera for MJPEG, which most USB cameras need for high resolutions at full rate.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from edgeflow.errors import SourceError
from edgeflow.sources import opencv_capture as ocv
from edgeflow.sources.live import LiveSource


class V4L2Source(ocv.OpenCVDevice, LiveSource):
    """Options: ``width``, ``height``, ``fps``, ``fourcc`` (e.g. ``MJPG``, ``YUYV``) plus the
    live options (``backoff_initial``, ``backoff_max``, ``max_retries``)."""

    OPTIONS = {**LiveSource.LIVE_OPTIONS, "width": int, "height": int, "fps": float, "fourcc": str}

    def __init__(self, device: str, *, uri: Optional[str] = None, width: Optional[int] = None,
                 height: Optional[int] = None, fps: Optional[float] = None, fourcc: Optional[str] = None,
                 **live):
        super().__init__(uri or device, **live)
        self.device = device
        self.width, self.height, self.requested_fps = width, height, fps
        if fourcc is not None and len(fourcc) != 4:
            raise SourceError(f"{self.uri}: fourcc must be 4 characters like MJPG, got {fourcc!r}")
        self.fourcc = fourcc

    def _device_open(self) -> Any:
        if not os.path.exists(self.device):
            raise SourceError(f"no camera at {self.device} (is it plugged in? list them with: ls /dev/video*)")
        cv2 = ocv.require_cv2("V4L2 cameras")
        props = [(cv2.CAP_PROP_BUFFERSIZE, 1)]
        if self.fourcc:
            props.append((cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc)))
        if self.width:
            props.append((cv2.CAP_PROP_FRAME_WIDTH, self.width))
        if self.height:
            props.append((cv2.CAP_PROP_FRAME_HEIGHT, self.height))
        if self.requested_fps:
            props.append((cv2.CAP_PROP_FPS, self.requested_fps))
        index = int(self.device[len("/dev/video"):])
        what = f"camera {self.device} (busy, or no permission: add your user to the 'video' group)"
        cap = ocv.open_capture(index, cv2.CAP_V4L2, what, props)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else self.requested_fps
        return cap
