"""Building blocks shared by the zoo models.

Everything here is written so that a decoder built from it exports through the TorchScript ONNX
exporter (opset 17) with *dynamic* H and W:

* Up-sampling uses ``F.interpolate(scale_factor=...)`` (an ONNX ``Resize`` with constant scales),
  never a Python-computed output size.
* Backward warping builds its sampling grid from the tensor itself (``CumSum`` over a tensor of
  ones) instead of ``torch.arange(W)`` plus Python arithmetic on ``W``, which the tracer would
  freeze into constants of the example size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeflow.errors import EdgeflowError

ACTIVATIONS = ("leaky_relu", "relu")


def make_activation(name: str) -> nn.Module:
    """``leaky_relu`` (slope 0.1, as in PWC-Net/FlowNet) or ``relu`` (fuses into INT8 conv kernels)."""
    if name == "leaky_relu":
        return nn.LeakyReLU(0.1)
    if name == "relu":
        return nn.ReLU()
    raise EdgeflowError(f"unknown activation {name!r}; use one of: {', '.join(ACTIVATIONS)}")


def conv(
    in_channels: int,
    out_channels: int,
    activation: str,
    kernel_size: int = 3,
    stride: int = 1,
    dilation: int = 1,
) -> nn.Sequential:
    """Conv2d ("same" padding for odd kernels) followed by the activation."""
    padding = dilation * (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation),
        make_activation(activation),
    )


def deconv(in_channels: int, out_channels: int, activation: str | None = None) -> nn.Module:
    """Learned exact 2x up-sampling (ConvTranspose 4x4, stride 2, padding 1), optionally activated."""
    layer = nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1)
    if activation is None:
        return layer
    return nn.Sequential(layer, make_activation(activation))


def predict_flow(in_channels: int) -> nn.Conv2d:
    """3x3 conv to a 2-channel (u, v) flow; no activation, flow is signed."""
    return nn.Conv2d(in_channels, 2, 3, 1, 1)


def upsample(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Bilinear up-sampling by a constant factor (an ONNX Resize with constant scales)."""
    return F.interpolate(x, scale_factor=float(factor), mode="bilinear", align_corners=False)


def upsample_flow(flow: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Bilinear up-sampling of a flow held in pixel units of its own resolution.

    The vectors are multiplied by ``factor`` because one pixel at the coarse level spans
    ``factor`` pixels at the fine level.
    """
    return upsample(flow, factor) * float(factor)


def backward_warp(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``features`` (frame 2) at ``(x + u, y + v)`` for every pixel ``(x, y)`` of frame 1.

    ``flow`` is (B, 2, H, W) in pixels of this resolution. Samples outside the image read zeros.
    The pixel grid comes from cumulative sums of ones (so ``H`` and ``W`` stay symbolic in an
    exported graph); with ``align_corners=False`` pixel ``x`` maps to ``(2x + 1) / W - 1``.
    """
    ones = torch.ones_like(flow[:, :1])
    xs = ones.cumsum(dim=3) - 1.0
    ys = ones.cumsum(dim=2) - 1.0
    width = ones.sum(dim=3, keepdim=True)
    height = ones.sum(dim=2, keepdim=True)
    grid_x = (2.0 * (xs + flow[:, 0:1]) + 1.0) / width - 1.0
    grid_y = (2.0 * (ys + flow[:, 1:2]) + 1.0) / height - 1.0
    grid = torch.cat([grid_x, grid_y], dim=1).permute(0, 2, 3, 1)
    return F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def normalize_frames(frames: torch.Tensor) -> torch.Tensor:
    """Map 0..255 RGB to [-1, 1]; done inside the model so every runtime feeds raw pixels."""
    return frames * (1.0 / 127.5) - 1.0
