"""Pick the reader for a ``--data`` path: explicit ``--format``, else recognised by folder layout."""

from __future__ import annotations

import os
from pathlib import Path

from edgeflow.datasets import builtin, kitti, middlebury, sintel, triples
from edgeflow.datasets.base import Dataset
from edgeflow.errors import InputError

#: Layout name -> one-line description, in detection order (``builtin`` is matched by name).
LAYOUTS = {
    "sintel": "sintel (training/{clean,final}/SEQ/frame_NNNN.png + training/flow/SEQ/frame_NNNN.flo)",
    "kitti": "kitti (training/image_2/NNNNNN_10.png, _11.png + training/flow_occ/NNNNNN_10.png)",
    "middlebury": "middlebury (other-data/SEQ/frame10.png, frame11.png + other-gt-flow/SEQ/flow10.flo)",
    "triples": "triples (NAME_frame1.png, NAME_frame2.png, NAME_flow.flo|png in one folder)",
    "builtin": "builtin (--data builtin: photos with known motion + the Middlebury motorcycle pair)",
    "unseen": "unseen (--data unseen: held-out photos and texture families no training recipe uses + the motorcycle pair)",
}
FORMATS = tuple(LAYOUTS)
_DETECTORS = (("sintel", sintel.detect), ("kitti", kitti.detect), ("middlebury", middlebury.detect),
              ("triples", triples.detect))


def _layouts_line() -> str:
    return "; ".join(LAYOUTS.values())


def detect_layout(path) -> str:
    """The layout name of ``path`` (a folder, or the word ``builtin``); InputError if none fits."""
    if os.fspath(path) in ("builtin", "unseen"):
        return os.fspath(path)
    root = Path(path).expanduser()
    if not root.exists():
        raise InputError(f"data path {root} does not exist; pass a data-set folder or 'builtin'")
    if not root.is_dir():
        raise InputError(f"data path {root} is a file; pass a data-set folder or 'builtin'")
    try:
        empty = not any(root.iterdir())
        for name, detect in _DETECTORS:
            if detect(root):
                return name
    except OSError as err:
        raise InputError(f"cannot read data folder {root}: {err.strerror or err}") from None
    what = "is empty" if empty else "matches no known layout"
    raise InputError(f"data folder {root} {what}; expected one of: {_layouts_line()}")


def open_dataset(path, format: str | None = None, sintel_pass: str = "clean", kitti_gt: str = "occ") -> Dataset:
    """Open ``path`` as a :class:`Dataset` of :class:`FlowPair`.

    ``format`` (one of :data:`FORMATS`) skips detection. ``sintel_pass`` is clean, final or both;
    ``kitti_gt`` is occ (all pixels with ground truth) or noc (non-occluded only).
    """
    if format is None:
        format = detect_layout(path)
    elif format not in LAYOUTS:
        raise InputError(f"unknown data format {format!r}; choose one of {', '.join(FORMATS)}")
    if format == "builtin":
        return builtin.open_builtin()
    if format == "unseen":
        return builtin.open_unseen()
    root = Path(path).expanduser()
    if not root.is_dir():
        state = "does not exist" if not root.exists() else "is not a folder"
        raise InputError(f"data path {root} {state}; pass a data-set folder or 'builtin'")
    try:
        if format == "sintel":
            return sintel.open_sintel(root, sintel_pass)
        if format == "kitti":
            return kitti.open_kitti(root, kitti_gt)
        if format == "middlebury":
            return middlebury.open_middlebury(root)
        return triples.open_triples(root)
    except OSError as err:
        raise InputError(f"cannot read data folder {root}: {err.strerror or err}") from None
