"""A NeuFlow-v1-style edge network (Zhang et al., 2024): match at 1/16, refine at 1/8.

Why this shape for an edge default (issue 14): almost all of the work is a plain CNN backbone
run once per frame (the encoder), and the pair decoder only touches 1/16 and 1/8 resolution, so

* feature caching pays: a video runtime reuses frame t's encoder output for the pair (t, t+1),
  and the bound ``(2e + d) / (e + d)`` is well above 1.3 because ``e`` is larger than ``d``;
* large motion is cheap: a radius-``md16`` correlation at 1/16 covers ``16 * md16`` pixels.

Structure:

* Encoder: strided 3x3 conv stages to 1/2, 1/4, 1/8, 1/16 (``channels``; ``convs`` per stage).
  It returns ``[f8, f16]``.
* Decoder, 1/16: correlation of the two f16 maps (radius ``md16``) + frame 1's f16 -> estimator
  -> flow at 1/16. NeuFlow v1 matches globally with cross-attention at this level; we keep the
  correlation op instead (it is the Jetson plugin's fast path and INT8-friendly) with a radius
  large enough for >= 64 px motion.
* Decoder, 1/8: frame 2's f8 backward-warped by the up-sampled flow, correlated with frame 1's
  (radius ``md8``), estimator on [cost, f1, flow, up-sampled estimator features] -> residual flow;
  a small dilated context network adds a last residual; bilinear x8 to the input size.
* Optional (``lk_scales``; on in ``default``): parameter-free Lucas-Kanade refinement at 1/4 and
  1/2 resolution on normalised luminance the encoder computes per frame
  (:mod:`converters.zoo.refine`): the sub-pixel precision a 1/8 network lacks, at ~4 ms.

ReLU everywhere (fuses into INT8 convs), no normalization layers (training adds BatchNorm and
folds it away), no softmax or attention (nothing that has to stay float). ``pad_multiple`` 16.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from converters.ops import Correlation
from converters.zoo.base import FlowNetwork
from converters.zoo.layers import backward_warp, conv, normalize_frames, predict_flow, upsample, upsample_flow
from converters.zoo.refine import LucasKanade, frame_pyramid
from edgeflow.errors import EdgeflowError


@dataclass(frozen=True)
class NeuFlowConfig:
    #: Channels of the 1/2, 1/4, 1/8, 1/16 stages.
    channels: tuple[int, int, int, int] = (16, 32, 64, 96)
    #: 3x3 convs per stage (the first strided).
    convs: tuple[int, int, int, int] = (1, 2, 3, 3)
    md16: int = 5
    md8: int = 3
    decoder16: tuple[int, ...] = (96, 64)
    decoder8: tuple[int, ...] = (64, 48, 32)
    context: tuple[int, ...] = (32, 32, 32)
    context_dilations: tuple[int, ...] = (1, 2, 4)
    activation: str = "relu"
    #: Channels of a context map the *encoder* computes from its 1/8 features (1x1 conv + ReLU)
    #: for the 1/8 estimator, in place of the raw 1/8 features: work moved from the pair decoder
    #: to the cacheable per-frame encoder (0: the estimator reads the raw features).
    context8: int = 0
    #: Widths of an optional 1/4 refinement level (radius-2 correlation on the 1/4 features; empty:
    #: off, output at 1/8). Experimental: tests whether a 1/4 level makes the network trainable.
    refine4: tuple[int, ...] = ()
    #: Lucas-Kanade refinement after the network (:mod:`converters.zoo.refine`): the scales it runs
    #: at, coarse to fine, as divisors of the input size (``(2, 1)``: 1/2, then full resolution;
    #: empty: off), and per scale its iterations, window and smoothing window. No parameters; the
    #: encoder adds one normalised luminance map per scale.
    lk_scales: tuple[int, ...] = ()
    lk_iterations: tuple[int, ...] = ()
    lk_windows: tuple[int, ...] = ()
    lk_smooth: tuple[int, ...] = ()
    lk_norm_window: int = 5
    lk_max_step: float = 0.5
    lk_damping: float = 1e-3

    def __post_init__(self):
        if len(self.channels) != 4 or len(self.convs) != 4 or min(self.convs) < 1:
            raise EdgeflowError("NeuFlow config needs 4 stage channels and 4 conv counts >= 1")
        if len(self.context) != len(self.context_dilations):
            raise EdgeflowError("NeuFlow context and context_dilations must have the same length")
        if any(scale not in (1, 2, 4, 8) for scale in self.lk_scales) or list(self.lk_scales) != sorted(
                self.lk_scales, reverse=True):
            raise EdgeflowError("NeuFlow lk_scales must be divisors 8, 4, 2, 1 from coarse to fine, e.g. (2, 1)")
        if not len(self.lk_scales) == len(self.lk_iterations) == len(self.lk_windows) == len(self.lk_smooth):
            raise EdgeflowError("NeuFlow lk_iterations, lk_windows and lk_smooth need one entry per lk_scales entry")

    @property
    def pad_multiple(self) -> int:
        return 16

    @classmethod
    def from_dict(cls, values: dict) -> "NeuFlowConfig":
        return cls(**{key: tuple(val) if isinstance(val, list) else val for key, val in values.items()})


#: The edge default (zoo ``default`` and ``neuflow-lite``). Measured against the first candidate
#: (``NeuFlowConfig()``: radii 5 / 3, raw 1/8 features in the decoder), whose decoder took 70 % of
#: a cached frame's time (caching bound 1.30-1.39 on the shared host): smaller radii (4 at 1/16
#: still reaches 64 px, +16 px from the 1/8 search), the context map moved into the encoder and one
#: more conv at 1/8 and at 1/16 (better features, and a larger cacheable share).
NEUFLOW_LITE_CONFIG = NeuFlowConfig(convs=(1, 2, 4, 4), md16=4, md8=2, context8=32)

#: The shipped default: the same network, plus Lucas-Kanade refinement (one step at 1/4, two at 1/2)
#: (:mod:`converters.zoo.refine`; settings chosen on the tuning set, ``benchmarks/tune_refinement.py``).
DEFAULT_CONFIG = NeuFlowConfig(convs=(1, 2, 4, 4), md16=4, md8=2, context8=32, lk_scales=(4, 2), lk_iterations=(1, 2),
                               lk_windows=(9, 9), lk_smooth=(9, 9))


class NeuFlowEncoder(nn.Module):
    def __init__(self, config: NeuFlowConfig):
        super().__init__()
        stages, in_channels = [], 3
        for channels, count in zip(config.channels, config.convs):
            layers = [conv(in_channels, channels, config.activation, stride=2)]
            layers += [conv(channels, channels, config.activation) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
            in_channels = channels
        self.stages = nn.ModuleList(stages)
        self.context = conv(config.channels[2], config.context8, config.activation, kernel_size=1) \
            if config.context8 else None
        if self.context is None:
            self.feature_channels, self.feature_strides = tuple(config.channels[2:]), (8, 16)
        else:
            self.feature_channels = (config.channels[2], config.context8, config.channels[3])
            self.feature_strides = (8, 8, 16)
        self.with4 = bool(config.refine4)
        if self.with4:  # the 1/4 features go last, so the other indices keep their meaning
            self.feature_channels += (config.channels[1],)
            self.feature_strides += (4,)
        # Lucas-Kanade inputs go after everything else, one normalised luminance map per scale.
        self.lk_scales, self.lk_norm_window = tuple(config.lk_scales), config.lk_norm_window
        self.feature_channels += (1,) * len(self.lk_scales)
        self.feature_strides += self.lk_scales

    def forward(self, frame: torch.Tensor) -> list[torch.Tensor]:
        """``[f8, f16]``, or ``[f8, context8, f16]`` with ``config.context8``; then the 1/4
        features with ``refine4``, then one normalised luminance map per ``lk_scales`` entry."""
        lk = frame_pyramid(frame, self.lk_scales, self.lk_norm_window) if self.lk_scales else []
        x = normalize_frames(frame)
        features, quarter = [], None
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index == 1:
                quarter = x
            if index == 2 and self.context is not None:
                features += [x, self.context(x)]
            elif index >= 2:
                features.append(x)
        return (features + [quarter] if self.with4 else features) + lk


class Estimator(nn.Module):
    """3x3 conv stack -> (flow head output, last features)."""

    def __init__(self, in_channels: int, widths, activation: str):
        super().__init__()
        layers = []
        for width in widths:
            layers.append(conv(in_channels, width, activation))
            in_channels = width
        self.convs = nn.Sequential(*layers)
        self.out_channels = in_channels
        self.predict = predict_flow(in_channels)

    def forward(self, x):
        x = self.convs(x)
        return self.predict(x), x


class Context(nn.Module):
    def __init__(self, in_channels: int, widths, dilations, activation: str):
        super().__init__()
        layers = []
        for width, dilation in zip(widths, dilations):
            layers.append(conv(in_channels, width, activation, dilation=dilation))
            in_channels = width
        layers.append(predict_flow(in_channels))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


class NeuFlowDecoder(nn.Module):
    def __init__(self, config: NeuFlowConfig):
        super().__init__()
        self.has_context = bool(config.context8)
        # Frame 2's context map is never read (the exporter drops that decoder input).
        self.used_feats1 = (0, 1, 2) if self.has_context else (0, 1)
        self.used_feats2 = (0, 2) if self.has_context else (0, 1)
        c8, c16 = config.context8 or config.channels[2], config.channels[3]
        act = config.activation
        self.corr16 = Correlation(max_displacement=config.md16, kernel_size=1, stride1=1, stride2=1, pad_size=config.md16)
        self.corr8 = Correlation(max_displacement=config.md8, kernel_size=1, stride1=1, stride2=1, pad_size=config.md8)
        self.activation = nn.ReLU()
        cost16, cost8 = (2 * config.md16 + 1) ** 2, (2 * config.md8 + 1) ** 2
        self.estimator16 = Estimator(cost16 + c16, config.decoder16, act)
        self.upfeat = nn.Conv2d(self.estimator16.out_channels, 2, 3, 1, 1)
        self.estimator8 = Estimator(cost8 + c8 + 4, config.decoder8, act)
        self.context = Context(self.estimator8.out_channels, config.context, config.context_dilations, act) \
            if config.context else None
        self.refine4 = None
        if config.refine4:
            last = self.index4 = 3 if self.has_context else 2
            self.used_feats1 += (last,)
            self.used_feats2 += (last,)
            self.corr4 = Correlation(max_displacement=2, kernel_size=1, stride1=1, stride2=1, pad_size=2)
            self.refine4 = Estimator(25 + config.channels[1] + 2, config.refine4, act)
        self.lk_scales = tuple(config.lk_scales)
        self.lk = nn.ModuleList(
            LucasKanade(iterations, window, smooth, config.lk_max_step, config.lk_damping)
            for iterations, window, smooth in zip(config.lk_iterations, config.lk_windows, config.lk_smooth))
        if self.lk_scales:  # the luminance maps are the encoder's last outputs, for both frames
            first = 2 + (1 if self.has_context else 0) + (1 if config.refine4 else 0)
            lk_feats = tuple(range(first, first + len(self.lk_scales)))
            self.used_feats1 += lk_feats
            self.used_feats2 += lk_feats

    def forward(self, feats1, feats2, return_pyramid: bool = False):
        if self.has_context:
            (f1_8, ctx, f1_16), (f2_8, f2_16) = feats1[:3], (feats2[0], feats2[2])
        else:
            (f1_8, f1_16), (f2_8, f2_16) = feats1[:2], feats2[:2]
            ctx = f1_8
        cost = self.activation(self.corr16(f1_16, f2_16))
        flow16, features = self.estimator16(torch.cat([cost, f1_16], dim=1))
        up_flow = upsample_flow(flow16)
        up_features = upsample(self.upfeat(features), 2)
        cost = self.activation(self.corr8(f1_8, backward_warp(f2_8, up_flow)))
        residual, features = self.estimator8(torch.cat([cost, ctx, up_flow, up_features], dim=1))
        flow8 = up_flow + residual
        if self.context is not None:
            flow8 = flow8 + self.context(features)
        pyramid, flow, stride = [flow16, flow8], flow8, 8
        if self.refine4 is not None:
            f1_4, f2_4 = feats1[self.index4], feats2[self.index4]
            up4 = upsample_flow(flow8)
            cost = self.activation(self.corr4(f1_4, backward_warp(f2_4, up4)))
            residual, _ = self.refine4(torch.cat([cost, f1_4, up4], dim=1))
            flow, stride = up4 + residual, 4
            pyramid.append(flow)
        if self.lk_scales:
            lum1, lum2 = feats1[-len(self.lk_scales):], feats2[-len(self.lk_scales):]
            for scale, lk, n1, n2 in zip(self.lk_scales, self.lk, lum1, lum2):
                if scale != stride:
                    flow, stride = upsample_flow(flow, stride // scale), scale
                flow = lk(n1, n2, flow)
        full = upsample_flow(flow, stride) if stride != 1 else flow
        return (full, pyramid) if return_pyramid else full


class NeuFlowNet(FlowNetwork):
    """See the module docstring. ``pad_multiple`` = 16."""

    arch = "neuflow"

    def __init__(self, config: NeuFlowConfig = NEUFLOW_LITE_CONFIG):
        super().__init__(config, NeuFlowEncoder(config), NeuFlowDecoder(config), config.pad_multiple)
