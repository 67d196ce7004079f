"""The bounded queues between the stream's threads, each with an explicit drop policy.

Why not ``queue.Queue``: the ``newest`` policy must evict the oldest queued item and enqueue the
new one atomically, evicted items must still be accounted for (every frame gets one record), and
both sides must be wakeable by ``stop()`` without polling forever.

* ``newest`` (live cameras): never blocks the producer. When the queue is full, the oldest
  queued item is evicted into ``notices`` with the queue's drop reason. Latency stays bounded by
  ``size`` items; throughput is what the consumer does.
* ``block`` (files): the producer waits for room (back-pressure), so every frame is processed.

Two instances run in a stream: the **hand-off** (capture -> inference, reason ``queue_full``: the
one place frames are dropped for being late) and the **delivery** queue (inference -> sinks and
the caller's loop, reason ``sink_full``: a slow sink or loop body never slows the model; under
``newest`` the oldest waiting result loses its flow but keeps its record).

Notices (``(frame, reason)`` pairs) ride along: :meth:`get` returns the ones noted before the
item it hands out, so the consumer can write every record in frame order.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable, Optional

POLICIES = ("newest", "block")


class Closed:
    """Returned by :meth:`Handoff.get` once the producer closed the queue and it is drained."""


END = Closed()


class Handoff:
    """``counts(item)`` says whether an item takes a slot (default: every item does); items that
    do not (small records) pass without ever being dropped. ``demote(item)`` turns an evicted item
    into what goes into ``notices`` (default: ``(item, reason)``)."""

    def __init__(self, size: int, policy: str, reason: str = "queue_full", *, counts: Optional[Callable] = None,
                 demote: Optional[Callable] = None):
        if policy not in POLICIES:
            raise ValueError(f"drop policy must be one of {POLICIES}, got {policy!r}")
        self.size = max(1, int(size))
        self.policy = policy
        self.reason = reason
        self.dropped = 0
        self._counts = counts or (lambda item: True)
        self._demote = demote
        self._items: deque = deque()
        self._heavy = 0  # items that take a slot
        self._notices: list = []
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item, stop: threading.Event) -> bool:
        """Enqueue ``item``; False when ``stop`` was set while waiting for room (``item`` not queued)."""
        heavy = self._counts(item)
        with self._cond:
            if heavy and self.policy == "newest":
                while self._heavy >= self.size:
                    self._evict_oldest()
            while heavy and self._heavy >= self.size:
                if stop.is_set() or self._closed:
                    return False
                self._cond.wait(0.05)
            self._items.append(item)
            self._heavy += bool(heavy)
            self._cond.notify_all()
            return True

    def _evict_oldest(self) -> None:
        for i, old in enumerate(self._items):
            if self._counts(old):
                self.dropped += 1
                self._heavy -= 1
                if self._demote is not None:
                    self._items[i] = self._demote(old, self.reason)  # keeps its place: records stay in order
                else:
                    del self._items[i]
                    self._notices.append((old, self.reason))
                return

    def note(self, item, reason: str) -> None:
        """Account for an item that never entered the queue (e.g. an invalid frame)."""
        with self._cond:
            self._notices.append((item, reason))
            self._cond.notify_all()

    def get(self, timeout: float):
        """``(notices, item)``: the notices so far and the oldest item; item ``None`` if nothing
        arrived within ``timeout``, :data:`END` once closed and empty."""
        with self._cond:
            if not self._items and not self._closed and not self._notices:
                self._cond.wait(timeout)
            notices, self._notices = self._notices, []
            if self._items:
                item = self._items.popleft()
                self._heavy -= bool(self._counts(item))
                self._cond.notify_all()
                return notices, item
            return notices, (END if self._closed else None)

    def close(self) -> None:
        """No more items will come (the consumer still drains what is queued)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def drain(self) -> tuple:
        """``(notices, items)`` left over; empties the queue."""
        with self._cond:
            notices, self._notices = self._notices, []
            items = list(self._items)
            self._items.clear()
            self._heavy = 0
            self._cond.notify_all()
            return notices, items

    def __len__(self) -> int:
        return len(self._items)
