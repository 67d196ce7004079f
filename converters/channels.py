"""Filter selection and weight copying for structured channel pruning: what every family's pruner
uses (:mod:`converters.prune` for PWC, :mod:`converters.prune_neuflow` for NeuFlow), below both so
neither imports the other back (``prune_model`` dispatches to the families)."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from edgeflow.errors import EdgeflowError


def kept_width(channels: int, ratio: float) -> int:
    """Output channels a layer keeps at ``ratio``: rounded to a multiple of 8 (the SIMD block of
    onnxruntime's NCHWc kernels) once a layer has 16 or more."""
    keep = max(1, int(round(channels * (1.0 - ratio))))
    if channels >= 16 and keep >= 8:
        keep = max(8, int(round(keep / 8.0)) * 8)
    return min(keep, channels)


def narrowed_config(config, ratio: float, *width_fields: str):
    """``config`` with every width tuple in ``width_fields`` kept at ``(1 - ratio)`` (:func:`kept_width`):
    a pruned network is its family's class with a narrower config, so it saves and exports like any
    zoo model."""
    return dataclasses.replace(config, **{name: tuple(kept_width(c, ratio) for c in getattr(config, name))
                                          for name in width_fields})


def top_filters(weight: torch.Tensor, keep: int, transposed: bool = False) -> torch.Tensor:
    """Indices (sorted) of the ``keep`` output channels with the largest filter L1 norm."""
    w = weight.detach().transpose(0, 1) if transposed else weight.detach()
    norms = w.abs().flatten(1).sum(1)
    return torch.sort(torch.topk(norms, keep).indices).values


def copy_conv(dst: nn.Module, src: nn.Module, out_idx: torch.Tensor, in_idx: torch.Tensor, in_scale=None) -> None:
    """The kept filters (``out_idx``) over the kept inputs (``in_idx``) of ``src`` into ``dst``;
    ``in_scale`` rescales the inputs (a correlation's normalization changes when C shrinks)."""
    with torch.no_grad():
        if isinstance(src, nn.ConvTranspose2d):  # weight (in, out, k, k)
            w = src.weight[in_idx][:, out_idx]
        else:
            w = src.weight[out_idx][:, in_idx]
        if in_scale is not None:
            shape = (-1, 1, 1, 1) if isinstance(src, nn.ConvTranspose2d) else (1, -1, 1, 1)
            w = w * in_scale.view(shape)
        if dst.weight.shape != w.shape:
            raise EdgeflowError(f"internal: pruned weight {tuple(w.shape)} does not fit layer {tuple(dst.weight.shape)}")
        dst.weight.copy_(w)
        if src.bias is not None:
            dst.bias.copy_(src.bias[out_idx])


def conv_of(block: nn.Module) -> nn.Module:
    """``conv()`` blocks are Sequential(Conv2d, activation); predict layers are bare convs."""
    return block[0] if isinstance(block, nn.Sequential) else block
