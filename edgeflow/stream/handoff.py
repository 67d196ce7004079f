"""The bounded hand-off between the capture thread and the consumer, with an explicit drop policy.

Why not ``queue.Queue``: the ``newest`` policy must evict the oldest queued frame and enqueue the
new one atomically, and both sides must be wakeable by ``stop()`` without polling forever.

* ``newest`` (live cameras): never blocks the producer. When the queue is full, the oldest
  queued frame is evicted and returned to the caller, which records it as dropped
  (``queue_full``). Latency stays bounded by ``size`` frames; throughput is what the consumer does.
* ``block`` (files): the producer waits for room (back-pressure), so every frame is processed.
"""

from __future__ import annotations

import threading
from collections import deque

POLICIES = ("newest", "block")


class Closed:
    """Returned by :meth:`Handoff.get` once the producer closed the queue and it is drained."""


END = Closed()


class Handoff:
    def __init__(self, size: int, policy: str):
        if policy not in POLICIES:
            raise ValueError(f"drop policy must be one of {POLICIES}, got {policy!r}")
        self.size = max(1, int(size))
        self.policy = policy
        self._items: deque = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item, stop: threading.Event) -> list:
        """Enqueue ``item``; returns the items that did not make it (evicted, or ``item`` itself
        when ``stop`` was set while waiting for room)."""
        with self._cond:
            if self.policy == "newest":
                evicted = []
                while len(self._items) >= self.size:
                    evicted.append(self._items.popleft())
                self._items.append(item)
                self._cond.notify_all()
                return evicted
            while len(self._items) >= self.size:
                if stop.is_set() or self._closed:
                    return [item]
                self._cond.wait(0.05)
            self._items.append(item)
            self._cond.notify_all()
            return []

    def get(self, timeout: float):
        """The oldest item; ``None`` if nothing arrived within ``timeout``; :data:`END` once closed and empty."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if self._items:
                item = self._items.popleft()
                self._cond.notify_all()
                return item
            return END if self._closed else None

    def close(self) -> None:
        """No more items will come (the consumer still drains what is queued)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def drain(self) -> list:
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._cond.notify_all()
            return items

    def __len__(self) -> int:
        return len(self._items)
