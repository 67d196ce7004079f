"""Optional dependencies, imported lazily and once.

OpenCV is slow to import and optional on a device (a Jetson should use the system build with
GStreamer, a Pi may have none), so modules that can use it ask here instead of importing it.
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def cv2_or_none():
    """The ``cv2`` module if it imports, else None (a broken system build may raise anything)."""
    try:
        import cv2
    except Exception:
        return None
    return cv2
