"""KITTI 2015 scene flow (Menze & Geiger, CVPR 2015): real driving scenes, sparse LiDAR-based flow.

Layout (``data_scene_flow.zip``)::

    <root>/training/image_2/000000_10.png, 000000_11.png   (left camera, frames t and t+1)
    <root>/training/flow_occ/000000_10.png                 (flow of all pixels with ground truth)
    <root>/training/flow_noc/000000_10.png                 (non-occluded pixels only)

``root`` may also be the ``training`` folder. Flow files are 16-bit PNGs (``u = (R - 2^15)/64``,
``v = (G - 2^15)/64``, valid where ``B > 0``; see ``docs/flow.md``). Each scene is one pair and its
own sequence (named by its 6-digit id). ``gt="occ"`` (default, the benchmark's "all" numbers) or
``gt="noc"`` picks the ground-truth folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgeflow.datasets.base import FileDataset, PairFiles, require_pairs
from edgeflow.errors import InputError

LAYOUT = "kitti"
GT_CHOICES = ("occ", "noc")
_FLOW_NAME = re.compile(r"^(.+)_10\.png$", re.IGNORECASE)


def training_dir(root: Path) -> Path | None:
    for base in (root / "training", root):
        if (base / "image_2").is_dir() and any((base / f"flow_{g}").is_dir() for g in GT_CHOICES):
            return base
    return None


def detect(root: Path) -> bool:
    return training_dir(root) is not None


def open_kitti(root, gt: str = "occ") -> FileDataset:
    root = Path(root)
    if gt not in GT_CHOICES:
        raise InputError(f"unknown KITTI ground truth {gt!r}; choose occ (all pixels) or noc (non-occluded)")
    base = training_dir(root)
    if base is None:
        raise InputError(f"{root}: not KITTI 2015: expected training/image_2/*_10.png and training/flow_occ/*_10.png")
    flow_dir = base / f"flow_{gt}"
    if not flow_dir.is_dir():
        raise InputError(f"{base} has no flow_{gt} folder; choose the other one with --kitti-gt")
    images = base / "image_2"
    entries = []
    for flow in sorted(flow_dir.iterdir()):
        match = _FLOW_NAME.match(flow.name)
        if not match:
            continue
        scene = match.group(1)
        f1, f2 = images / f"{scene}_10.png", images / f"{scene}_11.png"
        for frame in (f1, f2):
            if not frame.is_file():
                raise InputError(f"KITTI flow {flow} has no frame {frame}")
        entries.append(PairFiles(scene, scene, f1, f2, flow))
    require_pairs(entries, LAYOUT, flow_dir, "*_10.png flow files")
    return FileDataset(LAYOUT, root, entries, {"gt": f"flow_{gt}"})
