"""Synthetic optical-flow data with exact ground truth (numpy only, never torch).

Used by the ``synthetic://`` frame source (:class:`SyntheticSequence`), by training and INT8
calibration (:class:`SyntheticFlowGenerator`) and by evaluation (:func:`builtin_eval_set`).
Flow convention everywhere: ``HxWx2`` float32 ``(u, v)``; frame-1 pixel ``(x, y)`` is at
``(x + u, y + v)`` in frame 2. Frames are ``HxWx3`` uint8 RGB. See ``docs/synthetic.md``.
"""

from edgeflow.synthetic.builtin_eval import EvalPair, builtin_eval_set
from edgeflow.synthetic.generator import FlowSample, SyntheticFlowGenerator
from edgeflow.synthetic.photometric import PhotometricAugment
from edgeflow.synthetic.sampling import warp_backward
from edgeflow.synthetic.sequence import SyntheticSequence
from edgeflow.synthetic.textures import TextureBank, default_bank

__all__ = [
    "EvalPair",
    "FlowSample",
    "PhotometricAugment",
    "SyntheticFlowGenerator",
    "SyntheticSequence",
    "TextureBank",
    "builtin_eval_set",
    "default_bank",
    "warp_backward",
]
