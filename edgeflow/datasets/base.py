"""What every data-set reader yields, and the lazily loading data set built from file paths.

Readers only *find* pairs (a cheap directory walk that returns paths); frames and ground truth
are decoded one pair at a time while iterating, so evaluating Sintel's 1041 pairs never holds
more than one pair in memory and ``--max-pairs 5`` reads five pairs, not the whole set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from edgeflow.datasets.images import read_image
from edgeflow.errors import InputError
from edgeflow.flow.io import read_flow


@dataclass
class FlowPair:
    """One evaluation sample.

    ``frame1``/``frame2``: ``HxWx3`` uint8 RGB. ``flow``: ``HxWx2`` float32 ``(u, v)`` pixels,
    frame-1 pixel ``(x, y)`` moves to ``(x + u, y + v)``. ``valid``: ``HxW`` bool, where the ground
    truth is known (KITTI is sparse; Middlebury marks unknown pixels). ``sequence`` groups pairs
    for per-sequence results; ``(sequence, name)`` is unique within a data set.
    """

    name: str
    sequence: str
    frame1: np.ndarray
    frame2: np.ndarray
    flow: np.ndarray
    valid: np.ndarray

    @property
    def key(self) -> str:
        return f"{self.sequence}/{self.name}"


@dataclass(frozen=True)
class PairFiles:
    """Where one pair lives on disk; ``load()`` reads and cross-checks the three files."""

    name: str
    sequence: str
    frame1: Path
    frame2: Path
    flow: Path

    def load(self) -> FlowPair:
        frame1, frame2 = read_image(self.frame1), read_image(self.frame2)
        flow, valid = read_flow(self.flow)
        if frame1.shape != frame2.shape:
            raise InputError(
                f"{self.sequence}/{self.name}: frames differ in size ({_size(frame1)} vs {_size(frame2)}): "
                f"{self.frame1}, {self.frame2}"
            )
        if flow.shape[:2] != frame1.shape[:2]:
            raise InputError(
                f"{self.sequence}/{self.name}: flow {self.flow} is {_size(flow)} but the frames are {_size(frame1)}"
            )
        return FlowPair(self.name, self.sequence, frame1, frame2, flow, valid)


def _size(array: np.ndarray) -> str:
    return f"{array.shape[1]}x{array.shape[0]}"


class Dataset:
    """An ordered, sized collection of :class:`FlowPair`, loaded on iteration.

    ``layout`` is the reader that made it ("sintel", "kitti", ...), ``root`` the folder (or
    "builtin"), ``options`` the reader options that shaped it (pass, ground-truth kind), and
    ``highlights`` names sequences that deserve their own line in reports (e.g. the real
    motorcycle stereo pair of the built-in set).
    """

    highlights: tuple[str, ...] = ()

    def __init__(self, layout: str, root: str, options: dict | None = None):
        self.layout = layout
        self.root = root
        self.options = dict(options or {})

    def __len__(self) -> int:
        raise NotImplementedError

    def __iter__(self) -> Iterator[FlowPair]:
        raise NotImplementedError

    def keys(self) -> list[tuple[str, str]]:
        """``(sequence, name)`` of every pair, in iteration order, without loading anything."""
        raise NotImplementedError

    def sequences(self) -> list[str]:
        """Sequence names in first-seen order."""
        return list(dict.fromkeys(seq for seq, _ in self.keys()))

    def head(self, n: int | None) -> "Dataset":
        """The first ``n`` pairs (all when ``n`` is None)."""
        raise NotImplementedError

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        where = self.layout if self.root == self.layout else f"{self.layout} at {self.root}"
        return where + (f" ({opts})" if opts else "")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}: {len(self)} pairs>"


class FileDataset(Dataset):
    """A data set of :class:`PairFiles` found on disk by one of the layout readers."""

    def __init__(self, layout: str, root, entries: Sequence[PairFiles], options: dict | None = None):
        super().__init__(layout, str(root), options)
        self.entries = list(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[FlowPair]:
        for entry in self.entries:
            yield entry.load()

    def keys(self) -> list[tuple[str, str]]:
        return [(e.sequence, e.name) for e in self.entries]

    def head(self, n: int | None) -> "FileDataset":
        if n is None:
            return self
        subset = FileDataset(self.layout, self.root, self.entries[: max(0, int(n))], self.options)
        subset.highlights = self.highlights
        return subset


class MemoryDataset(Dataset):
    """A data set whose pairs are already in memory (the built-in set, tests)."""

    def __init__(self, layout: str, root: str, pairs: Sequence[FlowPair], options: dict | None = None,
                 highlights: Sequence[str] = ()):
        super().__init__(layout, root, options)
        self.pairs = list(pairs)
        self.highlights = tuple(highlights)

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[FlowPair]:
        return iter(self.pairs)

    def keys(self) -> list[tuple[str, str]]:
        return [(p.sequence, p.name) for p in self.pairs]

    def head(self, n: int | None) -> "MemoryDataset":
        if n is None:
            return self
        return MemoryDataset(self.layout, self.root, self.pairs[: max(0, int(n))], self.options, self.highlights)


def find_image(folder: Path, stem: str) -> Path | None:
    """``folder/stem.<image ext>`` for the first image extension that exists (png first)."""
    from edgeflow.datasets.images import IMAGE_EXTENSIONS

    for ext in IMAGE_EXTENSIONS:
        for candidate in (folder / f"{stem}{ext}", folder / f"{stem}{ext.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def require_pairs(entries: list, layout: str, root, what: str) -> list:
    if not entries:
        raise InputError(f"{root}: looks like {layout} but holds no {what}")
    return entries
