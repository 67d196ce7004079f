"""Structured channel pruning for the NeuFlow family (zoo ``default``, ``neuflow-lite``).

Same method as the PWC family in :mod:`converters.prune` (filter L1 norm, ``kept_width``
rounding, explicit channel dependencies instead of a traced graph: Torch-Pruning's dependency
graph walks through the correlation and the backward warp, see that module's docstring). The
dependencies of :class:`~converters.zoo.neuflow.NeuFlowNet`, written down:

* encoder stage s (1/2, 1/4, 1/8, 1/16): conv -> conv, all ``channels[s]`` wide; a stage's output
  selection feeds the next stage and, for the 1/8 and 1/16 stages (and 1/4 with ``refine4``), the
  correlation inputs of *both* frames (one encoder, so one selection) and the decoders'
  concatenations;
* ``context8`` (1x1 conv on the 1/8 features, in the encoder): its own output selection, read by
  the 1/8 estimator's concatenation in place of the raw 1/8 features;
* 1/16 estimator: ``cat([cost16 (fixed), f16])`` -> convs -> 2-channel flow (fixed) and the
  2-channel feature up-sampler ``upfeat`` (fixed);
* 1/8 estimator: ``cat([cost8 (fixed), context8 or f8, up-flow (2), up-features (2)])`` ->
  convs -> 2-channel residual flow (fixed) -> context network (dilated convs) -> 2-channel flow;
* optional 1/4 level: ``cat([cost4 (fixed), f4, up-flow (2)])`` -> convs -> 2-channel flow.

Each correlation divides by its input channel count C (``normalize``); with C' kept channels the
cost grows by C / C', so the cost-volume input weights of the estimator that reads it are scaled
by C' / C (exact when the dropped channels were zero: a ReLU commutes with a positive scale).
Every width is its own config entry, so the result is a plain :class:`NeuFlowNet` with a smaller
:class:`NeuFlowConfig` that saves and exports like any zoo model.
"""

from __future__ import annotations

import dataclasses

import torch

from converters.channels import conv_of as _conv_of
from converters.channels import copy_conv as _copy_conv
from converters.channels import kept_width, narrowed_config
from converters.channels import top_filters as _top_filters

#: How ``--finetune-steps`` distills a pruned NeuFlow (:func:`converters.prune.distill` keywords):
#: at the teacher's training crop (192x256; at distill's pwc-lite default of 128x192 the 1/16
#: level is an 8x12 map, mostly correlation padding) with motion up to 64 px (the teacher trained
#: up to 80 px). Measured on the step-6800 `default` checkpoint, 500 steps each, unseen mean EPE:
#: 4.43 px at the pwc-lite defaults (128x192, 36 px), 3.67 px with these (teacher 2.43; the large
#: motions gain most: photo_translate_large 12.06 -> 5.01 px); docs/model_card_default.md.
DISTILL_OPTIONS = {"height": 192, "width": 256, "max_motion": 64.0}


def pruned_neuflow_config(config, ratio: float):
    narrow = narrowed_config(config, ratio, "channels", "decoder16", "decoder8", "context", "refine4")
    return dataclasses.replace(narrow, context8=kept_width(config.context8, ratio) if config.context8 else 0)


def _chain(old_blocks, new_blocks, widths, in_idx, in_scale=None):
    """Prune a plain conv -> conv chain; returns the last selection (the chain's output channels)."""
    for j, (old_block, new_block, width) in enumerate(zip(old_blocks, new_blocks, widths)):
        src, dst = _conv_of(old_block), _conv_of(new_block)
        out_idx = _top_filters(src.weight, width)
        _copy_conv(dst, src, out_idx, in_idx, in_scale if j == 0 else None)
        in_idx = out_idx
    return in_idx


def _estimator(old, new, widths, in_idx, in_scale):
    """Estimator convs + its 2-channel flow head; returns the last conv's selection."""
    last = _chain(old.convs, new.convs, widths, in_idx, in_scale)
    _copy_conv(new.predict, old.predict, torch.arange(2), last)
    return last


def _cost_input(cost: int, feat_idx, feat_old: int, corr_old: int, corr_new: int, extra: int):
    """Input selection and scale of an estimator that reads ``cat([cost, features, extra fixed])``.

    ``feat_idx``: the kept feature channels (of ``feat_old``); ``corr_old`` / ``corr_new``: the
    correlated features' channel count before / after pruning (the 1/C normalization to undo)."""
    tail = cost + feat_old
    idx = torch.cat([torch.arange(cost), cost + feat_idx, torch.arange(tail, tail + extra)])
    scale = torch.cat([torch.full((cost,), corr_new / corr_old), torch.ones(len(feat_idx) + extra)])
    return idx, scale


def prune_neuflow(model, ratio: float):
    """A new, smaller NeuFlowNet holding the most important channels of ``model``."""
    from converters.zoo.neuflow import NeuFlowNet

    old_cfg = model.config
    new_cfg = pruned_neuflow_config(old_cfg, ratio)
    new = NeuFlowNet(new_cfg).eval()

    # Encoder: stages chain; remember every stage's output selection.
    in_idx, stage_out = torch.arange(3), []
    for old_stage, new_stage, width in zip(model.encoder.stages, new.encoder.stages, new_cfg.channels):
        in_idx = _chain(old_stage, new_stage, [width] * len(old_stage), in_idx)
        stage_out.append(in_idx)
    idx4, idx8, idx16 = stage_out[1], stage_out[2], stage_out[3]
    if old_cfg.context8:
        ctx_idx = _chain([model.encoder.context], [new.encoder.context], [new_cfg.context8], idx8)
        ctx_old = old_cfg.context8
    else:
        ctx_idx, ctx_old = idx8, old_cfg.channels[2]

    old_dec, new_dec = model.decoder, new.decoder
    c = old_cfg.channels, new_cfg.channels

    # 1/16: cat([cost16, f1_16]) -> estimator -> flow16 and upfeat (2 channels).
    cost16 = (2 * old_cfg.md16 + 1) ** 2
    idx, scale = _cost_input(cost16, idx16, c[0][3], c[0][3], c[1][3], 0)
    last16 = _estimator(old_dec.estimator16, new_dec.estimator16, new_cfg.decoder16, idx, scale)
    _copy_conv(new_dec.upfeat, old_dec.upfeat, torch.arange(2), last16)

    # 1/8: cat([cost8, context8 or f1_8, up_flow (2), up_features (2)]) -> estimator -> context net.
    cost8 = (2 * old_cfg.md8 + 1) ** 2
    idx, scale = _cost_input(cost8, ctx_idx, ctx_old, c[0][2], c[1][2], 4)
    last8 = _estimator(old_dec.estimator8, new_dec.estimator8, new_cfg.decoder8, idx, scale)
    if old_dec.context is not None:
        layers_old, layers_new = list(old_dec.context.layers), list(new_dec.context.layers)
        last = _chain(layers_old[:-1], layers_new[:-1], new_cfg.context, last8)
        _copy_conv(layers_new[-1], layers_old[-1], torch.arange(2), last)

    # Optional 1/4: cat([cost4 (radius 2), f1_4, up4 (2)]) -> estimator.
    if old_dec.refine4 is not None:
        cost4 = (2 * old_dec.corr4.attrs.max_displacement + 1) ** 2
        idx, scale = _cost_input(cost4, idx4, c[0][1], c[0][1], c[1][1], 2)
        _estimator(old_dec.refine4, new_dec.refine4, new_cfg.refine4, idx, scale)

    for attr in ("pretrained", "zoo_name"):
        if hasattr(model, attr):
            setattr(new, attr, getattr(model, attr))
    return new
