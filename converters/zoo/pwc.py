"""PWC-Net (Sun et al., CVPR 2018) and a small edge configuration of it ("pwc-lite").

Structure (one class, two configs):

* Encoder: a feature pyramid; level l (l = 1..L) halves the resolution with a strided conv and
  refines with more 3x3 convs. It returns the levels the decoder reads, ``output_level..L``,
  ordered fine -> coarse (index 0 has stride ``2**output_level``).
* Decoder, coarse -> fine: at the top level the cost volume of the two frames' features feeds an
  estimator; at each finer level frame 2's features are backward-warped by the up-sampled flow,
  correlated with frame 1's (max displacement ``md`` -> (2 md + 1)^2 channels), and the estimator
  sees [cost volume, frame-1 features, up-sampled flow, up-sampled estimator features].
  At ``output_level`` (1/4) a dilated context network adds a residual, and the flow is bilinearly
  up-sampled to the input resolution.

Differences from the reference implementation, all deliberate:

* Flow is predicted in pixel units of each level's own resolution (no ``/20`` scaling), and it is
  up-sampled parameter-free (bilinear, times 2) rather than by a learned 2->2 deconvolution, so the
  value that warps a level is exactly the flow of that level.
* Warping omits the validity mask of the reference code (out-of-image samples read zero).
* Frames are normalized to [-1, 1] RGB inside the encoder.

The original widths give ~9 M parameters; ``PWC_LITE`` (5 levels, non-dense estimators, ReLU,
bilinear feature up-sampling) gives ~1.5 M and is the edge default.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from converters.ops import Correlation
from converters.zoo.base import FlowNetwork
from converters.zoo.layers import (
    ACTIVATIONS,
    backward_warp,
    conv,
    deconv,
    make_activation,
    normalize_frames,
    predict_flow,
    upsample,
    upsample_flow,
)
from edgeflow.errors import EdgeflowError

FEATURE_UPSAMPLING = ("deconv", "bilinear")


@dataclass(frozen=True)
class PWCConfig:
    """Hyper-parameters of :class:`PWCNet`; the defaults are the published PWC-Net."""

    #: Channels of pyramid levels 1..L (level l has stride 2**l); L = len(...) sets ``pad_multiple``.
    pyramid_channels: tuple[int, ...] = (16, 32, 64, 96, 128, 196)
    #: 3x3 convs per pyramid level, the first one strided.
    pyramid_convs: int = 3
    #: Estimator widths per level; ``dense`` concatenates every conv's input to its output.
    decoder_channels: tuple[int, ...] = (128, 128, 96, 64, 32)
    dense: bool = True
    #: Context network widths and dilations (same length); empty disables it.
    context_channels: tuple[int, ...] = (128, 128, 128, 96, 64, 32)
    context_dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 1)
    #: Correlation search radius in pixels of each level -> (2 md + 1)^2 cost channels.
    max_displacement: int = 4
    #: "leaky_relu" (slope 0.1, as published) or "relu" (fuses better into INT8 kernels).
    activation: str = "leaky_relu"
    #: Finest estimated level (2 -> 1/4 resolution), bilinearly up-sampled to full size.
    output_level: int = 2
    #: How estimator features travel to the next level: "deconv" (published) or
    #: "bilinear" (3x3 conv to 2 channels at the coarse level, then bilinear x2).
    feature_upsampling: str = "deconv"

    def __post_init__(self):
        levels = len(self.pyramid_channels)
        if not 1 <= self.output_level < levels:
            raise EdgeflowError(f"PWC output_level must be in 1..{levels - 1}, got {self.output_level}")
        if len(self.context_channels) != len(self.context_dilations):
            raise EdgeflowError("PWC context_channels and context_dilations must have the same length")
        if self.activation not in ACTIVATIONS:
            raise EdgeflowError(f"unknown activation {self.activation!r}; use one of: {', '.join(ACTIVATIONS)}")
        if self.feature_upsampling not in FEATURE_UPSAMPLING:
            raise EdgeflowError(
                f"unknown feature_upsampling {self.feature_upsampling!r}; use one of: {', '.join(FEATURE_UPSAMPLING)}"
            )
        if self.pyramid_convs < 1 or not self.decoder_channels or self.max_displacement < 1:
            raise EdgeflowError("PWC needs pyramid_convs >= 1, decoder_channels and max_displacement >= 1")

    @property
    def pad_multiple(self) -> int:
        return 2 ** len(self.pyramid_channels)

    @classmethod
    def from_dict(cls, values: dict) -> PWCConfig:
        return cls(**{key: tuple(val) if isinstance(val, list) else val for key, val in values.items()})


#: The published network: 6 levels, dense estimators, LeakyReLU, ~9.4 M parameters.
PWC_CONFIG = PWCConfig()

#: Edge configuration: 5 levels (total stride 32), two convs per pyramid level, plain estimators,
#: a small context net, ReLU and bilinear feature up-sampling.
PWC_LITE_CONFIG = PWCConfig(
    pyramid_channels=(16, 32, 64, 96, 128),
    pyramid_convs=2,
    decoder_channels=(96, 64, 48, 32),
    dense=False,
    context_channels=(64, 64, 48, 32),
    context_dilations=(1, 2, 4, 1),
    max_displacement=4,
    activation="relu",
    output_level=2,
    feature_upsampling="bilinear",
)


class PWCEncoder(nn.Module):
    """Frame (B, 3, H, W) in 0..255 -> pyramid features of levels output_level..L, fine -> coarse."""

    def __init__(self, config: PWCConfig):
        super().__init__()
        self.output_level = config.output_level
        levels = []
        in_channels = 3
        for channels in config.pyramid_channels:
            layers = [conv(in_channels, channels, config.activation, stride=2)]
            layers += [conv(channels, channels, config.activation) for _ in range(config.pyramid_convs - 1)]
            levels.append(nn.Sequential(*layers))
            in_channels = channels
        self.levels = nn.ModuleList(levels)
        self.feature_channels = tuple(config.pyramid_channels[config.output_level - 1 :])
        self.feature_strides = tuple(2**level for level in range(config.output_level, len(levels) + 1))

    def forward(self, frame: torch.Tensor) -> list[torch.Tensor]:
        x = normalize_frames(frame)
        features = []
        for index, level in enumerate(self.levels):
            x = level(x)
            if index + 1 >= self.output_level:
                features.append(x)
        return features


class PWCEstimator(nn.Module):
    """One decoder level: features -> (flow at this level, estimator features)."""

    def __init__(self, in_channels: int, config: PWCConfig):
        super().__init__()
        self.dense = config.dense
        convs = []
        channels = in_channels
        for width in config.decoder_channels:
            convs.append(conv(channels, width, config.activation))
            channels = channels + width if config.dense else width
        self.convs = nn.ModuleList(convs)
        self.out_channels = channels
        self.predict = predict_flow(channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for layer in self.convs:
            x = torch.cat([layer(x), x], dim=1) if self.dense else layer(x)
        return self.predict(x), x


class FeatureUpsampler(nn.Module):
    """Estimator features -> 2 channels at twice the resolution, handed to the next finer level."""

    def __init__(self, in_channels: int, mode: str):
        super().__init__()
        self.mode = mode
        self.layer = deconv(in_channels, 2) if mode == "deconv" else nn.Conv2d(in_channels, 2, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "deconv":
            return self.layer(x)
        return upsample(self.layer(x), 2)


class ContextNetwork(nn.Module):
    """Dilated convs over the finest estimator features -> residual flow (widens the receptive field)."""

    def __init__(self, in_channels: int, config: PWCConfig):
        super().__init__()
        layers = []
        channels = in_channels
        for width, dilation in zip(config.context_channels, config.context_dilations):
            layers.append(conv(channels, width, config.activation, dilation=dilation))
            channels = width
        layers.append(predict_flow(channels))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class PWCDecoder(nn.Module):
    """(feats1, feats2) from :class:`PWCEncoder` -> flow (B, 2, H, W) at input resolution."""

    def __init__(self, config: PWCConfig):
        super().__init__()
        levels = len(config.pyramid_channels) - config.output_level + 1
        #: Indices of the encoder outputs this decoder reads, per frame (here: all of them).
        self.used_feats1 = self.used_feats2 = tuple(range(levels))
        md = config.max_displacement
        cost_channels = (2 * md + 1) ** 2
        self.activation = make_activation(config.activation)
        self.output_stride = 2**config.output_level
        # Coarse -> fine, one estimator per level L..output_level.
        feature_channels = config.pyramid_channels[config.output_level - 1 :][::-1]
        # One Correlation module per level (same attributes): exporters and MAC counters then
        # see one module per correlation call.
        self.correlations = nn.ModuleList(
            Correlation(max_displacement=md, kernel_size=1, stride1=1, stride2=1, pad_size=md) for _ in feature_channels
        )
        estimators, upsamplers = [], []
        for index, channels in enumerate(feature_channels):
            in_channels = cost_channels if index == 0 else cost_channels + channels + 4
            estimator = PWCEstimator(in_channels, config)
            estimators.append(estimator)
            if index + 1 < len(feature_channels):
                upsamplers.append(FeatureUpsampler(estimator.out_channels, config.feature_upsampling))
        self.estimators = nn.ModuleList(estimators)
        self.upsamplers = nn.ModuleList(upsamplers)
        self.context = ContextNetwork(estimators[-1].out_channels, config) if config.context_channels else None

    def forward(self, feats1: list[torch.Tensor], feats2: list[torch.Tensor], return_pyramid: bool = False):
        pyramid = []
        flow = up_features = None
        levels = len(self.estimators)
        for index, estimator in enumerate(self.estimators):
            c1 = feats1[levels - 1 - index]
            c2 = feats2[levels - 1 - index]
            if flow is None:
                x = self.activation(self.correlations[index](c1, c2))
            else:
                up_flow = upsample_flow(flow)
                cost = self.activation(self.correlations[index](c1, backward_warp(c2, up_flow)))
                x = torch.cat([cost, c1, up_flow, up_features], dim=1)
            flow, features = estimator(x)
            if index < len(self.upsamplers):
                up_features = self.upsamplers[index](features)
            if index + 1 < levels:
                pyramid.append(flow)
        if self.context is not None:
            flow = flow + self.context(features)
        pyramid.append(flow)
        full = upsample_flow(flow, self.output_stride)
        return (full, pyramid) if return_pyramid else full


class PWCNet(FlowNetwork):
    """PWC-Net; see the module docstring. ``pad_multiple`` is 2**levels (64 published, 32 lite)."""

    arch = "pwc"

    def __init__(self, config: PWCConfig = PWC_CONFIG):
        super().__init__(config, PWCEncoder(config), PWCDecoder(config), config.pad_multiple)
