"""The inference thread: consecutive pairs through the model, each frame prepared and encoded once.

Pair (t-1, t) needs frame t-1's network tensor, or with a split artifact its encoder features.
Both are kept from the previous step instead of being recomputed, which is what makes feature
caching pay: per frame the cached path runs ``encoder(t) + decoder(t-1, t)`` instead of the
whole network on two frames.

Frames arrive already converted to network tensors (the capture thread does that) and the flow
goes back to frame pixels on the delivery side, so the thread runs the model and nothing else,
through its public network-tensor calls; the stage times are the runners' own
(``model.last_stage_times()``). What it hands on is an :class:`Outcome` per frame: a result, a
reference (the frame starts a chain) or a drop.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

import numpy as np

from edgeflow.stream.capture import Prepared
from edgeflow.stream.handoff import END, Handoff
from edgeflow.stream.records import DROPPED, REFERENCE, RESULT


class Outcome:
    """What the inference thread hands to the delivery side: a result, a reference or a drop."""

    __slots__ = ("kind", "frame", "raw", "reason", "stages", "geometry", "prev_index", "gap")

    def __init__(self, kind, frame, raw=None, reason=None, stages=None, geometry=None, prev_index=None, gap=0):
        self.kind, self.frame, self.raw, self.reason = kind, frame, raw, reason
        self.stages, self.geometry = stages or {}, geometry
        self.prev_index, self.gap = prev_index, gap  # the pair: flow from prev_index, gap frames skipped


def is_result(out) -> bool:
    """Only results take a slot in the delivery queue (references and drops are small)."""
    return out.kind == RESULT


def demote(out, reason):
    """A result the sinks had no room for: its flow goes, its record stays (same place in line)."""
    return Outcome(DROPPED, out.frame, reason=reason, stages=out.stages)


def frame_of(item):
    """The source's frame behind a queued item (a prepared frame, an outcome, or the frame itself)."""
    return item.frame if isinstance(item, (Prepared, Outcome)) else item


class PairRunner:
    """Feed prepared frames one at a time; get the network's flow from the previous frame to this one.

    Runs only the model, through its public network-tensor calls (``encode_network``,
    ``decode_network``, ``infer_network``). ``release(buffer)`` is called once a frame's input
    buffer is no longer needed by any pair, so it can be reused.
    """

    def __init__(self, model, cache_features: bool = True, release=None):
        self.model = model
        self.cached = bool(cache_features and model.can_cache_features)
        self._release = release or (lambda buf: None)
        self._prev = None  # tensor (uncached) or feature dict (cached) of the previous frame
        self._geometry = None

    def step(self, x: np.ndarray, geometry, stages: dict) -> tuple[Optional[np.ndarray], Optional[str]]:
        """Process one frame's network tensor. Returns ``(raw network flow, None)`` for a result,
        or ``(None, why)`` when the frame only starts a chain (``"first_frame"``,
        ``"size_changed"``). Fills ``stages`` (seconds): ``encode`` and ``decode`` with feature
        caching, and ``inference`` (the model's time for this frame) always."""
        model = self.model
        chain_break = None
        if self._geometry is None:
            chain_break = "first_frame"
        elif geometry != self._geometry:
            chain_break = "size_changed"
        if self.cached:
            feats = model.encode_network(x)
            self._release(x)  # features copied out: the input buffer is free again
            encode = model.last_stage_times()["encode"]
            stages["encode"] = stages["inference"] = encode
            if chain_break:
                self._prev, self._geometry = feats, geometry
                return None, chain_break
            raw = model.decode_network(self._prev, feats)
            stages["decode"] = model.last_stage_times()["decode"]
            stages["inference"] = encode + stages["decode"]
            self._prev = feats
            return raw, None
        if chain_break:
            self._release(self._prev)
            self._prev, self._geometry = x, geometry
            return None, chain_break
        raw = model.infer_network(self._prev, x)
        stages["inference"] = model.last_stage_times()["inference"]
        self._release(self._prev)
        self._prev = x
        return raw, None


class InferenceThread(threading.Thread):
    """Takes prepared frames off ``handoff``, puts an :class:`Outcome` per frame on ``results``.

    Frames the hand-off evicted or noted, and frames still queued once ``stop`` is set, go on as
    drops (their buffers back to ``release``). An exception ends the thread: it is kept in
    ``error`` (the delivery side raises it), ``on_error(err)`` is told at once and ``stop`` set;
    ``in_flight`` is the frame the model was running then. ``results`` is closed on every exit.
    """

    def __init__(self, pairs: PairRunner, handoff: Handoff, results: Handoff, stop: threading.Event,
                 release: Callable, on_error: Callable[[BaseException], None]):
        super().__init__(name="edgeflow-infer", daemon=True)
        self.pairs, self.handoff, self.results, self.stop_event = pairs, handoff, results, stop
        self._release, self._on_error = release, on_error
        self.in_flight = None
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        results, stop = self.results, self.stop_event
        chain_prev, source_gap = None, 0  # the pair's first frame; frames the source skipped since
        try:
            while True:
                notices, item = self.handoff.get(timeout=0.1)
                for noted, reason in notices:
                    source_gap += int(frame_of(noted).dropped_before or 0)
                    self._forward_drop(noted, reason)
                if item is None:
                    continue
                if item is END:
                    return
                if stop.is_set():
                    self._forward_drop(item, "stopped")
                    continue
                picked = time.monotonic()
                frame = item.frame
                self.in_flight = item
                stages = {"wait": max(0.0, picked - frame.timestamp - item.preprocess_s),
                          "preprocess": item.preprocess_s}
                raw, chain = self.pairs.step(item.tensor, item.geometry, stages)
                source_gap += int(frame.dropped_before or 0)
                out = Outcome(REFERENCE if raw is None else RESULT, frame, raw, chain, stages, item.geometry)
                if raw is not None:
                    out.prev_index, out.gap = chain_prev, frame.index - chain_prev - 1 + source_gap
                chain_prev, source_gap = frame.index, 0
                self.in_flight = None
                if not results.put(out, stop):
                    results.note(out, "stopped")
        except BaseException as err:  # noqa: BLE001 - handed to the delivery thread, raised there
            self.error = err
            self._on_error(err)
            stop.set()
        finally:
            results.close()

    def _forward_drop(self, item, reason: str) -> None:
        if isinstance(item, Prepared):
            self._release(item.tensor)
        self.results.put(Outcome(DROPPED, frame_of(item), reason=reason), self.stop_event)  # light: never waits
