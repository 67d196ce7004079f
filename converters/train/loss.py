"""PWC-Net's multi-scale endpoint-error loss, with valid masks.

PWC-Net (Sun et al. 2018) supervises every pyramid level: the ground truth is down-sampled to the
level and compared with that level's flow, weighted by ``alpha`` = 0.32, 0.08, 0.02, 0.01, 0.005
for strides 64, 32, 16, 8, 4. The paper *sums* the per-pixel errors of a level (and measures every
level in the same units, full-resolution pixels / 20), so a level's share of the loss also grows
with its pixel count. We average instead (the loss then does not change with crop or batch size)
and keep the paper's balance by weighting the mean of a level with stride ``s`` by
``alpha(s) * (4 / s)**2 / alpha(4)``: 0.25, 0.25, 0.5, 1 for strides 32, 16, 8, 4. The
full-resolution EPE (what evaluation reports) is added with ``full_weight``.

Units: zoo models return each pyramid flow in pixels of its own resolution; the ground truth is
down-sampled (masked average over each ``s x s`` block) and divided by ``s`` to the same units,
and the level's EPE is multiplied by ``s`` so every term reads in full-resolution pixels.
Invalid pixels (occluded, out of view) carry no loss; a level pixel counts if at least half of
its block is valid.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F

#: PWC-Net's published weights by level stride.
PWC_ALPHAS = {64: 0.32, 32: 0.08, 16: 0.02, 8: 0.01, 4: 0.005}


class LossTerms(NamedTuple):
    total: torch.Tensor
    epe: torch.Tensor  # full-resolution mean EPE over valid pixels (detached)
    levels: list[float]  # per-level mean EPE in full-resolution pixels, coarse -> fine


def level_weight(stride: int, alphas: Optional[dict] = None) -> float:
    """Weight of a level's *mean* EPE that reproduces PWC-Net's per-pixel-sum balance."""
    alphas = alphas or PWC_ALPHAS
    if stride not in alphas:
        raise ValueError(f"no PWC weight for pyramid stride {stride}; known strides {sorted(alphas)}")
    return alphas[stride] * (4.0 / stride) ** 2 / alphas[4]


def downsample_flow(flow: torch.Tensor, valid: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 2, H, W) flow in full-res pixels -> (B, 2, H/s, W/s) in pixels of that level, and its mask."""
    if stride == 1:
        return flow, valid
    mask = valid.unsqueeze(1)
    weight = F.avg_pool2d(mask, stride)
    summed = F.avg_pool2d(flow * mask, stride)
    level_flow = summed / weight.clamp_min(1e-6) / stride
    return level_flow, (weight[:, 0] >= 0.5).to(flow.dtype)


def masked_epe(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean endpoint error over pixels with ``valid`` = 1 (0 when none is valid)."""
    epe = torch.sqrt(((pred - target) ** 2).sum(dim=1) + 1e-12)
    return (epe * valid).sum() / valid.sum().clamp_min(1.0)


def multiscale_loss(
    flow: torch.Tensor,
    pyramid: Sequence[torch.Tensor],
    target: torch.Tensor,
    valid: Optional[torch.Tensor] = None,
    weights: Optional[Sequence[float]] = None,
    full_weight: float = 1.0,
) -> LossTerms:
    """``flow``: (B, 2, H, W) full-resolution estimate; ``pyramid``: coarse -> fine level flows,
    each in its own pixel units; ``target``: (B, 2, H, W); ``valid``: (B, H, W) of 0/1.
    ``weights`` (one per pyramid level) default to :func:`level_weight` of each level's stride."""
    if valid is None:
        valid = torch.ones_like(target[:, 0])
    valid = valid.to(target.dtype)
    height = target.shape[-2]
    total = full_weight * masked_epe(flow, target, valid)
    full_epe = total.detach() / full_weight if full_weight else masked_epe(flow, target, valid).detach()
    levels = []
    for index, pred in enumerate(pyramid):
        stride = height // pred.shape[-2]
        if stride * pred.shape[-2] != height or stride * pred.shape[-1] != target.shape[-1]:
            raise ValueError(f"pyramid level {index} {tuple(pred.shape[-2:])} does not divide {tuple(target.shape[-2:])}")
        level_target, level_valid = downsample_flow(target, valid, stride)
        epe = masked_epe(pred, level_target, level_valid) * stride
        weight = weights[index] if weights is not None else level_weight(stride)
        total = total + weight * epe
        levels.append(float(epe.detach()))
    return LossTerms(total, full_epe, levels)
