"""Network streams: ``rtsp://`` (and ``rtsps://``) through PyAV, OpenCV as the fallback.

A thin seam over the decoder; the reconnect policy comes
from :mod:`edgeflow.sources.live` (RTSP servers restart, Wi-Fi drops). The stream is opened with
low-delay flags and TCP transport by default (UDP loses packets on busy Wi-Fi and shows smeared
frames). Credentials in the URL are masked in ``uri``, logs and reports.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from edgeflow.errors import SourceError
from edgeflow.sources import opencv_capture as ocv
from edgeflow.sources.live import LiveSource, ReadResult
from edgeflow.sources.uri import redact


class _PyAVStream:
    """Handle: an open container and its decoding generator."""

    def __init__(self, url: str, transport: str, timeout: float):
        import av

        options = {"rtsp_transport": transport, "fflags": "nobuffer", "flags": "low_delay"}
        self.container = av.open(url, mode="r", options=options, timeout=(timeout, timeout))
        if not self.container.streams.video:
            self.container.close()
            raise SourceError(f"no video stream in {redact(url)}")
        stream = self.container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        self.frames = self.container.decode(stream)

    def read(self) -> ReadResult:
        try:
            frame = next(self.frames)
        except StopIteration:
            return None
        return frame, (float(frame.time) if frame.time is not None else None)

    def close(self) -> None:
        try:
            self.frames.close()
        finally:
            self.container.close()


class RTSPSource(LiveSource):
    """Options: ``transport`` (tcp|udp, default tcp), ``timeout`` (seconds for open and for each
    read, default 5), ``backend`` (auto|pyav|opencv), plus the live options."""

    OPTIONS = {**LiveSource.LIVE_OPTIONS, "transport": str, "timeout": float, "backend": str}

    def __init__(self, url: str, *, uri: Optional[str] = None, transport: str = "tcp", timeout: float = 5.0,
                 backend: str = "auto", **live):
        super().__init__(redact(uri or url), **live)
        if transport not in ("tcp", "udp"):
            raise SourceError(f"{self.uri}: transport must be tcp or udp, got {transport!r}")
        if backend not in ("auto", "pyav", "opencv"):
            raise SourceError(f"{self.uri}: backend must be auto, pyav or opencv, got {backend!r}")
        self._url = url
        self.transport, self.timeout = transport, float(timeout)
        self.backend = self._pick_backend(backend)

    @staticmethod
    def _pick_backend(backend: str) -> str:
        if backend in ("auto", "pyav"):
            try:
                import av  # noqa: F401

                return "pyav"
            except ImportError:
                if backend == "pyav":
                    raise SourceError("PyAV is not installed: pip install av") from None
        return "opencv"

    def _device_open(self) -> Any:
        if self.backend == "pyav":
            try:
                handle = _PyAVStream(self._url, self.transport, self.timeout)
            except SourceError:
                raise
            except Exception as exc:  # noqa: BLE001 - network/FFmpeg errors become one line
                detail = " ".join(redact(str(exc).replace(self._url, self.uri)).split())[:160]
                raise SourceError(f"cannot open {self.uri}: {detail}") from None
            self.fps = handle.fps
            return handle
        cv2 = ocv.require_cv2("RTSP streams without PyAV")
        # OpenCV's FFmpeg backend takes demuxer options only from this variable (read at open).
        os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", f"rtsp_transport;{self.transport}")
        ms = int(self.timeout * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        cap = ocv.open_capture(self._url, cv2.CAP_FFMPEG, f"stream {self.uri}", params=params)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None
        return cap

    def _device_read(self, handle: Any) -> ReadResult:
        return handle.read() if self.backend == "pyav" else ocv.read_bgr(handle)

    def _device_close(self, handle: Any) -> None:
        handle.close() if self.backend == "pyav" else ocv.release(handle)

    def _to_rgb(self, raw):
        return raw.to_ndarray(format="rgb24") if self.backend == "pyav" else ocv.bgr_to_rgb(raw)
