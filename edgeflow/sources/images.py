"""Stub (being implemented): ImageSource."""

from edgeflow.errors import SourceError
from edgeflow.sources.base import Source


class ImageSource(Source):
    is_live = False
    OPTIONS = {"realtime": bool, "loop": bool, "fps": float, }

    def __init__(self, location, *, uri, **options):
        super().__init__(uri)
        self.location = location
        self.options = options

    def _open(self):
        raise SourceError(f"{self.uri}: ImageSource is not implemented yet")

    def _read(self, timeout):
        return None

    def _close(self):
        pass
