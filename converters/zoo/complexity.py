"""Parameter and multiply-accumulate counts, for model cards and for choosing a model per device.

MACs are counted by forward hooks on a real forward pass at the requested size: convolutions
(``Conv2d``, ``ConvTranspose2d``) and correlations (one MAC per channel, displacement and
output pixel). Resizes, warps, activations and concatenations are ignored: they are memory-bound
and tiny next to the convolutions.
"""

from __future__ import annotations

import torch
from torch import nn

from converters.ops import Correlation


def count_parameters(model: nn.Module) -> int:
    return sum(param.numel() for param in model.parameters())


def count_macs(model: nn.Module, height: int, width: int) -> dict[str, int]:
    """MACs of one ``model(frame1, frame2)`` at (height, width): {"conv", "correlation", "total"}."""
    totals = {"conv": 0, "correlation": 0}

    def on_conv(module, inputs, output):
        kernel = module.weight[0].numel() if isinstance(module, nn.Conv2d) else module.weight.shape[0] // module.groups
        if isinstance(module, nn.ConvTranspose2d):
            # Each input pixel scatters in_channels x (out_channels / groups) x k x k products.
            spatial = module.kernel_size[0] * module.kernel_size[1]
            totals["conv"] += inputs[0].numel() * module.out_channels // module.groups * spatial
        else:
            totals["conv"] += output.numel() * kernel

    def on_correlation(module, inputs, output):
        totals["correlation"] += output.numel() * inputs[0].shape[1] * module.attrs.kernel_size**2

    handles = []
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            handles.append(module.register_forward_hook(on_conv))
        elif isinstance(module, Correlation):
            handles.append(module.register_forward_hook(on_correlation))
    try:
        frames = torch.zeros(1, 3, height, width)
        with torch.no_grad():
            model.eval()(frames, frames)
    finally:
        for handle in handles:
            handle.remove()
    totals["total"] = totals["conv"] + totals["correlation"]
    return totals
