"""Consecutive-pair inference with reuse: each frame is preprocessed (and encoded) exactly once.

Pair (t-1, t) needs frame t-1's network tensor, or with a split artifact its encoder features.
Both are kept from the previous step instead of being recomputed, which is what makes feature
caching pay: per frame the cached path runs ``encoder(t) + decoder(t-1, t)`` instead of the
whole network on two frames.

Every step reports its stage times (seconds) so the stream can account for them per frame.
Frames arrive already converted to network tensors (the capture thread does that), so a step
is the model and nothing else.
"""

from __future__ import annotations

from typing import Optional

import numpy as np


class PairRunner:
    """Feed prepared frames one at a time; get the network's flow from the previous frame to this one.

    Runs only the model, through its public network-tensor calls (``encode_network``,
    ``decode_network``, ``infer_network``): the tensor comes ready from the capture thread, the
    flow goes back to frame pixels on the delivery side (:meth:`Geometry.to_frame`), and stage
    times are the runners' own (``model.last_stage_times()``). ``release(buffer)`` is called once
    a frame's input buffer is no longer needed by any pair, so it can be reused.
    """

    def __init__(self, model, cache_features: bool = True, release=None):
        self.model = model
        self.cached = bool(cache_features and model.can_cache_features)
        self._release = release or (lambda buf: None)
        self._prev = None  # tensor (uncached) or feature dict (cached) of the previous frame
        self._geometry = None

    def reset(self) -> None:
        if not self.cached:
            self._release(self._prev)
        self._prev = None
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
