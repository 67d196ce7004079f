"""Stub (being implemented): RTSPSource."""

from edgeflow.errors import SourceError
from edgeflow.sources.base import Source


class RTSPSource(Source):
    is_live = True
    OPTIONS = {}

    def __init__(self, location, *, uri, **options):
        super().__init__(uri)
        self.location = location
        self.options = options

    def _open(self):
        raise SourceError(f"{self.uri}: RTSPSource is not implemented yet")

    def _read(self, timeout):
        return None

    def _close(self):
        pass
