"""The streaming pipeline: frames from a source, flow for consecutive pairs, latency for every frame.

See :class:`~edgeflow.stream.core.Stream` and ``docs/streaming.md``.
"""

from edgeflow.stream.core import DROP_POLICIES, Stream
from edgeflow.sources.iterable import IterableSource  # a Source; kept here for existing imports
from edgeflow.stream.records import FrameRecord, Result

__all__ = ["DROP_POLICIES", "FrameRecord", "IterableSource", "Result", "Stream"]
