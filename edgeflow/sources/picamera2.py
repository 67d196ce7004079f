"""Stub (being implemented): Picamera2Source."""

from edgeflow.errors import SourceError
from edgeflow.sources.base import Source


class Picamera2Source(Source):
    is_live = True
    OPTIONS = {"width": int, "height": int, "fps": float, }

    def __init__(self, location, *, uri, **options):
        super().__init__(uri)
        self.location = location
        self.options = options

    def _open(self):
        raise SourceError(f"{self.uri}: Picamera2Source is not implemented yet")

    def _read(self, timeout):
        return None

    def _close(self):
        pass
