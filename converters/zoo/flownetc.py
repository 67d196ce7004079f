"""FlowNetC (Dosovitskiy et al., ICCV 2015) and its reduced-width edge variant "flownetc-s".

* Encoder (shared by both frames): conv1 7x7/2, conv2 5x5/2, conv3 5x5/2. It returns
  ``[conv2, conv3]`` (strides 4 and 8): conv3 feeds the correlation, conv2 the last refinement.
* Decoder: a correlation of the two conv3 maps (max displacement 20, stride2 2 -> 21x21 = 441
  channels, kernel 1) is concatenated with a 1x1 "redirect" of frame 1's conv3, then a strided
  trunk goes down to 1/64. The FlowNet refinement decoder climbs back: at each level it
  concatenates the trunk skip, a learned 2x deconvolution of the previous level, and the
  up-sampled flow, and predicts flow. The 1/4 flow is bilinearly up-sampled to the input size.

Differences from the reference implementation, all deliberate: flow is predicted in pixel units
of each level's resolution (no ``div_flow = 20``) and up-sampled parameter-free (bilinear, x2)
instead of by learned 2->2 deconvolutions; frames are normalized to [-1, 1] RGB in the encoder.

``FLOWNETC_S_CONFIG`` keeps the published layout at 3/8 of the widths (as FlowNet2's small
variants do) while keeping the full 441-channel cost volume. ``pad_multiple`` is 64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from converters.ops import Correlation
from converters.zoo.base import FlowNetwork
from converters.zoo.layers import ACTIVATIONS, conv, deconv, make_activation, normalize_frames, predict_flow, upsample_flow
from edgeflow.errors import EdgeflowError


@dataclass(frozen=True)
class FlowNetCConfig:
    """Hyper-parameters of :class:`FlowNetC`; the defaults are the published FlowNetC."""

    #: conv1, conv2, conv3 widths (strides 2, 4, 8).
    encoder_channels: tuple[int, int, int] = (64, 128, 256)
    #: 1x1 projection of frame 1's conv3 concatenated with the cost volume.
    redirect_channels: int = 32
    #: conv3_1 (1/8), conv4 (1/16), conv5 (1/32), conv6 (1/64) widths; 4/5/6 have a second conv.
    trunk_channels: tuple[int, int, int, int] = (256, 512, 512, 1024)
    #: Refinement deconvolution widths towards 1/32, 1/16, 1/8, 1/4.
    deconv_channels: tuple[int, int, int, int] = (512, 256, 128, 64)
    max_displacement: int = 20
    stride2: int = 2
    activation: str = "leaky_relu"

    def __post_init__(self):
        if len(self.encoder_channels) != 3 or len(self.trunk_channels) != 4 or len(self.deconv_channels) != 4:
            raise EdgeflowError("FlowNetC needs 3 encoder_channels, 4 trunk_channels and 4 deconv_channels")
        if self.activation not in ACTIVATIONS:
            raise EdgeflowError(f"unknown activation {self.activation!r}; use one of: {', '.join(ACTIVATIONS)}")
        if self.max_displacement < 1 or not 1 <= self.stride2 <= self.max_displacement:
            raise EdgeflowError("FlowNetC needs max_displacement >= 1 and 1 <= stride2 <= max_displacement")

    @property
    def pad_multiple(self) -> int:
        return 64

    @property
    def cost_channels(self) -> int:
        return (2 * (self.max_displacement // self.stride2) + 1) ** 2

    @classmethod
    def from_dict(cls, values: dict) -> FlowNetCConfig:
        return cls(**{key: tuple(val) if isinstance(val, list) else val for key, val in values.items()})


#: The published FlowNetC (~39 M parameters).
FLOWNETC_CONFIG = FlowNetCConfig()

#: "FlowNetC small": 3/8 widths, same 441-channel correlation at 1/8 resolution.
FLOWNETC_S_CONFIG = FlowNetCConfig(
    encoder_channels=(24, 48, 96),
    redirect_channels=12,
    trunk_channels=(96, 192, 192, 384),
    deconv_channels=(192, 96, 48, 24),
)


class FlowNetCEncoder(nn.Module):
    """Frame (B, 3, H, W) in 0..255 -> [conv2 (stride 4), conv3 (stride 8)]."""

    def __init__(self, config: FlowNetCConfig):
        super().__init__()
        c1, c2, c3 = config.encoder_channels
        act = config.activation
        self.conv1 = conv(3, c1, act, kernel_size=7, stride=2)
        self.conv2 = conv(c1, c2, act, kernel_size=5, stride=2)
        self.conv3 = conv(c2, c3, act, kernel_size=5, stride=2)
        self.feature_channels = (c2, c3)
        self.feature_strides = (4, 8)

    def forward(self, frame: torch.Tensor) -> list[torch.Tensor]:
        x2 = self.conv2(self.conv1(normalize_frames(frame)))
        return [x2, self.conv3(x2)]


class FlowNetCDecoder(nn.Module):
    """(feats1, feats2) from :class:`FlowNetCEncoder` -> flow (B, 2, H, W) at input resolution.

    Only conv3 of frame 2 is read (``used_feats2``): an exported decoder graph has no input for
    frame 2's conv2, so runtimes must feed features by the graph's input names.
    """

    used_feats1 = (0, 1)
    used_feats2 = (1,)

    def __init__(self, config: FlowNetCConfig):
        super().__init__()
        act = config.activation
        _, c2, c3 = config.encoder_channels
        t3, t4, t5, t6 = config.trunk_channels
        d5, d4, d3, d2 = config.deconv_channels
        md = config.max_displacement
        self.correlation = Correlation(max_displacement=md, kernel_size=1, stride1=1, stride2=config.stride2, pad_size=md)
        self.activation = make_activation(act)
        self.redirect = conv(c3, config.redirect_channels, act, kernel_size=1)
        self.conv3_1 = conv(config.cost_channels + config.redirect_channels, t3, act)
        self.conv4 = nn.Sequential(conv(t3, t4, act, stride=2), conv(t4, t4, act))
        self.conv5 = nn.Sequential(conv(t4, t5, act, stride=2), conv(t5, t5, act))
        self.conv6 = nn.Sequential(conv(t5, t6, act, stride=2), conv(t6, t6, act))
        concat5, concat4, concat3, concat2 = t5 + d5 + 2, t4 + d4 + 2, t3 + d3 + 2, c2 + d2 + 2
        self.predict6 = predict_flow(t6)
        self.deconv5 = deconv(t6, d5, act)
        self.predict5 = predict_flow(concat5)
        self.deconv4 = deconv(concat5, d4, act)
        self.predict4 = predict_flow(concat4)
        self.deconv3 = deconv(concat4, d3, act)
        self.predict3 = predict_flow(concat3)
        self.deconv2 = deconv(concat3, d2, act)
        self.predict2 = predict_flow(concat2)

    def forward(self, feats1: list[torch.Tensor], feats2: list[torch.Tensor], return_pyramid: bool = False):
        conv2a, conv3a = feats1[0], feats1[1]
        conv3b = feats2[1]
        cost = self.activation(self.correlation(conv3a, conv3b))
        x3 = self.conv3_1(torch.cat([self.redirect(conv3a), cost], dim=1))
        x4 = self.conv4(x3)
        x5 = self.conv5(x4)
        x6 = self.conv6(x5)

        flow6 = self.predict6(x6)
        x = torch.cat([x5, self.deconv5(x6), upsample_flow(flow6)], dim=1)
        flow5 = self.predict5(x)
        x = torch.cat([x4, self.deconv4(x), upsample_flow(flow5)], dim=1)
        flow4 = self.predict4(x)
        x = torch.cat([x3, self.deconv3(x), upsample_flow(flow4)], dim=1)
        flow3 = self.predict3(x)
        x = torch.cat([conv2a, self.deconv2(x), upsample_flow(flow3)], dim=1)
        flow2 = self.predict2(x)

        full = upsample_flow(flow2, 4)
        return (full, [flow6, flow5, flow4, flow3, flow2]) if return_pyramid else full


class FlowNetC(FlowNetwork):
    """FlowNetC with the refinement decoder; see the module docstring. ``pad_multiple`` = 64."""

    arch = "flownetc"

    def __init__(self, config: FlowNetCConfig = FLOWNETC_CONFIG):
        super().__init__(config, FlowNetCEncoder(config), FlowNetCDecoder(config), config.pad_multiple)
