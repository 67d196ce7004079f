"""Raspberry Pi cameras: ``picamera2://N`` through Picamera2 (libcamera).

A thin seam over the documented API: ``Picamera2(camera_num=N)``,
``create_video_configuration(main={"size": (w, h), "format": "RGB888"})``, then per frame
``capture_request()`` -> ``request.make_array("main")`` + ``request.get_metadata()`` ->
``request.release()``. ``capture_request`` (not ``capture_array``) because the metadata of the
same request carries ``SensorTimestamp`` (ns, the kernel's monotonic clock), and because the
request must be released promptly or libcamera runs out of buffers. ``queue=False`` stops
Picamera2 from handing out an already-waiting (older) request. Picamera2's ``RGB888`` is BGR in
memory (libcamera/DRM naming), so delivered frames are flipped to RGB.

Install on Raspberry Pi OS with ``sudo apt install python3-picamera2`` (a venv needs
``--system-site-packages``); pip installs do not match the system libcamera.
"""

from __future__ import annotations

from typing import Any, Optional

from edgeflow.errors import SourceError
from edgeflow.sources.live import LiveSource, ReadResult


def _import_picamera2():
    try:
        from picamera2 import Picamera2
    except ImportError:
        raise SourceError("picamera2:// needs the picamera2 package: sudo apt install python3-picamera2 "
                          "(create the venv with --system-site-packages)") from None
    return Picamera2


class Picamera2Source(LiveSource):
    """Options: ``width`` (640), ``height`` (480), ``fps`` (FrameRate control, camera default when
    unset), ``read_timeout`` (seconds one capture may take before the camera counts as lost,
    default 5), plus the live options."""

    OPTIONS = {**LiveSource.LIVE_OPTIONS, "width": int, "height": int, "fps": float, "read_timeout": float}

    def __init__(self, camera_num: int, *, uri: Optional[str] = None, width: int = 640, height: int = 480,
                 fps: Optional[float] = None, read_timeout: float = 5.0, **live):
        super().__init__(uri or f"picamera2://{camera_num}", **live)
        if width <= 0 or height <= 0:
            raise SourceError(f"{self.uri}: width and height must be positive")
        self.camera_num = int(camera_num)
        self.size = (int(width), int(height))
        self.fps = float(fps) if fps else None
        self.read_timeout = float(read_timeout)

    def _device_open(self) -> Any:
        Picamera2 = _import_picamera2()
        try:
            camera = Picamera2(camera_num=self.camera_num)
        except Exception as exc:  # noqa: BLE001 - IndexError for a missing camera, RuntimeError if busy
            raise SourceError(f"cannot open Raspberry Pi camera {self.camera_num} "
                              f"({' '.join(str(exc).split())[:120] or type(exc).__name__}); "
                              "list cameras with: rpicam-hello --list-cameras") from None
        try:
            controls = {"FrameRate": self.fps} if self.fps else {}
            config = camera.create_video_configuration(
                main={"size": self.size, "format": "RGB888"}, controls=controls, queue=False
            )
            camera.configure(config)
            camera.start()
        except Exception:
            camera.close()
            raise
        return camera

    def _device_read(self, camera: Any) -> ReadResult:
        # A number for ``wait`` makes a stalled camera raise TimeoutError instead of hanging.
        request = camera.capture_request(wait=self.read_timeout)
        try:
            bgr = request.make_array("main")
            sensor_ns = request.get_metadata().get("SensorTimestamp")
        finally:
            request.release()
        return bgr, (sensor_ns / 1e9 if sensor_ns is not None else None)

    def _device_close(self, camera: Any) -> None:
        try:
            camera.stop()
        finally:
            camera.close()

    def _to_rgb(self, bgr):
        return bgr[:, :, 2::-1]  # BGR (or BGRX) -> RGB; made contiguous by as_rgb_frame
