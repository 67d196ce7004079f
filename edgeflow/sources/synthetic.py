"""Stub (being implemented): SyntheticSource."""

from edgeflow.errors import SourceError
from edgeflow.sources.base import Source


class SyntheticSource(Source):
    is_live = False
    OPTIONS = {"width": int, "height": int, "frames": int, "seed": int, "fps": float, "realtime": bool, "loop": bool, }

    def __init__(self, location, *, uri, **options):
        super().__init__(uri)
        self.location = location
        self.options = options

    def _open(self):
        raise SourceError(f"{self.uri}: SyntheticSource is not implemented yet")

    def _read(self, timeout):
        return None

    def _close(self):
        pass
