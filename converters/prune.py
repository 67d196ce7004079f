"""Structured channel pruning for the PWC family, and distillation fine-tuning to recover accuracy.

The NeuFlow family (the edge default) has its dependencies in :mod:`converters.prune_neuflow`;
:func:`prune_model` is the one place that picks a family.

Why not a generic dependency graph: Torch-Pruning's ``DependencyGraph`` traces autograd, and in a
flow network it walks *through* the correlation (a channel sum) and the backward warp (a
``grid_sample`` whose grid is the 2-channel flow), coupling 64 feature channels with the
81 cost channels and with the flow's u/v: its groups would prune the flow itself. PWC's channel
dependencies are few and known, so they are written down here, explicitly:

* pyramid level l: conv -> conv; the level's output feeds the next level, the correlation (both
  frames: one encoder, so one selection) and the decoder's concatenation at that level;
* decoder level: ``cat([cost (D*D, fixed), frame-1 features, up-flow (2), up-features (2)])`` ->
  estimator convs (dense: every conv's output is concatenated in front of its input) ->
  2-channel flow (fixed), the feature up-sampler (2 channels out, fixed) and, at the finest
  level, the context network -> 2-channel residual flow (fixed).

Every prunable layer keeps ``(1 - ratio)`` of its output channels (rounded to a multiple of 8,
the SIMD block of onnxruntime's NCHWc kernels, once a layer has 16 or more), chosen by the L1
norm of their filters. Widths of one kind stay equal across levels, so the result is a plain
:class:`~converters.zoo.pwc.PWCNet` with a smaller :class:`PWCConfig`: it saves as a normal
checkpoint and exports like any zoo model. The correlation's channel normalization (divide by C)
changes when C shrinks; the cost-volume input weights of each estimator are rescaled by
``C' / C`` so the pruned network starts as close to the original as possible.

:func:`distill` then fine-tunes the pruned student against the unpruned teacher on the
synthetic generator: L1 between student and teacher flows at every pyramid level plus EPE
against the generator's exact ground truth.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from converters.channels import conv_of as _conv_of
from converters.channels import copy_conv as _copy_conv
from converters.channels import narrowed_config
from converters.channels import kept_width  # noqa: F401  (callers and tests read it here too)
from converters.channels import top_filters as _top_filters
from edgeflow.errors import EdgeflowError


@dataclass
class PruneResult:
    model: nn.Module
    ratio: float
    config_before: dict
    config_after: dict
    finetune: dict = field(default_factory=dict)
    #: Keyword arguments for :func:`distill` that suit this family (render size, motion range);
    #: empty: distill's own defaults (tuned on pwc-lite).
    distill_options: dict = field(default_factory=dict)


def pruned_config(config, ratio: float):
    return narrowed_config(config, ratio, "pyramid_channels", "decoder_channels", "context_channels")


def prune_pwc(model, ratio: float):
    """A new, smaller PWCNet holding the most important channels of ``model``."""
    from converters.zoo.pwc import PWCNet

    old_cfg = model.config
    new_cfg = pruned_config(old_cfg, ratio)
    new = PWCNet(new_cfg).eval()
    arange = lambda n: torch.arange(n)  # noqa: E731

    # Encoder: chain through each level; remember each level's output selection.
    in_idx, level_out = arange(3), []
    for old_level, new_level, width in zip(model.encoder.levels, new.encoder.levels, new_cfg.pyramid_channels):
        for old_block, new_block in zip(old_level, new_level):
            src, dst = _conv_of(old_block), _conv_of(new_block)
            out_idx = _top_filters(src.weight, width)
            _copy_conv(dst, src, out_idx, in_idx)
            in_idx = out_idx
        level_out.append(in_idx)

    # Decoder, coarse -> fine.
    dec_old, dec_new = model.decoder, new.decoder
    cost = dec_old.correlations[0].out_channels
    n_levels = len(dec_old.estimators)
    first_level = old_cfg.output_level - 1
    feats_out = None
    for i, (est_old, est_new) in enumerate(zip(dec_old.estimators, dec_new.estimators)):
        level = first_level + (n_levels - 1 - i)
        c_old, keep_feat = old_cfg.pyramid_channels[level], level_out[level]
        scale = torch.ones(cost)  # correlation divides by C: keep the cost's scale
        scale *= new_cfg.pyramid_channels[level] / c_old
        if i == 0:
            in_idx, in_scale = arange(cost), scale
        else:
            tail = cost + c_old
            in_idx = torch.cat([arange(cost), cost + keep_feat, torch.arange(tail, tail + 4)])
            in_scale = torch.cat([scale, torch.ones(len(keep_feat) + 4)])
        for j, (old_block, new_block) in enumerate(zip(est_old.convs, est_new.convs)):
            src, dst = _conv_of(old_block), _conv_of(new_block)
            out_idx = _top_filters(src.weight, new_cfg.decoder_channels[j])
            _copy_conv(dst, src, out_idx, in_idx, in_scale if j == 0 else None)
            # dense: x = cat([conv(x), x]) -> this conv's outputs first, then the old input.
            in_idx = torch.cat([out_idx, src.out_channels + in_idx]) if old_cfg.dense else out_idx
        _copy_conv(est_new.predict, est_old.predict, arange(2), in_idx)
        if i < len(dec_old.upsamplers):
            up_old, up_new = dec_old.upsamplers[i].layer, dec_new.upsamplers[i].layer
            _copy_conv(up_new, up_old, arange(2), in_idx)
        feats_out = in_idx
    if dec_old.context is not None:
        in_idx = feats_out
        layers_old, layers_new = list(dec_old.context.layers), list(dec_new.context.layers)
        for j, (old_block, new_block) in enumerate(zip(layers_old[:-1], layers_new[:-1])):
            src, dst = _conv_of(old_block), _conv_of(new_block)
            out_idx = _top_filters(src.weight, new_cfg.context_channels[j])
            _copy_conv(dst, src, out_idx, in_idx)
            in_idx = out_idx
        _copy_conv(layers_new[-1], layers_old[-1], arange(2), in_idx)
    for attr in ("pretrained", "zoo_name"):
        if hasattr(model, attr):
            setattr(new, attr, getattr(model, attr))
    return new


def prune_model(model: nn.Module, ratio: float) -> PruneResult:
    """Structured pruning of ``model`` by ``ratio`` (0 < ratio < 1) of the channels of each layer."""
    from converters.zoo.neuflow import NeuFlowNet
    from converters.zoo.pwc import PWCNet

    if not 0.0 < ratio < 1.0:
        raise EdgeflowError(f"--prune takes a fraction of channels to remove in (0, 1), got {ratio}")
    options = {}
    if isinstance(model, PWCNet):
        pruned = prune_pwc(model, ratio)
    elif isinstance(model, NeuFlowNet):  # the edge default; its dependencies: converters/prune_neuflow.py
        from converters.prune_neuflow import DISTILL_OPTIONS, prune_neuflow

        pruned, options = prune_neuflow(model, ratio), dict(DISTILL_OPTIONS)
    else:
        raise EdgeflowError(
            f"--prune supports the PWC family (pwc, pwc-lite) and the NeuFlow family (default, neuflow-lite) for now, "
            f"not {type(model).__name__}; convert without --prune"
        )
    return PruneResult(pruned, ratio, model.config_dict(), pruned.config_dict(), distill_options=options)


# ----------------------------------------------------------------------------- distillation
def _batch(gen, start: int, size: int):
    samples = [gen.sample(start + k) for k in range(size)]
    f1 = torch.from_numpy(np.stack([s.frame1 for s in samples])).permute(0, 3, 1, 2).float()
    f2 = torch.from_numpy(np.stack([s.frame2 for s in samples])).permute(0, 3, 1, 2).float()
    gt = torch.from_numpy(np.stack([s.flow for s in samples])).permute(0, 3, 1, 2)
    valid = torch.from_numpy(np.stack([s.valid for s in samples])).unsqueeze(1).float()
    return f1, f2, gt, valid


def distill(student: nn.Module, teacher: nn.Module, steps: int, height: int = 128, width: int = 192,
            batch: int = 4, lr: float = 5e-4, gt_weight: float = 0.5, seed: int = 77,
            max_motion: float = 36.0, warmup: int = 100) -> dict:
    """Fine-tune ``student`` to match ``teacher`` (and the ground truth) on synthetic pairs.

    Loss = mean over the pyramid levels and the full-resolution output of the EPE between student
    and teacher flows (each level scaled to full-resolution pixels), plus ``gt_weight`` x EPE
    against the exact ground truth at full resolution. Adam; the learning rate warms up linearly
    over ``warmup`` steps, then decays on a cosine to 5 % of ``lr`` (the student starts far from
    the teacher -- ~9 px EPE right after pruning 50 % -- so the early steps are the large ones).
    Both networks use the training-only correlation backward of
    :mod:`converters.train.fast_correlation` (same values; the student is handed back with the
    exportable op).
    """
    from converters.progress import progress_bar
    from edgeflow.synthetic import SyntheticFlowGenerator

    if steps <= 0:
        return {}
    multiple = getattr(student, "pad_multiple", 32)
    height, width = (max(multiple, height // multiple * multiple), max(multiple, width // multiple * multiple))
    # Motion as large as the teacher was trained on (pwc-lite's stage 2: 36 px) even on small
    # renders: the generator's default scales with the frame (14 px at 192 wide), and a student
    # fine-tuned on small motions only forgets the large ones (pwc-lite stage 1, --prune 0.5: 1000
    # steps at the 14 px default ended +37 % EPE over FP32; 1500 steps at 24 px, +9 %).
    gen = SyntheticFlowGenerator(height, width, seed=seed, augment=True, max_motion=max_motion)
    from converters.train.fast_correlation import use_fast_correlation, use_standard_correlation

    teacher = copy.deepcopy(teacher).eval()
    use_fast_correlation(teacher)
    use_fast_correlation(student)
    student.train()
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    warmup = max(1, min(warmup, steps // 10))

    def lr_factor(s: int) -> float:
        cosine = 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
        return min(1.0, (s + 1) / warmup) * (0.05 + 0.95 * cosine)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    history, start = [], time.perf_counter()
    # Render the next batch on a worker thread while this one trains (numpy releases the GIL for
    # most of the rendering): ~a quarter of a CPU step otherwise.
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1)
    pending = pool.submit(_batch, gen, 0, batch)
    try:
        for step in progress_bar(range(steps), steps, "distilling"):
            f1, f2, gt, valid = pending.result()
            if step + 1 < steps:
                pending = pool.submit(_batch, gen, (step + 1) * batch, batch)
            with torch.no_grad():
                t_full, t_pyr = teacher(f1, f2, return_pyramid=True)
            s_full, s_pyr = student(f1, f2, return_pyramid=True)
            # Every level's EPE in full-resolution pixels (a level's flow is in its own pixels).
            levels = list(zip(s_pyr, t_pyr)) + [(s_full, t_full)]
            loss = sum(torch.linalg.vector_norm(s - t, dim=1).mean() * (width / s.shape[-1]) for s, t in levels) / len(levels)
            epe_gt = (torch.linalg.vector_norm(s_full - gt, dim=1, keepdim=True) * valid).sum() / valid.sum().clamp(min=1)
            loss = loss + gt_weight * epe_gt
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 10.0)
            opt.step()
            sched.step()
            history.append((float(loss.detach()), float(epe_gt.detach())))
    finally:  # an interrupted run still hands back an exportable student
        pool.shutdown(cancel_futures=True)
        use_standard_correlation(student)
    student.eval()
    tail = history[-max(1, len(history) // 10):]
    return {"steps": steps, "batch": batch, "resolution": [width, height], "max_motion": max_motion, "lr": lr,
            "warmup": warmup, "gt_weight": gt_weight,
            "seconds": round(time.perf_counter() - start, 1), "final_loss": float(np.mean([h[0] for h in tail])),
            "final_train_epe_vs_gt": float(np.mean([h[1] for h in tail]))}
