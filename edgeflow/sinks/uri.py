"""Sink URIs, jetson-utils ``videoOutput`` style: one string names where results go.

The mirror of :mod:`edgeflow.sources.uri`: ``open_sink("flow.mp4")`` and ``open_source("clip.mp4")``
read the same way, and one table below is the only place a scheme or a file extension is
recognized, so the CLI's flags (``--save``, ``--jsonl``, ``--csv``, ``--metrics-port``,
``--serve``), its repeatable ``--output URI`` and a Python caller all go through the same check
and get the same one-line error for anything unknown.

=====================================  ==========  ========================================
URI                                    kind        sink
=====================================  ==========  ========================================
``flow.mp4`` (.mkv .avi .mov)          video       frame + colour-wheel flow, encoded
``frames.jsonl`` (.ndjson)             jsonl       one JSON line per frame
``log.csv``                            csv         one CSV row per frame
``prometheus://127.0.0.1:9108``        prometheus  ``/metrics`` scrape endpoint (port 0: any)
``http://127.0.0.1:8080``              watch       the live page (needs aiohttp)
``file:///abs/path.jsonl``             by suffix   the path after ``file://``
=====================================  ==========  ========================================

Query options go to the sink (``flow.mp4?max_flow=20&fps=25``, ``http://:8080?fps=2``), typed
and checked like source options. Modules are imported by name on first use (as
``edgeflow.sinks.__getattr__`` does), so a device without PyAV, prometheus_client or aiohttp can
still open the others, and this module imports no sink (nor the live page) at import time.
"""

from __future__ import annotations

import importlib
import os
from typing import NamedTuple
from urllib.parse import parse_qsl, unquote

from edgeflow.errors import InputError, SourceError


class SinkKind(NamedTuple):
    module: str  # imported on first use
    cls: str
    schemes: tuple  # URI schemes naming this kind (host:port sinks)
    extensions: tuple  # file suffixes naming this kind (file sinks)
    options: dict  # option name -> type, accepted in the query or as keywords
    example: str


#: The one table of sink URIs: kind -> how it is named and built.
SINKS: dict[str, SinkKind] = {
    "video": SinkKind("edgeflow.sinks.video", "VideoSink", (), (".mp4", ".mkv", ".avi", ".mov"),
                      {"fps": float, "max_flow": float, "labels": bool}, "flow.mp4"),
    "jsonl": SinkKind("edgeflow.sinks.jsonl", "JsonlSink", (), (".jsonl", ".ndjson"), {}, "frames.jsonl"),
    "csv": SinkKind("edgeflow.sinks.csvfile", "CsvSink", (), (".csv",), {}, "log.csv"),
    "prometheus": SinkKind("edgeflow.sinks.prometheus", "PrometheusSink", ("prometheus",), (),
                           {"request_timeout": float}, "prometheus://127.0.0.1:9108"),
    "watch": SinkKind("edgeflow.watch.sink", "WatchSink", ("http",), (),
                      {"fps": float, "cpu_budget": float, "drift": object, "slo": object}, "http://127.0.0.1:8080"),
}
DEFAULT_HOST = "127.0.0.1"


class ParsedSink(NamedTuple):
    kind: str
    location: object  # a file path, or (host, port)
    options: dict  # query options, values are strings


def supported_text() -> str:
    return ", ".join(k.example for k in SINKS.values())


def parse_sink_uri(uri, kind: str | None = None) -> ParsedSink:
    """Classify ``uri``; ``kind`` forces a file kind (the CLI's ``--jsonl F`` takes any name).
    One-line :class:`InputError` for anything unknown, naming what is supported."""
    if kind is not None and kind not in SINKS:
        raise InputError(f"unknown sink kind {kind!r}; known: {', '.join(SINKS)}")
    if not isinstance(uri, (str, os.PathLike)) or not os.fspath(uri).strip():
        raise InputError(f"a sink URI must be a non-empty string (e.g. {supported_text()}), got {uri!r}")
    text = os.fspath(uri).strip()
    scheme, sep, rest = text.partition("://")
    if sep and scheme.replace("+", "").replace(".", "").replace("-", "").isalnum():
        scheme = scheme.lower()
        if scheme == "file":
            return _file_sink(unquote(rest), kind, text)
        for name, spec in SINKS.items():
            if scheme in spec.schemes and kind in (None, name):
                where, _, query = rest.partition("?")
                address = parse_host_port(where.rstrip("/"), f"{text!r}: expected HOST:PORT with a port 0..65535 "
                                                             f"(0: any free port), e.g. {spec.example}")
                return ParsedSink(name, address, dict(parse_qsl(query)))
        raise InputError(f"unknown sink scheme '{scheme}://' in {text!r}; supported: {supported_text()}")
    return _file_sink(text, kind, text)


def _file_sink(text: str, kind: str | None, uri: str) -> ParsedSink:
    path, _, query = text.partition("?")
    options = dict(parse_qsl(query))
    if kind is not None:
        if SINKS[kind].schemes:
            raise InputError(f"{uri!r} is a file; a {kind} sink is named like {SINKS[kind].example}")
        return ParsedSink(kind, path, options)
    suffix = os.path.splitext(path)[1].lower()
    for name, spec in SINKS.items():
        if suffix and suffix in spec.extensions:
            return ParsedSink(name, path, options)
    raise InputError(f"cannot tell what to write to {uri!r} (suffix {suffix or 'none'}); "
                     f"supported: {supported_text()}")


def parse_host_port(text: str, error: str, *, bare: str = "host") -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too; an empty host is 127.0.0.1, port 0 any free one) for every
    server the runtime opens (``prometheus://``, ``http://``, ``--serve``). A text without a colon is
    the host (``bare="host"``, then the port is missing) or the port (``bare="port"``). ``error`` is
    the one line raised when the port is not 0..65535."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = (text, "") if bare == "host" else ("", text)
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise InputError(error)
    return host.strip("[]") or DEFAULT_HOST, number


def open_sink(uri, kind: str | None = None, **options):
    """Build the sink ``uri`` names (the stream opens it). ``options`` (and the URI's query)
    go to the sink's constructor, checked against the table's option names and types."""
    parsed = parse_sink_uri(uri, kind)
    spec = SINKS[parsed.kind]
    objects = [name for name in parsed.options if spec.options.get(name) is object]
    if objects:
        raise InputError(f"{uri!r}: {', '.join(objects)} is a Python object, passed to open_sink(), not in the URI")
    types = {name: (t if t is not object else (lambda v: v)) for name, t in spec.options.items()}
    from edgeflow.sources.uri import coerce_options

    try:
        merged = coerce_options(str(uri), {**parsed.options, **options}, types)
    except SourceError as err:
        raise InputError(str(err)) from None
    cls = getattr(importlib.import_module(spec.module), spec.cls)
    if spec.schemes:
        host, port = parsed.location
        if parsed.kind == "prometheus":
            return cls(port, host=host, **merged)
        return cls(host, port, **merged)
    return cls(parsed.location, **merged)


__all__ = ["SINKS", "ParsedSink", "open_sink", "parse_sink_uri", "supported_text"]
