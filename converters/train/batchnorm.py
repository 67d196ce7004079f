"""Training-time BatchNorm that folds away: the trained model keeps the zoo architecture exactly.

Why: pwc-lite has no normalization layers (they cost time on edge devices and complicate INT8).
Trained from scratch with a short CPU budget, such a network falls into the trivial solution
"predict zero flow": the quickest way to lower the loss is to shrink every activation, after
which the gradients vanish and the cost volume never becomes informative. A BatchNorm after
each hidden conv keeps activations at unit scale while the network learns to match.

After training, :func:`fold_batchnorm` merges each BatchNorm (with its running statistics) into
the preceding conv's weight and bias: ``y = gamma * (conv(x) - mean) / sqrt(var + eps) + beta``
is itself a conv. The result has the same modules and state-dict keys as a plain zoo model.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBN(nn.Module):
    """A Conv2d followed by BatchNorm2d; :meth:`fold` returns the equivalent plain Conv2d."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv
        self.bn = nn.BatchNorm2d(conv.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))

    @torch.no_grad()
    def fold(self) -> nn.Conv2d:
        conv, bn = self.conv, self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                           conv.dilation, conv.groups, bias=True).to(conv.weight.device)
        folded.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        folded.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
        return folded


def add_batchnorm(model: nn.Module) -> int:
    """Insert BatchNorm after every conv that feeds an activation (the ``conv()`` blocks of the
    zoo: ``Sequential(Conv2d, activation)``); flow heads and other plain convs are left alone."""
    count = 0
    for module in model.modules():
        if isinstance(module, nn.Sequential) and len(module) == 2 and isinstance(module[0], nn.Conv2d) \
                and isinstance(module[1], (nn.ReLU, nn.LeakyReLU)):
            module[0] = ConvBN(module[0])
            count += 1
    return count


def fold_batchnorm(model: nn.Module) -> int:
    """Replace every :class:`ConvBN` by its folded Conv2d (uses running statistics)."""
    count = 0
    for module in model.modules():
        for name, child in list(module.named_children()):
            if isinstance(child, ConvBN):
                setattr(module, name, child.fold())
                count += 1
    return count
