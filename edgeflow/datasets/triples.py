"""A flat folder of ``frame1`` / ``frame2`` / ``flow`` triples: the simplest way to bring your own data.

Exact rules:

* A pair named ``NAME`` is the three files ``NAME_frame1.EXT``, ``NAME_frame2.EXT2`` and either
  ``NAME_flow.flo`` (Middlebury ``.flo``; values > 1e9 mark unknown pixels) or ``NAME_flow.png``
  (KITTI 16-bit PNG; blue channel = valid). ``EXT``/``EXT2`` is any of png, jpg, jpeg, bmp, ppm,
  pgm, tif, tiff, webp (any case). Only the folder itself is searched, not sub-folders.
* Pairs are found from the ``*_frame1.*`` files and taken in sorted order of ``NAME``. A
  ``frame1`` without its ``frame2`` or flow file, or with both a ``.flo`` and a ``.png`` flow, is
  an error. Files matching no rule are ignored.
* The sequence of a pair is ``NAME`` with one trailing ``_<digits>`` or ``-<digits>`` removed
  (``alley_0001`` and ``alley_0002`` form sequence ``alley``; ``a_1_2`` is in sequence ``a_1``);
  a name without such a suffix, or whose remainder would be empty or all digits (``0001``,
  ``2011_09``), is its own sequence.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgeflow.datasets.base import FileDataset, PairFiles, find_image, require_pairs
from edgeflow.datasets.images import IMAGE_EXTENSIONS
from edgeflow.errors import InputError

LAYOUT = "triples"
_EXTS = "|".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)
_FRAME1 = re.compile(rf"^(?P<name>.+)_frame1\.(?:{_EXTS})$", re.IGNORECASE)
_SEQUENCE_SUFFIX = re.compile(r"^(?P<seq>.*)[_-]\d+$")


def sequence_of(name: str) -> str:
    """``NAME`` minus one trailing ``_<digits>``/``-<digits>``, unless nothing but digits would remain."""
    match = _SEQUENCE_SUFFIX.match(name)
    if match and match.group("seq") and not match.group("seq").isdigit():
        return match.group("seq")
    return name


def _frame1_files(root: Path) -> list[tuple[str, Path]]:
    found = {}
    for path in root.iterdir():
        match = _FRAME1.match(path.name)
        if match and path.is_file():
            name = match.group("name")
            if name in found:
                raise InputError(f"{root}: pair {name!r} has two frame1 files ({found[name].name}, {path.name})")
            found[name] = path
    return sorted(found.items())


def detect(root: Path) -> bool:
    return any(_FRAME1.match(p.name) for p in root.iterdir())


def open_triples(root) -> FileDataset:
    root = Path(root)
    entries = []
    for name, frame1 in _frame1_files(root):
        frame2 = find_image(root, f"{name}_frame2")
        if frame2 is None:
            raise InputError(f"{frame1} has no {name}_frame2.<ext> beside it")
        flows = [p for p in (root / f"{name}_flow.flo", root / f"{name}_flow.png") if p.is_file()]
        if not flows:
            raise InputError(f"{frame1} has no ground truth {name}_flow.flo or {name}_flow.png beside it")
        if len(flows) > 1:
            raise InputError(f"pair {name!r} in {root} has both {name}_flow.flo and {name}_flow.png; keep one")
        entries.append(PairFiles(name, sequence_of(name), frame1, frame2, flows[0]))
    require_pairs(entries, LAYOUT, root, "NAME_frame1.png / NAME_frame2.png / NAME_flow.flo triples")
    return FileDataset(LAYOUT, root, entries)
