"""``--save out.mp4``: the frame and its colour-wheel flow side by side, encoded as a video.

PyAV (H.264 via libx264 when the FFmpeg build has it, else MPEG-4 Part 2) is preferred; OpenCV's
``VideoWriter`` (mp4v) is the fallback. The writer opens on the first result, when the frame size
is known. Encoding happens on the consumer thread and is counted in the ``sink`` stage, so
``--save`` costs show up in the latency numbers instead of hiding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from edgeflow.errors import EdgeflowError, InputError
from edgeflow.sinks.base import Sink


class VideoSink(Sink):
    """``max_flow``: flow magnitude (px) for full colour saturation; fixed values keep colours
    comparable across frames (default: per-frame maximum). ``fps``: output rate (default: the
    source's nominal rate, else 30). ``labels``: a caption over each panel, drawn by OpenCV or
    Pillow; None (default) draws them when one of those is installed, True without either is one
    error line at open."""

    name = "video"

    def __init__(self, path, fps: Optional[float] = None, max_flow: Optional[float] = None, labels: Optional[bool] = None,
                 backend: str = "auto"):
        self.path = Path(path)
        self.fps = fps
        self.max_flow = max_flow
        self.labels = labels
        self.backend = backend
        self.frames = 0
        self._writer = None

    def open(self, info: dict) -> None:
        from edgeflow.flow.visualize import LABELS_HINT, labels_available

        if self.labels is not False:
            available = labels_available()
            if self.labels and not available:
                raise EdgeflowError(LABELS_HINT)
            self.labels = available
        if self.fps is None:
            fps = info.get("source_fps")
            self.fps = float(fps) if fps and fps > 0 else 30.0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(f"cannot create the folder for {self.path}: {err.strerror or err}") from None

    def compose(self, result) -> np.ndarray:
        from edgeflow.flow import flow_to_color, side_by_side

        colour = flow_to_color(result.flow, max_flow=self.max_flow)
        labels = [f"frame {result.index}", "flow"] if self.labels else None
        canvas = side_by_side([result.frame, colour], labels=labels)
        h, w = canvas.shape[:2]
        if h % 2 or w % 2:  # yuv420p needs even sizes
            canvas = np.pad(canvas, ((0, h % 2), (0, w % 2), (0, 0)))
        return canvas

    def on_result(self, result) -> None:
        canvas = self.compose(result)
        if self._writer is None:
            self._writer = _open_writer(self.path, canvas.shape[1], canvas.shape[0], self.fps, self.backend)
        self._writer.write(canvas)
        self.frames += 1

    def close(self, report=None) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()


def _open_writer(path: Path, width: int, height: int, fps: float, backend: str):
    errors = []
    if backend in ("auto", "av"):
        try:
            return _AvWriter(path, width, height, fps)
        except ImportError:
            errors.append("PyAV is not installed")
        except Exception as err:  # noqa: BLE001 - try the next backend
            errors.append(f"PyAV: {err}")
    if backend in ("auto", "opencv"):
        try:
            return _CvWriter(path, width, height, fps)
        except ImportError:
            errors.append("OpenCV is not installed")
        except Exception as err:  # noqa: BLE001
            errors.append(f"OpenCV: {err}")
    raise EdgeflowError(f"cannot write {path}: {'; '.join(errors)}; install PyAV: pip install av (on a Pi/Jetson add -c constraints/<device>.txt)")


class _AvWriter:
    def __init__(self, path: Path, width: int, height: int, fps: float):
        import av
        from fractions import Fraction

        self._av = av
        self.container = av.open(str(path), mode="w")
        try:
            rate = Fraction(fps).limit_denominator(1001)
            codecs = ("libx264", "h264", "mpeg4") if path.suffix.lower() in (".mp4", ".mkv", ".mov", "") else ("mpeg4",)
            last = None
            for codec in codecs:
                try:
                    self.stream = self.container.add_stream(codec, rate=rate)
                    break
                except Exception as err:  # noqa: BLE001 - codec missing in this FFmpeg build
                    last = err
            else:
                raise last
            self.stream.width, self.stream.height = width, height
            self.stream.pix_fmt = "yuv420p"
            if self.stream.codec_context.name == "libx264":
                self.stream.options = {"preset": "veryfast", "crf": "20"}
        except BaseException:
            self.container.close()
            raise

    def write(self, rgb: np.ndarray) -> None:
        frame = self._av.VideoFrame.from_ndarray(rgb, format="rgb24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        try:
            for packet in self.stream.encode(None):  # flush delayed frames
                self.container.mux(packet)
        finally:
            self.container.close()


class _CvWriter:
    def __init__(self, path: Path, width: int, height: int, fps: float):
        import cv2

        self._cv2 = cv2
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
        if not self.writer.isOpened():
            raise RuntimeError("VideoWriter could not open the file (codec or path)")

    def write(self, rgb: np.ndarray) -> None:
        self.writer.write(self._cv2.cvtColor(rgb, self._cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        self.writer.release()
