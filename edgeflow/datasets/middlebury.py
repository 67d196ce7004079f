"""Middlebury flow (Baker et al., IJCV 2011): the 8 "other" sequences with public ground truth.

Layout (``other-color-twoframes.zip`` + ``other-gt-flow.zip`` unpacked side by side)::

    <root>/other-data/<seq>/frame10.png, frame11.png
    <root>/other-gt-flow/<seq>/flow10.flo

Each sequence is one pair. Ground truth marks unknown pixels with values > 1e9; those are
invalid. Sequences in ``other-data`` without ground truth are skipped; a ground truth without
its frames is an error. ``other-data`` may be the grayscale set too: frames are stacked to RGB.
"""

from __future__ import annotations

from pathlib import Path

from edgeflow.datasets.base import FileDataset, PairFiles, find_image, require_pairs
from edgeflow.errors import InputError

LAYOUT = "middlebury"
DATA, GT = "other-data", "other-gt-flow"


def detect(root: Path) -> bool:
    return (root / DATA).is_dir() and (root / GT).is_dir()


def open_middlebury(root) -> FileDataset:
    root = Path(root)
    if not detect(root):
        raise InputError(f"{root}: not Middlebury: expected {DATA}/<seq>/frame10.png and {GT}/<seq>/flow10.flo")
    entries = []
    for seq_dir in sorted(d for d in (root / GT).iterdir() if d.is_dir()):
        flow = seq_dir / "flow10.flo"
        if not flow.is_file():
            continue
        frames = root / DATA / seq_dir.name
        f1, f2 = find_image(frames, "frame10"), find_image(frames, "frame11")
        if f1 is None or f2 is None:
            raise InputError(f"Middlebury ground truth {flow} has no {frames}/frame10.png and frame11.png")
        entries.append(PairFiles(seq_dir.name, seq_dir.name, f1, f2, flow))
    require_pairs(entries, LAYOUT, root / GT, "<seq>/flow10.flo files")
    return FileDataset(LAYOUT, root, entries)
