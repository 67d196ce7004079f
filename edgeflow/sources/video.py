"""Video files (.mp4 .mkv .avi .mov .webm ...) through PyAV, with OpenCV as the fallback decoder.

Files decode on demand in the reader's thread (FFmpeg's own frame/slice threads do the heavy
lifting, ``thread_type="AUTO"``), so nothing is dropped for being slow: ``realtime=True`` only
paces the frames at the file's rate, otherwise they come as fast as the consumer reads.

Damaged files must not take the pipeline down, and must not pass for healthy ones. Every frame
that can be decoded is delivered (undecodable packets are skipped, ``on_error="skip"``; or the
pass ends at the first one, ``on_error="stop"``), then ``read()`` returns ``None`` and
``end_reason`` says ``"corrupt: <one line>"`` instead of ``"eof"``. That covers decode errors, a
container that stops early (fewer frames than its header announces: a truncated recording), a
demuxer that gives up, and a container whose index is gone (an ``.mp4`` cut before its ``moov``
box opens as an empty stream). No exception from inside the decoder ever reaches the caller.
Only a file that is not a video at all (no known container signature) is a
:class:`SourceError`, like a missing file.
"""

from __future__ import annotations

import math
import os
import time
from typing import Optional, Tuple

import numpy as np

from edgeflow.errors import SourceError
from edgeflow.sources.base import Frame, Source, as_rgb_frame
from edgeflow.sources.pacing import Pacer

Decoded = Tuple[np.ndarray, Optional[float]]  # (RGB image, PTS seconds or None)


class CorruptVideo(Exception):
    """Internal: the file is a video but cannot be decoded further (message is one line)."""


def one_line(exc: BaseException, limit: int = 160) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def looks_like_video_container(path: str) -> bool:
    """Container signature check: tells a damaged recording from a file that is no video."""
    try:
        with open(path, "rb") as f:
            head = f.read(400)
    except OSError:
        return False
    return (
        head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")  # mp4/mov
        or head[:4] == b"\x1a\x45\xdf\xa3"  # matroska/webm (EBML)
        or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
        or (len(head) > 188 and head[0] == 0x47 and head[188] == 0x47)  # MPEG-TS
        or head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x00\x01", b"\x00\x00\x01\xb3")  # PS / Annex-B
        or head[:4] == b"OggS"
    )


def _open_failure(path: str, exc: BaseException):
    """Classify a failure to open: missing/unreadable/not-a-video -> SourceError, damaged -> CorruptVideo."""
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return SourceError(f"cannot read video file {path}: {one_line(exc)}")
    if looks_like_video_container(path):
        return CorruptVideo(f"cannot open container ({one_line(exc)})")
    return SourceError(f"not a video file: {path} ({one_line(exc)})")


class _PyAVDecoder:
    """One pass over a file with PyAV.

    ``on_error="skip"``: a packet the decoder rejects is skipped and decoding goes on at the
    next one (what every player does; a glitch costs a few frames, not the rest of the file);
    ``"stop"``: the first rejected packet ends the pass. Either way more than
    ``MAX_CONSECUTIVE_ERRORS`` rejected packets in a row end it (a file that is garbage from
    there on), and ``errors``/``first_error`` let the source report the damage at the end.
    With frame threads (``threads != 1``) a damaged packet can also take the few frames then in
    flight in other threads with it; ``threads=1`` recovers every decodable frame.
    """

    MAX_CONSECUTIVE_ERRORS = 64

    def __init__(self, path: str, threads: int, on_error: str = "skip"):
        import av

        try:
            self._container = av.open(path, mode="r")
        except Exception as exc:  # noqa: BLE001 - every PyAV failure is classified, none escapes
            raise _open_failure(path, exc) from None
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"no video stream in {path}")
        stream = self._container.streams.video[0]
        if threads != 1:
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = max(0, threads)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self.fps: Optional[float] = float(rate) if rate else None
        self.expected_frames = int(stream.frames or 0)
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif self._container.duration:
            duration = self._container.duration / 1_000_000.0  # AV_TIME_BASE
        self.duration: Optional[float] = duration
        self.on_error = on_error
        self.errors = 0
        self.first_error: Optional[str] = None
        self._stream = stream
        self._frames = self._decode()

    def _decode(self):
        consecutive = 0
        try:
            for packet in self._container.demux(self._stream):
                try:
                    frames = packet.decode()
                except Exception as exc:  # noqa: BLE001 - damaged data, see class doc
                    self.errors += 1
                    self.first_error = self.first_error or one_line(exc)
                    consecutive += 1
                    if self.on_error == "stop" or consecutive > self.MAX_CONSECUTIVE_ERRORS:
                        break
                    continue
                consecutive = 0
                yield from frames
        except Exception as exc:  # noqa: BLE001 - the demuxer gave up (broken container)
            self.errors += 1
            self.first_error = self.first_error or one_line(exc)
        if self.errors:
            # Frames still held by the decoder were decoded before the damage: deliver them.
            try:
                yield from self._stream.codec_context.decode(None)
            except Exception:  # noqa: BLE001 - already flushed, or the decoder is wedged
                pass

    def next(self) -> Optional[Decoded]:
        try:
            frame = next(self._frames)
        except StopIteration:
            return None
        except Exception as exc:  # noqa: BLE001
            raise CorruptVideo(f"decode error ({one_line(exc)})") from None
        try:
            image = frame.to_ndarray(format="rgb24")
        except Exception as exc:  # noqa: BLE001
            raise CorruptVideo(f"cannot convert frame ({one_line(exc)})") from None
        pts = frame.time
        return image, (float(pts) if pts is not None and math.isfinite(pts) else None)

    def close(self) -> None:
        try:
            self._frames.close()
        finally:
            self._container.close()


class _OpenCVDecoder:
    """One pass over a file with OpenCV (when PyAV is not installed)."""

    def __init__(self, path: str, threads: int, on_error: str = "skip"):
        import cv2

        self._cv2 = cv2
        self._cap = cv2.VideoCapture(path)
        if not self._cap.isOpened():
            self._cap.release()
            raise _open_failure(path, RuntimeError("OpenCV cannot open it"))
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 and fps < 1000 else None
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.expected_frames = int(count) if count and count > 0 else 0
        self.duration = None
        self.errors = 0  # OpenCV skips damaged data silently; only the frame count tells
        self.first_error = None

    def next(self) -> Optional[Decoded]:
        try:
            ok, bgr = self._cap.read()
            if not ok or bgr is None:
                return None
            pts_ms = self._cap.get(self._cv2.CAP_PROP_POS_MSEC)
            rgb = self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB)
        except Exception as exc:  # noqa: BLE001
            raise CorruptVideo(f"decode error ({one_line(exc)})") from None
        return rgb, (pts_ms / 1000.0 if pts_ms is not None and math.isfinite(pts_ms) and pts_ms >= 0 else None)

    def close(self) -> None:
        self._cap.release()


def choose_backend(backend: str = "auto"):
    """(decoder class, one-line reason) for reading video files.

    PyAV first: exact PTS, decode errors that can be counted and reported. Otherwise OpenCV, on a
    Pi or a Jetson preferably the OS build (``python3-opencv``, GStreamer) seen through a
    ``--system-site-packages`` venv: a pip OpenCV would shadow it and pull NumPy 2. The reason
    names the module's origin, so a user sees at once which one is in use and why.
    """
    if backend not in ("auto", "pyav", "opencv"):
        raise SourceError(f"video backend must be auto, pyav or opencv, got {backend!r}")
    why_not_av = "opencv was asked for"
    if backend in ("auto", "pyav"):
        try:
            import av

            return _PyAVDecoder, (f"PyAV {getattr(av, '__version__', '?')} (preferred: exact timestamps, damaged "
                                  f"packets counted{'; asked for' if backend == 'pyav' else ''})")
        except ImportError:
            if backend == "pyav":
                raise SourceError("PyAV is not installed: pip install av") from None
            why_not_av = "PyAV is not installed"
    try:
        import cv2
    except ImportError:
        raise SourceError("reading video files needs PyAV or OpenCV: pip install av") from None
    except Exception as exc:  # noqa: BLE001 - e.g. an OS OpenCV broken by a pip NumPy 2
        raise SourceError(f"reading video files needs PyAV or a working OpenCV (import cv2 failed: {one_line(exc)}); "
                          "pip install av") from None
    where = os.path.dirname(getattr(cv2, "__file__", "") or "")
    origin = "the OS build" if "dist-packages" in where and "site-packages" not in where else "a pip build"
    return _OpenCVDecoder, f"OpenCV {getattr(cv2, '__version__', '?')}, {origin} ({why_not_av})"


def _decoder_class(backend: str):
    return choose_backend(backend)[0]


class VideoSource(Source):
    """A video file. Options: ``realtime`` (pace at the file's rate), ``loop`` (start over at
    the end; ``sensor_ts`` keeps increasing across passes), ``backend`` (auto|pyav|opencv),
    ``threads`` (decoder threads, 0 = FFmpeg's choice, 1 = no threading: exact recovery around
    damage), ``on_error`` (skip: pass over undecodable packets, the default; stop: end at the
    first one). Frames lost to damage are counted in ``dropped_before``/``frames_dropped``."""

    is_live = False
    OPTIONS = {"realtime": bool, "loop": bool, "backend": str, "threads": int, "on_error": str}

    def __init__(self, path: str, *, uri: Optional[str] = None, realtime: bool = False, loop: bool = False,
                 backend: str = "auto", threads: int = 0, on_error: str = "skip"):
        super().__init__(uri or path)
        self.path = os.fspath(path)
        self.realtime = realtime
        self.loop = loop
        self.threads = threads
        self.backend = backend
        if on_error not in ("skip", "stop"):
            raise SourceError(f"{self.uri}: on_error must be skip or stop, got {on_error!r}")
        self.on_error = on_error
        self._decoder_cls = None
        self.backend_reason: Optional[str] = None  # one line: which decoder reads the file and why
        self._decoder = None
        self._pacer = Pacer()
        self._pass_frames = 0  # frames decoded in the current pass
        self._pass_first_pts: Optional[float] = None
        self._pass_last_pts: Optional[float] = None
        self._passes = 0  # completed loop passes
        self._ts_offset = 0.0  # sensor_ts of the first frame of a later loop pass
        self._last_ts: Optional[float] = None
        self._frame_period = 0.0

    # ------------------------------------------------------------------ Source
    def _open(self) -> None:
        if not os.path.isfile(self.path):
            raise SourceError(f"video file not found: {self.path}")
        self._decoder_cls, self.backend_reason = choose_backend(self.backend)
        self.backend = "pyav" if self._decoder_cls is _PyAVDecoder else "opencv"
        try:
            self._start_pass()
        except CorruptVideo as exc:
            # A damaged recording opens as an empty stream with the reason recorded.
            self._finish(f"corrupt: {exc}")

    def _read(self, timeout: Optional[float]) -> Optional[Frame]:
        while self._decoder is not None:
            try:
                decoded = self._decoder.next()
            except CorruptVideo as exc:
                self._end_pass()
                self._finish(f"corrupt: {exc} after {self.frames_delivered} frames")
                return None
            if decoded is not None:
                return self._deliver(*decoded)
            damage = self._damage()
            self._end_pass()
            if damage:
                self._finish(f"corrupt: {damage}")
                return None
            if not self.loop or self._pass_frames == 0 or self._closing.is_set():
                return None
            self._ts_offset = (self._last_ts or 0.0) + self._frame_period
            self._passes += 1
            try:
                self._start_pass()
            except CorruptVideo as exc:
                self._finish(f"corrupt: {exc}")
                return None
        return None

    def _close(self) -> None:
        self._end_pass()

    # ---------------------------------------------------------------- helpers
    def _start_pass(self) -> None:
        self._decoder = self._decoder_cls(self.path, self.threads, self.on_error)
        if self._decoder.fps:
            self.fps = self._decoder.fps
            self._frame_period = 1.0 / self._decoder.fps
        self._pass_frames = 0
        self._pass_first_pts = self._pass_last_pts = None

    def _end_pass(self) -> None:
        decoder, self._decoder = self._decoder, None
        if decoder is not None:
            decoder.close()

    def _deliver(self, image: np.ndarray, pts: Optional[float]) -> Optional[Frame]:
        if pts is None and self.fps:
            pts = self._pass_frames / self.fps
        lost = 0
        if self._decoder.errors and pts is not None and self._pass_last_pts is not None and self._frame_period:
            # Damaged packets were skipped in this pass (the decoder reorders, so the error may
            # have surfaced a few frames earlier): the PTS gap says how many frames were lost,
            # reported like any other drop.
            lost = max(0, int(round((pts - self._pass_last_pts) / self._frame_period)) - 1)
            self.frames_dropped += lost
        sensor_ts = None
        if pts is not None:
            if self._pass_first_pts is None:
                self._pass_first_pts = pts
            self._pass_last_pts = pts
            # Pass 0 keeps the raw PTS; later passes continue where the previous one ended.
            sensor_ts = pts if self._passes == 0 else self._ts_offset + (pts - self._pass_first_pts)
        self._pass_frames += 1
        if self.realtime and sensor_ts is not None and self._pacer.wait(sensor_ts, self._wait):
            return None  # closed while pacing
        if sensor_ts is not None:
            self._last_ts = sensor_ts
        return Frame(image=as_rgb_frame(image), index=-1, timestamp=time.monotonic(), sensor_ts=sensor_ts,
                     dropped_before=lost)

    def _damage(self) -> Optional[str]:
        """At the end of a pass: what went wrong, as one line, or None for a clean file.
        Decoder errors, and fewer frames than the header promises (a truncated file)."""
        decoder = self._decoder
        parts = []
        expected = decoder.expected_frames
        if not expected and decoder.duration and decoder.fps:
            # No frame count (Matroska): compare durations, one frame of slack for rounding.
            expected = int(round(decoder.duration * decoder.fps)) - 1
        if expected and self._pass_frames < expected:
            hint = "" if decoder.errors else " (truncated?)"
            parts.append(f"decoded {self._pass_frames} of {expected} frames{hint}")
        if decoder.errors:
            parts.append(f"{decoder.errors} undecodable packet(s) ({decoder.first_error})")
        return "; ".join(parts) or None
