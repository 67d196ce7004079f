"""The contract every zoo model follows: a per-frame encoder and a pair decoder.

A video runtime sees frames t, t+1, t+2, ... and estimates flow for (t, t+1), (t+1, t+2), ...
Splitting the network lets it run the encoder once per frame and cache frame t's features for
the next pair, so each new frame costs one encoder pass plus one decoder pass:

    feats_t  = model.encoder(frame_t)            # list of tensors, fine -> coarse
    flow     = model.decoder(feats_t, feats_t1)  # (B, 2, H, W), pixels at input resolution

``model(f1, f2)`` is exactly ``decoder(encoder(f1), encoder(f2))``.

Inputs are (B, 3, H, W) float32 RGB in 0..255 (normalization happens inside the encoder). H and
W must be multiples of ``pad_multiple`` (the network's total stride); ``forward_any_size`` pads
with edge replication on the bottom/right, runs, and crops, for eager use on arbitrary sizes.
Output flow convention: pixel (x, y) of frame 1 moves to (x + u, y + v) in frame 2.

Introspection for exporters and runtimes: ``encoder.feature_channels`` / ``feature_strides``
describe the encoder outputs; ``decoder.used_feats1`` / ``used_feats2`` list the indices the
decoder reads (the ONNX exporter drops inputs a graph never reads).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from edgeflow.preprocess import padded_size


class FlowNetwork(nn.Module):
    """Base class: subclasses set ``encoder``, ``decoder``, ``arch``, ``config``, ``pad_multiple``."""

    #: Family name used in checkpoints ("pwc", "flownetc"); zoo names map onto it.
    arch: str = ""
    #: How ``forward_any_size`` (and device runtimes, via the manifest) pad frames.
    pad_mode: str = "replicate"

    def __init__(self, config, encoder: nn.Module, decoder: nn.Module, pad_multiple: int):
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.decoder = decoder
        self.pad_multiple = int(pad_multiple)

    def forward(self, frame1: torch.Tensor, frame2: torch.Tensor, return_pyramid: bool = False):
        """Flow (B, 2, H, W) from frame1 to frame2; H, W must be multiples of ``pad_multiple``.

        With ``return_pyramid=True`` returns ``(flow, pyramid)``: ``pyramid`` is the list of
        intermediate flows, coarse -> fine, each at its own resolution and in pixel units of that
        resolution (stride s = H / h; compare against the ground truth resized to (h, w) and
        divided by s). This is what a PWC-style multi-scale EPE loss needs.
        """
        return self.decoder(self.encoder(frame1), self.encoder(frame2), return_pyramid=return_pyramid)

    def forward_any_size(self, frame1: torch.Tensor, frame2: torch.Tensor) -> torch.Tensor:
        """Eager convenience: replicate-pad bottom/right to ``pad_multiple``, run, crop back."""
        height, width = frame1.shape[-2:]
        padded_h, padded_w = padded_size(height, width, self.pad_multiple)
        pad_h, pad_w = padded_h - height, padded_w - width
        if pad_h or pad_w:
            pad = (0, pad_w, 0, pad_h)
            frame1 = F.pad(frame1, pad, mode=self.pad_mode)
            frame2 = F.pad(frame2, pad, mode=self.pad_mode)
        flow = self(frame1, frame2)
        return flow[:, :, :height, :width]

    def config_dict(self) -> dict:
        """The config as plain Python (lists, ints, strings): safe for JSON and weights_only."""
        return _plain(dataclasses.asdict(self.config))


def _plain(value):
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value
