"""A FastFlowNet-style edge network (Kong et al., ICRA 2021).

The three ideas of FastFlowNet, kept on edgeflow's Correlation op:

* Head-enhanced pooling pyramid (HEPP): convs only up to 1/8; the coarser levels (1/16, 1/32) are
  average pools of the 1/8 features plus one cheap conv, so the encoder is light.
* Center-dense dilated correlation (CDDC): a dense radius-``md_dense`` correlation plus a sparse
  one (radius ``md_dilated``, displacement step ``dilation``) concatenated: a wide search range
  with few channels. Two Correlation calls per level, each the standard op.
* Shuffle-block decoders: 1x1 in, grouped 3x3 convs with a channel shuffle between them (a
  constant Gather, exports and quantizes cleanly), a 3x3 flow head; frame 1's features are first
  compressed to ``compress`` channels by a 1x1 conv.

Coarse to fine over 1/32 .. 1/4 (``pad_multiple`` 32); the 1/4 flow is bilinearly up-sampled.
ReLU everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from converters.ops import Correlation
from converters.zoo.base import FlowNetwork
from converters.zoo.layers import backward_warp, conv, normalize_frames, predict_flow, upsample_flow
from edgeflow.errors import EdgeflowError


@dataclass(frozen=True)
class FastFlowConfig:
    #: Conv levels 1/2, 1/4, 1/8 (two 3x3 convs each); pooled levels 1/16, 1/32 keep the 1/8 width.
    channels: tuple[int, int, int] = (16, 32, 64)
    md_dense: int = 2
    md_dilated: int = 6
    dilation: int = 2
    compress: int = 32
    #: Decoder width and groups at 1/32, 1/16, 1/8 and at 1/4.
    width: int = 96
    width_fine: int = 48
    groups: int = 3
    activation: str = "relu"

    def __post_init__(self):
        if len(self.channels) != 3:
            raise EdgeflowError("FastFlow config needs 3 conv-level channels")
        if self.width % self.groups or self.width_fine % self.groups:
            raise EdgeflowError("FastFlow decoder widths must be multiples of groups")

    @property
    def pad_multiple(self) -> int:
        return 32

    @property
    def cost_channels(self) -> int:
        return (2 * self.md_dense + 1) ** 2 + (2 * (self.md_dilated // self.dilation) + 1) ** 2

    @classmethod
    def from_dict(cls, values: dict) -> "FastFlowConfig":
        return cls(**{key: tuple(val) if isinstance(val, list) else val for key, val in values.items()})


FASTFLOW_LITE_CONFIG = FastFlowConfig()


class FastFlowEncoder(nn.Module):
    def __init__(self, config: FastFlowConfig):
        super().__init__()
        act, levels, in_channels = config.activation, [], 3
        for channels in config.channels:
            levels.append(nn.Sequential(conv(in_channels, channels, act, stride=2), conv(channels, channels, act)))
            in_channels = channels
        self.levels = nn.ModuleList(levels)
        c = config.channels[-1]
        self.pooled = nn.ModuleList(conv(c, c, act) for _ in range(2))
        self.feature_channels = (config.channels[1], c, c, c)
        self.feature_strides = (4, 8, 16, 32)

    def forward(self, frame):
        x = normalize_frames(frame)
        features = []
        for index, level in enumerate(self.levels):
            x = level(x)
            if index >= 1:
                features.append(x)
        for layer in self.pooled:
            x = F.avg_pool2d(x, 2)
            features.append(layer(x))
        return features  # 1/4, 1/8, 1/16, 1/32


class ShuffleDecoder(nn.Module):
    def __init__(self, in_channels: int, width: int, groups: int, activation: str):
        super().__init__()
        self.inp = conv(in_channels, width, activation, kernel_size=1)
        self.group1 = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1, groups=groups), nn.ReLU())
        self.group2 = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1, groups=groups), nn.ReLU())
        order = torch.arange(width).view(groups, width // groups).t().reshape(-1)
        self.register_buffer("shuffle", order, persistent=False)
        self.out = conv(width, width // 2, activation)
        self.predict = predict_flow(width // 2)

    def forward(self, x):
        x = self.group1(self.inp(x))
        x = self.group2(torch.index_select(x, 1, self.shuffle))
        return self.predict(self.out(torch.index_select(x, 1, self.shuffle)))


class FastFlowDecoder(nn.Module):
    used_feats1 = (0, 1, 2, 3)
    used_feats2 = (0, 1, 2, 3)

    def __init__(self, config: FastFlowConfig):
        super().__init__()
        act = config.activation
        feature_channels = (config.channels[1],) + (config.channels[2],) * 3  # 1/4, 1/8, 1/16, 1/32
        self.dense = nn.ModuleList(Correlation(max_displacement=config.md_dense, kernel_size=1, stride1=1, stride2=1,
                                               pad_size=config.md_dense) for _ in range(4))
        self.dilated = nn.ModuleList(Correlation(max_displacement=config.md_dilated, kernel_size=1, stride1=1,
                                                 stride2=config.dilation, pad_size=config.md_dilated) for _ in range(4))
        self.compress = nn.ModuleList(conv(c, config.compress, act, kernel_size=1) for c in feature_channels)
        cost = config.cost_channels
        decoders = []
        for index in range(4):  # coarse -> fine: 1/32, 1/16, 1/8, 1/4
            width = config.width if index < 3 else config.width_fine
            decoders.append(ShuffleDecoder(cost + config.compress + (2 if index else 0), width, config.groups, act))
        self.decoders = nn.ModuleList(decoders)
        self.activation = nn.ReLU()

    def forward(self, feats1, feats2, return_pyramid: bool = False):
        pyramid, flow = [], None
        for step in range(4):
            level = 3 - step
            f1, f2 = feats1[level], feats2[level]
            if flow is not None:
                flow = upsample_flow(flow)
                f2 = backward_warp(f2, flow)
            cost = self.activation(torch.cat([self.dense[step](f1, f2), self.dilated[step](f1, f2)], dim=1))
            parts = [cost, self.compress[level](f1)] + ([flow] if flow is not None else [])
            residual = self.decoders[step](torch.cat(parts, dim=1))
            flow = residual if flow is None else flow + residual
            pyramid.append(flow)
        full = upsample_flow(flow, 4)
        return (full, pyramid) if return_pyramid else full


class FastFlowNet(FlowNetwork):
    arch = "fastflow"

    def __init__(self, config: FastFlowConfig = FASTFLOW_LITE_CONFIG):
        super().__init__(config, FastFlowEncoder(config), FastFlowDecoder(config), config.pad_multiple)
