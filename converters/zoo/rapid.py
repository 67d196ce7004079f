"""A RAPIDFlow-style edge network (Morimitsu et al., ICRA 2024): separable NeXt1D convs and one
refinement module shared by every pyramid level.

* NeXt1D block: depthwise ``1 x k`` then ``k x 1`` convs (a k x k receptive field for 2k taps
  per channel), a pointwise expand (ReLU) and project, and a residual add. ReLU instead of the
  paper's GELU, BatchNorm only while training (folded away): every op quantizes to INT8.
* Encoder: a strided stem to 1/4, then NeXt1D stages at 1/4 .. 1/32; every level is projected
  (1x1) to the same ``width`` so one refinement module can serve all levels. Returns the
  projected levels ``[f8, f16, f32]``.
* Decoder: coarse to fine (1/32, 1/16, 1/8), ``iterations[level]`` times: warp frame 2's level by
  the current flow, correlate (radius ``md``), and the shared module turns [cost, f1, flow] into a
  residual flow. Its weights are shared across levels and iterations (RAPIDFlow's "shared
  refinement"), so parameters stay few while the decoder runs several times. Output 1/8,
  bilinearly up-sampled x8. ``pad_multiple`` 32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from converters.ops import Correlation
from converters.zoo.base import FlowNetwork
from converters.zoo.layers import backward_warp, conv, make_activation, normalize_frames, predict_flow, upsample_flow
from edgeflow.errors import EdgeflowError


@dataclass(frozen=True)
class RapidConfig:
    stem: tuple[int, int] = (24, 32)
    #: Channels and NeXt1D blocks of the 1/8, 1/16, 1/32 stages (the 1/4 stage has 1 block).
    channels: tuple[int, int, int] = (48, 64, 80)
    blocks: tuple[int, int, int] = (2, 2, 1)
    width: int = 48
    kernel: int = 7
    md: int = 3
    hidden: int = 64
    refine_blocks: int = 2
    #: Refinement iterations at 1/32, 1/16, 1/8.
    iterations: tuple[int, int, int] = (1, 1, 2)
    activation: str = "relu"

    def __post_init__(self):
        if len(self.channels) != 3 or len(self.blocks) != 3 or len(self.iterations) != 3 or min(self.iterations) < 1:
            raise EdgeflowError("Rapid config needs 3 channels, 3 block counts and 3 iteration counts >= 1")

    @property
    def pad_multiple(self) -> int:
        return 32

    @classmethod
    def from_dict(cls, values: dict) -> "RapidConfig":
        return cls(**{key: tuple(val) if isinstance(val, list) else val for key, val in values.items()})


RAPID_LITE_CONFIG = RapidConfig()


class NeXt1D(nn.Module):
    def __init__(self, channels: int, kernel: int, activation: str, expand: int = 2):
        super().__init__()
        pad = kernel // 2
        self.horizontal = nn.Conv2d(channels, channels, (1, kernel), padding=(0, pad), groups=channels)
        self.vertical = nn.Conv2d(channels, channels, (kernel, 1), padding=(pad, 0), groups=channels)
        self.expand = conv(channels, channels * expand, activation, kernel_size=1)
        self.project = nn.Conv2d(channels * expand, channels, 1)

    def forward(self, x):
        return x + self.project(self.expand(self.vertical(self.horizontal(x))))


class RapidEncoder(nn.Module):
    def __init__(self, config: RapidConfig):
        super().__init__()
        act, k = config.activation, config.kernel
        s1, s2 = config.stem
        self.stem = nn.Sequential(conv(3, s1, act, stride=2), conv(s1, s2, act, stride=2), NeXt1D(s2, k, act))
        stages, in_channels = [], s2
        for channels, blocks in zip(config.channels, config.blocks):
            stages.append(nn.Sequential(conv(in_channels, channels, act, stride=2),
                                        *[NeXt1D(channels, k, act) for _ in range(blocks)]))
            in_channels = channels
        self.stages = nn.ModuleList(stages)
        self.projections = nn.ModuleList(nn.Conv2d(c, config.width, 1) for c in config.channels)
        self.feature_channels = (config.width,) * 3
        self.feature_strides = (8, 16, 32)

    def forward(self, frame):
        x = self.stem(normalize_frames(frame))
        features = []
        for stage, projection in zip(self.stages, self.projections):
            x = stage(x)
            features.append(projection(x))
        return features


class SharedRefinement(nn.Module):
    def __init__(self, config: RapidConfig):
        super().__init__()
        cost = (2 * config.md + 1) ** 2
        act = config.activation
        self.inp = conv(cost + config.width + 2, config.hidden, act, kernel_size=1)
        self.blocks = nn.Sequential(*[NeXt1D(config.hidden, config.kernel, act) for _ in range(config.refine_blocks)])
        self.act = make_activation(act)
        self.predict = predict_flow(config.hidden)

    def forward(self, cost, f1, flow):
        x = self.blocks(self.inp(torch.cat([cost, f1, flow], dim=1)))
        return self.predict(self.act(x))


class RapidDecoder(nn.Module):
    used_feats1 = (0, 1, 2)
    used_feats2 = (0, 1, 2)

    def __init__(self, config: RapidConfig):
        super().__init__()
        md = config.md
        self.iterations = config.iterations
        calls = sum(config.iterations)
        self.correlations = nn.ModuleList(
            Correlation(max_displacement=md, kernel_size=1, stride1=1, stride2=1, pad_size=md) for _ in range(calls))
        self.refine = SharedRefinement(config)
        self.activation = nn.ReLU()

    def forward(self, feats1, feats2, return_pyramid: bool = False):
        pyramid, flow, call = [], None, 0
        for level in (2, 1, 0):  # 1/32, 1/16, 1/8
            f1, f2 = feats1[level], feats2[level]
            if flow is None:
                flow = torch.zeros_like(f1[:, :2])
            else:
                flow = upsample_flow(flow)
            for _ in range(self.iterations[2 - level]):
                warped = backward_warp(f2, flow) if call else f2
                cost = self.activation(self.correlations[call](f1, warped))
                flow = flow + self.refine(cost, f1, flow)
                call += 1
            pyramid.append(flow)
        full = upsample_flow(flow, 8)
        return (full, pyramid) if return_pyramid else full


class RapidFlowNet(FlowNetwork):
    arch = "rapid"

    def __init__(self, config: RapidConfig = RAPID_LITE_CONFIG):
        super().__init__(config, RapidEncoder(config), RapidDecoder(config), config.pad_multiple)
