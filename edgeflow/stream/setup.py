"""A stream's arguments: checked in one place (:class:`StreamSettings`), then the model, source
and sinks they name opened (:func:`open_model`, :func:`open_source`, :func:`as_sink`).

Checking everything in the constructor means a misused ``Stream(...)`` fails with one line
before a model loads or a camera opens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from edgeflow.budget import SPIN_CHOICES
from edgeflow.errors import InputError

DROP_POLICIES = ("auto", "newest", "block")


@dataclass(frozen=True)
class StreamSettings:
    """What ``Stream(...)`` was asked to do, checked (see :class:`~edgeflow.stream.core.Stream`)."""

    drop_policy: str = "auto"
    queue_size: int = 2
    sink_queue_size: int = 4
    cache_features: bool = True
    max_frames: Optional[int] = None
    duration: Optional[float] = None
    report_path: Optional[Path] = None
    backend: str = "auto"
    threads: Optional[int] = None
    spin: str = "auto"
    source_options: dict = field(default_factory=dict)
    max_samples: int = 100_000

    @classmethod
    def checked(cls, *, drop_policy="auto", queue_size=2, sink_queue_size=4, cache_features=True, max_frames=None,
                duration=None, report=None, backend="auto", threads=None, spin="auto", source_options=None,
                max_samples=100_000) -> "StreamSettings":
        """The settings, or one :class:`InputError` line naming the argument and what it takes."""
        if drop_policy not in DROP_POLICIES:
            raise InputError(f"drop_policy must be one of {', '.join(DROP_POLICIES)}, got {drop_policy!r}")
        if int(queue_size) < 1:
            raise InputError(f"queue_size must be >= 1, got {queue_size}")
        if int(sink_queue_size) < 1:
            raise InputError(f"sink_queue_size must be >= 1, got {sink_queue_size}")
        if max_frames is not None and int(max_frames) < 1:
            raise InputError(f"max_frames must be >= 1, got {max_frames}")
        if duration is not None and not float(duration) > 0:
            raise InputError(f"duration must be > 0 seconds, got {duration}")
        if threads is not None and int(threads) < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        if spin not in SPIN_CHOICES:
            raise InputError(f"spin must be one of {', '.join(SPIN_CHOICES)}, got {spin!r}")
        return cls(drop_policy=drop_policy, queue_size=int(queue_size), sink_queue_size=int(sink_queue_size),
                   cache_features=bool(cache_features), max_frames=None if max_frames is None else int(max_frames),
                   duration=None if duration is None else float(duration), report_path=Path(report) if report else None,
                   backend=backend, threads=threads, spin=spin, source_options=dict(source_options or {}),
                   max_samples=max_samples)

    def policy_for(self, source) -> str:
        """``auto`` is ``newest`` for a live source (bounded latency), ``block`` otherwise (every frame)."""
        if self.drop_policy != "auto":
            return self.drop_policy
        return "newest" if getattr(source, "is_live", False) else "block"


def open_model(arg, settings: StreamSettings):
    """``(model, owned)``: a model given as it is, or loaded from an artifact path (``None``: the
    bundled one) with the settings' backend and thread budget, then owned (closed) by the stream."""
    if arg is None or isinstance(arg, (str, Path)):
        from edgeflow.model import FlowModel  # onnxruntime loads here, after the arguments are checked

        return FlowModel.load(arg, backend=settings.backend, threads=settings.threads, spin=settings.spin), True
    if not all(hasattr(arg, m) for m in ("geometry", "infer_network", "last_stage_times")):
        raise InputError(f"Stream needs a FlowModel (edgeflow.load(...)) or an artifact path, got {type(arg).__name__}")
    if settings.threads is not None or settings.spin != "auto":
        raise InputError("threads and spin apply when the stream loads the model; pass them to edgeflow.load(...)")
    return arg, False


def open_source(arg, settings: StreamSettings, model):
    """A :class:`~edgeflow.sources.Source` given as it is (opened), or one opened from its URI with
    the settings' ``source_options``; a video file decodes with the model's budgeted threads."""
    if hasattr(arg, "read") and hasattr(arg, "close"):
        if settings.source_options:
            raise InputError("source_options apply only when the source is given as a URI")
        return arg.open() if hasattr(arg, "open") else arg
    from edgeflow.sources import open_source as open_uri, parse_uri

    options = dict(settings.source_options)
    budget = getattr(model, "budget", None)
    if budget is not None and "threads" not in options and parse_uri(arg).kind == "video" \
            and "threads=" not in str(arg):
        options["threads"] = budget.decode_threads  # the budget decides decoding threads too
    return open_uri(arg, **options)


def as_sink(obj):
    """A :class:`~edgeflow.sinks.base.Sink` (or anything with its four methods) as it is; a plain
    callable wrapped in a :class:`~edgeflow.sinks.callback.CallbackSink`."""
    from edgeflow.sinks.base import Sink
    from edgeflow.sinks.callback import CallbackSink

    if isinstance(obj, Sink) or all(hasattr(obj, m) for m in ("open", "on_result", "on_record", "close")):
        return obj
    if callable(obj):
        return CallbackSink(obj)
    raise InputError(f"a sink must be a Sink or a callable taking a Result, got {type(obj).__name__}")
