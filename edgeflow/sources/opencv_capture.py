"""The OpenCV ``VideoCapture`` seam shared by the V4L2, RTSP and CSI (GStreamer) sources.

Kept tiny on purpose: open with a backend and properties, read one BGR frame, release. Colour
conversion is not done here: the live machinery converts only the frames it delivers.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Tuple

from edgeflow.errors import SourceError


def require_cv2(purpose: str):
    try:
        import cv2
    except ImportError:
        raise SourceError(f"{purpose} needs OpenCV: pip install opencv-python-headless "
                          "(on Jetson use the system build: sudo apt install python3-opencv)") from None
    return cv2


def has_gstreamer(cv2) -> bool:
    """True when this OpenCV build can run GStreamer pipelines (pip wheels cannot)."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line.split(":", 1)[1]
    return False


def open_capture(target: Any, api: int, what: str, props: Iterable[Tuple[int, float]] = (),
                 params: Optional[list] = None):
    """``cv2.VideoCapture(target, api[, params])`` with ``props`` applied; SourceError if not opened."""
    cv2 = require_cv2(what)
    cap = cv2.VideoCapture(target, api, params) if params else cv2.VideoCapture(target, api)
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"cannot open {what}")
    for prop, value in props:
        cap.set(prop, value)
    return cap


def read_bgr(cap) -> Optional[Tuple[Any, Optional[float]]]:
    """One BGR frame and the backend's timestamp in seconds (buffer time for V4L2, PTS for
    streams; ``None`` when the backend has none), or None when the device stopped delivering."""
    import cv2

    ok, bgr = cap.read()
    if not ok or bgr is None:
        return None
    pos_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
    return bgr, (pos_ms / 1000.0 if pos_ms and pos_ms > 0 else None)


def release(cap) -> None:
    cap.release()


def bgr_to_rgb(bgr):
    import cv2

    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class OpenCVDevice:
    """The device seam every ``cv2.VideoCapture``-backed live source shares (V4L2, CSI through
    GStreamer): read BGR with the backend's timestamp, release, convert to RGB. Mixed in before
    :class:`~edgeflow.sources.live.LiveSource`; a source adds only how it opens its device."""

    def _device_read(self, handle):
        return read_bgr(handle)

    def _device_close(self, handle) -> None:
        release(handle)

    def _to_rgb(self, raw):
        return bgr_to_rgb(raw)
