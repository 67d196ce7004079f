"""Source URIs, jetson-inference style: one string names a camera, a file, a folder or a generator.

``parse_uri`` only classifies the string (and checks that files exist); it opens nothing, so
a typo fails fast with the list of what is supported. Query options (``?width=640&fps=30``)
come back as strings; :func:`coerce_options` turns them into the types a source declares.

=====================================  =========  ==========================================
URI                                    kind       location
=====================================  =========  ==========================================
``picamera2://0``                      picamera2  camera number (int)
``csi://0``                            csi        sensor id (int)
``/dev/video0``, ``v4l2://0``          v4l2       device path ``/dev/videoN``
``rtsp://host/path``, ``rtsps://``     rtsp       the full URL (its query is left alone)
``synthetic://?width=320&frames=100``  synthetic  ``""``
``clip.mp4``, ``file:///x/clip.mkv``   video      file path
``frames/``, ``"frames/*.png"``        images     folder path or glob pattern
=====================================  =========  ==========================================
"""

from __future__ import annotations

import glob
import logging
import os
import re
from typing import Any, Callable, Mapping, NamedTuple
from urllib.parse import parse_qsl, unquote

from edgeflow.errors import SourceError

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".h264", ".h265")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

#: scheme -> what it is, for the error message on unknown schemes.
SUPPORTED = {
    "picamera2://N": "Raspberry Pi camera N (picamera2)",
    "csi://N": "Jetson CSI camera N (GStreamer nvarguscamerasrc)",
    "v4l2://N or /dev/videoN": "USB/V4L2 camera",
    "rtsp://...": "RTSP network stream",
    "synthetic://?width=&height=&frames=&seed=&fps=": "moving textures with exact ground-truth flow",
    "PATH.mp4|.mkv|.avi|.mov|.webm": "video file (or file://PATH)",
    "DIR or 'GLOB*.png'": "image folder or glob",
}


class ParsedURI(NamedTuple):
    kind: str  # picamera2 | csi | v4l2 | rtsp | synthetic | video | images
    location: Any  # int camera number, device path, URL or file path
    options: dict  # query options, values are strings


def supported_text() -> str:
    return "; ".join(SUPPORTED)


def parse_uri(uri) -> ParsedURI:
    """Classify ``uri``; :class:`SourceError` with one line for anything unusable."""
    if isinstance(uri, int) and not isinstance(uri, bool):
        return ParsedURI("v4l2", f"/dev/video{uri}", {})
    if not isinstance(uri, (str, os.PathLike)):
        raise SourceError(f"a source URI must be a string, got {type(uri).__name__}; supported: {supported_text()}")
    text = os.fspath(uri).strip()
    if not text:
        raise SourceError(f"empty source URI; supported: {supported_text()}")

    match = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]*)://(.*)$", text, re.S)
    if match is None:
        if re.fullmatch(r"/dev/video\d+", text):
            return ParsedURI("v4l2", text, {})
        return _classify_path(text)

    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme in ("rtsp", "rtsps"):
        return ParsedURI("rtsp", text, {})
    if scheme == "file":
        return _classify_path(unquote(rest))
    location, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True))
    if scheme == "synthetic":
        if location.strip("/"):
            raise SourceError(f"{text}: synthetic:// takes only options, e.g. synthetic://?width=320&height=240")
        return ParsedURI("synthetic", "", options)
    if scheme == "v4l2":
        if re.fullmatch(r"/dev/video\d+", location):
            return ParsedURI("v4l2", location, options)
        return ParsedURI("v4l2", f"/dev/video{_camera_number(text, location)}", options)
    if scheme in ("csi", "picamera2"):
        return ParsedURI(scheme, _camera_number(text, location), options)
    raise SourceError(f"unknown source scheme '{scheme}://' in {redact(text)!r}; supported: {supported_text()}")


def _camera_number(uri: str, location: str) -> int:
    location = location.strip("/")
    if location == "":
        return 0
    if not location.isdigit():
        raise SourceError(f"{uri}: expected a camera number after '://', e.g. csi://0")
    return int(location)


def _classify_path(path: str) -> ParsedURI:
    if os.path.isdir(path):
        return ParsedURI("images", path, {})
    extension = os.path.splitext(path)[1].lower()
    if glob.has_magic(path) and not os.path.exists(path):
        return ParsedURI("images", path, {})
    if not os.path.exists(path):
        what = "video file" if extension in VIDEO_EXTENSIONS else "file or folder"
        raise SourceError(f"{what} not found: {path}")
    if extension in IMAGE_EXTENSIONS:
        return ParsedURI("images", path, {})
    # Known video extension, or an unknown one: let the decoder decide ("not a video" at open).
    return ParsedURI("video", path, {})


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _to_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise ValueError(value)


_CONVERTERS: dict = {bool: _to_bool, int: int, float: float, str: str}


def coerce_options(uri: str, options: Mapping[str, Any], spec: Mapping[str, type]) -> dict:
    """Check option names against ``spec`` (name -> bool/int/float/str/callable) and convert
    values (query strings or Python values). Unknown names and bad values -> one-line SourceError."""
    out = {}
    for name, value in options.items():
        if name not in spec:
            accepted = ", ".join(sorted(spec)) or "none"
            raise SourceError(f"{uri}: unknown option {name!r}; accepted options: {accepted}")
        if value is None:
            out[name] = None
            continue
        kind = spec[name]
        convert: Callable = _CONVERTERS.get(kind, kind)
        try:
            if kind is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            out[name] = convert(value)
        except (TypeError, ValueError):
            tname = getattr(kind, "__name__", str(kind))
            raise SourceError(f"{uri}: option {name}={value!r} is not a valid {tname}") from None
    return out


#: ``scheme://userinfo@``: up to the last ``@`` before the path (where ffmpeg and GStreamer split
#: it too), so a password with an unescaped ``@`` is masked whole.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/?#'\"<>]*)@")
#: Query parameters that carry secrets in camera and streaming URLs.
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&;](?:password|passwd|pass|pwd|secret|token|access_token|auth|api_?key|key|sig|signature|credentials?)=)"
    r"(?P<value>[^&#\s'\"]*)", re.IGNORECASE)


def _mask_userinfo(match: re.Match) -> str:
    user, colon, _secret = match.group("userinfo").partition(":")
    return f"{match.group('scheme')}{user}:***@" if colon else f"{match.group('scheme')}***@"


class RedactingFilter(logging.Filter):
    """Masks credentials in log records (attached to the ``edgeflow.sources`` logger: a library
    error quoted in a reconnect warning may carry the full camera URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def redact(text) -> str:
    """Mask credentials in every URI inside ``text``: ``rtsp://user:secret@host/x`` ->
    ``rtsp://user:***@host/x``, ``rtsp://token@host`` -> ``rtsp://***@host``, and the values of
    ``password=`` / ``token=`` / ``key=``-style query parameters. Works on a bare URI and on a
    message that quotes one (library errors do). The one helper for every place a URI is stored
    or shown: ``Source.uri``, reports, JSON lines, logs, the console, the metrics endpoint."""
    if text is None:
        return None
    text = str(text)
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(_mask_userinfo, text)
    return _SECRET_PARAM.sub(lambda m: f"{m.group('key')}***", text)


logging.getLogger("edgeflow.sources").addFilter(RedactingFilter())
