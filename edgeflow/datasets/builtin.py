"""``--data builtin``: the evaluation set that ships with edgeflow, no download needed.

It comes from :func:`edgeflow.synthetic.builtin_eval_set`: real photographs moved by known
motions (exact ground truth) plus the real Middlebury "motorcycle" stereo pair bundled with
scikit-image (disparity as horizontal flow, pixels without disparity masked). The motorcycle pair
is the one sample not made by us, so reports show it on its own line, :data:`MOTORCYCLE`.
"""

from __future__ import annotations

import numpy as np

from edgeflow.datasets.base import FlowPair, MemoryDataset
from edgeflow.errors import InputError

LAYOUT = "builtin"
MOTORCYCLE = "motorcycle (real stereo)"


def _load_builtin_set():
    """The raw pairs from :mod:`edgeflow.synthetic` (separate function: tests replace it)."""
    try:
        from edgeflow.synthetic import builtin_eval_set
    except ImportError as err:
        raise InputError(f"the built-in evaluation set is unavailable ({err}); reinstall edgeflow") from None
    return list(builtin_eval_set())


def _field(item, *names, default=None):
    for name in names:
        if isinstance(item, dict) and name in item:
            return item[name]
        if hasattr(item, name):
            return getattr(item, name)
    return default


def _is_motorcycle(*labels) -> bool:
    return any(isinstance(label, str) and "motorcycle" in label.lower() for label in labels)


def as_flow_pair(item, index: int) -> FlowPair:
    """Adapt one built-in sample to :class:`FlowPair`; the motorcycle pair gets :data:`MOTORCYCLE`."""
    name = str(_field(item, "name", default=f"pair_{index:03d}"))
    sequence = _field(item, "sequence", "group", "kind", "source")
    frame1, frame2, flow = (_field(item, key) for key in ("frame1", "frame2", "flow"))
    if frame1 is None or frame2 is None or flow is None:
        raise InputError(f"built-in sample {name!r} lacks frame1/frame2/flow; reinstall edgeflow")
    valid = _field(item, "valid")
    if valid is None:
        valid = np.ones(np.shape(flow)[:2], dtype=bool)
    if _is_motorcycle(name, sequence):
        sequence = MOTORCYCLE
    elif not isinstance(sequence, str) or not sequence:
        sequence = name
    return FlowPair(name, sequence, np.asarray(frame1), np.asarray(frame2),
                    np.asarray(flow, dtype=np.float32), np.asarray(valid, dtype=bool))


def _load_unseen_set():
    try:
        from edgeflow.synthetic.unseen_eval import unseen_eval_set
    except ImportError as err:
        raise InputError(f"the unseen evaluation set is unavailable ({err}); reinstall edgeflow") from None
    return list(unseen_eval_set())


def open_unseen() -> MemoryDataset:
    """``--data unseen``: held-out photos and texture families no edgeflow training recipe uses
    (:mod:`edgeflow.synthetic.unseen_eval`), plus the motorcycle pair on its own line."""
    pairs = [as_flow_pair(item, i) for i, item in enumerate(_load_unseen_set())]
    highlights = (MOTORCYCLE,) if any(p.sequence == MOTORCYCLE for p in pairs) else ()
    return MemoryDataset("unseen", "unseen", pairs, highlights=highlights)


def open_builtin() -> MemoryDataset:
    pairs = [as_flow_pair(item, i) for i, item in enumerate(_load_builtin_set())]
    if not pairs:
        raise InputError("the built-in evaluation set is empty; reinstall edgeflow")
    highlights = (MOTORCYCLE,) if any(p.sequence == MOTORCYCLE for p in pairs) else ()
    return MemoryDataset(LAYOUT, LAYOUT, pairs, highlights=highlights)
