"""MPI-Sintel (Butler et al., ECCV 2012): rendered sequences with dense ``.flo`` ground truth.

Layout (the ``MPI-Sintel-complete`` archive)::

    <root>/training/clean/<seq>/frame_0001.png ...   (the "clean" render pass)
    <root>/training/final/<seq>/frame_0001.png ...   (the "final" pass: blur, fog, grading)
    <root>/training/flow/<seq>/frame_0001.flo ...    (flow from frame_N to frame_N+1)

``root`` may also be the ``training`` folder itself. Each ``flow/<seq>/frame_N.flo`` gives one
pair ``(frame_N, frame_N+1)``; a flow file without both frames is an error, not a silent skip.
Every pixel is scored (as on the Sintel benchmark's "EPE all"); the ``invalid``/``occlusions``
folders are not used.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgeflow.datasets.base import FileDataset, PairFiles, find_image, require_pairs
from edgeflow.errors import InputError

LAYOUT = "sintel"
PASSES = ("clean", "final")
PASS_CHOICES = ("clean", "final", "both")
_FLOW_NAME = re.compile(r"^frame_(\d+)\.flo$", re.IGNORECASE)


def training_dir(root: Path) -> Path | None:
    """The folder holding ``flow/`` and a pass folder, or None if ``root`` is not Sintel."""
    for base in (root / "training", root):
        if (base / "flow").is_dir() and any((base / p).is_dir() for p in PASSES):
            return base
    return None


def detect(root: Path) -> bool:
    return training_dir(root) is not None


def open_sintel(root, pass_: str = "clean") -> FileDataset:
    root = Path(root)
    if pass_ not in PASS_CHOICES:
        raise InputError(f"unknown Sintel pass {pass_!r}; choose one of {', '.join(PASS_CHOICES)}")
    base = training_dir(root)
    if base is None:
        raise InputError(
            f"{root}: not MPI-Sintel: expected training/flow/<seq>/*.flo and training/clean|final/<seq>/*.png"
        )
    passes = PASSES if pass_ == "both" else (pass_,)
    for p in passes:
        if not (base / p).is_dir():
            have = ", ".join(q for q in PASSES if (base / q).is_dir())
            raise InputError(f"{base} has no '{p}' pass (it has: {have}); choose it with --pass")
    entries = []
    for p in passes:
        for seq_dir in sorted(d for d in (base / "flow").iterdir() if d.is_dir()):
            seq = seq_dir.name
            sequence = f"{p}/{seq}" if pass_ == "both" else seq
            frames = base / p / seq
            for flow in sorted(seq_dir.iterdir()):
                match = _FLOW_NAME.match(flow.name)
                if not match:
                    continue
                digits = match.group(1)
                index = int(digits)
                stem1 = f"frame_{index:0{len(digits)}d}"
                stem2 = f"frame_{index + 1:0{len(digits)}d}"
                f1, f2 = find_image(frames, stem1), find_image(frames, stem2)
                if f1 is None or f2 is None:
                    missing = frames / f"{stem1 if f1 is None else stem2}.png"
                    raise InputError(f"Sintel flow {flow} has no frame {missing}; is the '{p}' pass complete?")
                entries.append(PairFiles(stem1, sequence, f1, f2, flow))
    require_pairs(entries, LAYOUT, base, "flow/<seq>/frame_NNNN.flo files")
    return FileDataset(LAYOUT, root, entries, {"pass": pass_})
