"""Stub (being implemented): V4L2Source."""

from edgeflow.errors import SourceError
from edgeflow.sources.base import Source


class V4L2Source(Source):
    is_live = True
    OPTIONS = {"width": int, "height": int, "fps": float, }

    def __init__(self, location, *, uri, **options):
        super().__init__(uri)
        self.location = location
        self.options = options

    def _open(self):
        raise SourceError(f"{self.uri}: V4L2Source is not implemented yet")

    def _read(self, timeout):
        return None

    def _close(self):
        pass
