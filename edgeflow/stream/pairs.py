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

from time import perf_counter
from typing import Optional

import numpy as np

from edgeflow.model import decoder_plan


class PairRunner:
    """Feed prepared frames one at a time; get the network's flow from the previous frame to this one.

    Runs only the model: the tensor comes ready from the capture thread, and the flow goes back
    to frame pixels on the delivery side (:meth:`Geometry.to_frame`). ``release(buffer)`` is
    called once a frame's input buffer is no longer needed by any pair, so it can be reused.
    """

    def __init__(self, model, cache_features: bool = True, release=None):
        self.model = model
        self.cached = bool(cache_features and model.can_cache_features)
        runner = model.runner
        self._in = runner.input_names
        self._out = runner.output_names[0]
        if self.cached:
            self._enc_in = model.encoder.input_names[0]
            self._dec_plan = decoder_plan(model.decoder.input_names, model.encoder.output_names, model.artifact.root)
            self._dec_out = model.decoder.output_names[0]
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
        ``"size_changed"``). Fills ``stages`` (seconds)."""
        chain_break = None
        if self._geometry is None:
            chain_break = "first_frame"
        elif geometry != self._geometry:
            chain_break = "size_changed"
        t1 = perf_counter()
        if self.cached:
            feats = self.model.encoder.infer({self._enc_in: x})
            self._release(x)  # features copied out: the input buffer is free again
            t2 = perf_counter()
            stages["encode"] = t2 - t1
            if chain_break:
                stages["inference"] = t2 - t1
                self._prev, self._geometry = feats, geometry
                return None, chain_break
            pair = (self._prev, feats)
            raw = self.model.decoder.infer({name: pair[side][key] for name, side, key in self._dec_plan})[self._dec_out]
            t3 = perf_counter()
            stages["decode"] = t3 - t2
            stages["inference"] = t3 - t1
            self._prev = feats
            return raw, None
        if chain_break:
            self._release(self._prev)
            self._prev, self._geometry = x, geometry
            return None, chain_break
        raw = self.model.runner.infer({self._in[0]: self._prev, self._in[1]: x})[self._out]
        stages["inference"] = perf_counter() - t1
        self._release(self._prev)
        self._prev = x
        return raw, None
