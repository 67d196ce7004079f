"""Stub (being implemented): VideoSource."""

from edgeflow.errors import SourceError
from edgeflow.sources.base import Source


class VideoSource(Source):
    is_live = False
    OPTIONS = {"realtime": bool, "loop": bool, }

    def __init__(self, location, *, uri, **options):
        super().__init__(uri)
        self.location = location
        self.options = options

    def _open(self):
        raise SourceError(f"{self.uri}: VideoSource is not implemented yet")

    def _read(self, timeout):
        return None

    def _close(self):
        pass
