"""Jetson CSI cameras: ``csi://N`` -> an ``nvarguscamerasrc`` GStreamer pipeline through OpenCV.

``nvarguscamerasrc`` delivers NV12 in NVMM (device) memory; ``nvvidconv`` copies it to system
memory as BGRx (hardware VIC), ``videoconvert`` drops the x, and ``appsink drop=true
max-buffers=1`` keeps only the newest buffer so GStreamer itself never queues stale frames.
Needs an OpenCV built with GStreamer: the Jetson system build (``python3-opencv``), not the pip
wheel.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Optional

from edgeflow.errors import SourceError
from edgeflow.sources import opencv_capture as ocv
from edgeflow.sources.live import LiveSource


def csi_pipeline(sensor_id: int = 0, width: int = 1280, height: int = 720, fps: float = 30.0,
                 flip_method: int = 0) -> str:
    """The GStreamer pipeline string for CSI camera ``sensor_id`` (BGR frames into appsink)."""
    rate = Fraction(fps).limit_denominator(1001)
    flip = f" flip-method={flip_method}" if flip_method else ""
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM),width={width},height={height},framerate={rate.numerator}/{rate.denominator} ! "
        f"nvvidconv{flip} ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
        f"appsink drop=true max-buffers=1"
    )


class CSISource(ocv.OpenCVDevice, LiveSource):
    """Options: ``width`` (1280), ``height`` (720), ``fps`` (30), ``flip_method`` (nvvidconv
    0-7) plus the live options."""

    OPTIONS = {**LiveSource.LIVE_OPTIONS, "width": int, "height": int, "fps": float, "flip_method": int}

    def __init__(self, sensor_id: int, *, uri: Optional[str] = None, width: int = 1280, height: int = 720,
                 fps: float = 30.0, flip_method: int = 0, **live):
        super().__init__(uri or f"csi://{sensor_id}", **live)
        if not (width and height and fps and width > 0 and height > 0 and fps > 0):
            raise SourceError(f"{self.uri}: width, height and fps must be positive")
        self.sensor_id = int(sensor_id)
        self.pipeline = csi_pipeline(self.sensor_id, width, height, fps, flip_method)
        self.fps = float(fps)

    def _device_open(self) -> Any:
        cv2 = ocv.require_cv2("CSI cameras")
        if not ocv.has_gstreamer(cv2):
            raise SourceError("csi:// needs OpenCV built with GStreamer (on Jetson: the system python3-opencv, "
                              "not pip opencv-python)")
        what = (f"CSI camera {self.sensor_id} "
                "(is nvargus-daemon running? try: gst-launch-1.0 nvarguscamerasrc ! fakesink)")
        return ocv.open_capture(self.pipeline, cv2.CAP_GSTREAMER, what)
