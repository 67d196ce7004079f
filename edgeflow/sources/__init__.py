"""Frame sources: cameras, files, folders and a generator behind one small interface.

``open_source(uri, **options)`` picks the implementation from the URI (see
:mod:`edgeflow.sources.uri`), opens it and returns a :class:`Source`::

    with open_source("clip.mp4", realtime=True) as src:
        for frame in src:          # Frame(image=HxWx3 uint8 RGB, index, timestamp, sensor_ts, ...)
            ...
        print(src.end_reason)      # "eof", "corrupt: ...", "disconnected", "closed"

Implementations are imported lazily, so a device without OpenCV or PyAV can still use the
sources it does have. No torch anywhere in here. See ``docs/sources.md``.
"""

from __future__ import annotations

import importlib

from edgeflow.errors import SourceError, SourceTimeout
from edgeflow.sources.base import Frame, Source
from edgeflow.sources.iterable import IterableSource
from edgeflow.sources.uri import ParsedURI, coerce_options, parse_uri, redact

__all__ = ["Frame", "IterableSource", "Source", "SourceError", "SourceTimeout", "open_source", "create_source", "parse_uri"]

#: kind (from parse_uri) -> (module, class). Each class has OPTIONS = {name: type} and a
#: constructor ``Cls(location, *, uri, **options)``.
_IMPLEMENTATIONS = {
    "video": ("edgeflow.sources.video", "VideoSource"),
    "images": ("edgeflow.sources.images", "ImageSource"),
    "synthetic": ("edgeflow.sources.synthetic", "SyntheticSource"),
    "v4l2": ("edgeflow.sources.v4l2", "V4L2Source"),
    "rtsp": ("edgeflow.sources.rtsp", "RTSPSource"),
    "csi": ("edgeflow.sources.csi", "CSISource"),
    "picamera2": ("edgeflow.sources.picamera2", "Picamera2Source"),
}


def create_source(uri, **options) -> Source:
    """Build the source for ``uri`` without opening it. Query options in the URI and keyword
    ``options`` are merged (keywords win); unknown names raise :class:`SourceError`."""
    parsed: ParsedURI = parse_uri(uri)
    module_name, class_name = _IMPLEMENTATIONS[parsed.kind]
    cls = getattr(importlib.import_module(module_name), class_name)
    merged = {**parsed.options, **options}
    text = redact(str(uri))  # what the source calls itself in messages, reports and logs; it opens parsed.location
    return cls(parsed.location, uri=text, **coerce_options(text, merged, cls.OPTIONS))


def open_source(uri, **options) -> Source:
    """Build and open the source for ``uri`` (file paths, ``/dev/videoN``, ``v4l2://N``,
    ``csi://N``, ``picamera2://N``, ``rtsp://...``, image folders/globs, ``synthetic://?...``).

    Common options: ``realtime`` and ``loop`` (files, folders, synthetic); ``width``, ``height``,
    ``fps`` (cameras, synthetic); live sources also take ``backoff_initial``, ``backoff_max``
    (seconds) and ``max_retries``. Each class lists its own in ``OPTIONS``; see docs/sources.md.
    Raises :class:`SourceError` with one line when the URI, an option or the device is unusable.
    """
    source = create_source(uri, **options)
    try:
        return source.open()
    except BaseException:
        source.close()
        raise
