"""Optical-flow evaluation data sets (device runtime: numpy only, images via OpenCV or Pillow).

Every reader yields :class:`FlowPair` ``(name, sequence, frame1, frame2, flow, valid)``; pairs are
found up front (cheap) and decoded one at a time while iterating. Layouts: MPI-Sintel, KITTI 2015,
Middlebury, a flat folder of triples, and the built-in set. See ``docs/eval.md``.

    from edgeflow.datasets import open_dataset
    for pair in open_dataset("~/data/MPI-Sintel-complete", sintel_pass="final"):
        ...
"""

from edgeflow.datasets.base import Dataset, FileDataset, FlowPair, MemoryDataset, PairFiles
from edgeflow.datasets.builtin import MOTORCYCLE
from edgeflow.datasets.detect import FORMATS, LAYOUTS, detect_layout, open_dataset
from edgeflow.datasets.images import read_image, write_png

__all__ = [
    "FORMATS",
    "LAYOUTS",
    "MOTORCYCLE",
    "Dataset",
    "FileDataset",
    "FlowPair",
    "MemoryDataset",
    "PairFiles",
    "detect_layout",
    "open_dataset",
    "read_image",
    "write_png",
]
