"""Calibration data for INT8: consecutive frame pairs, fed to the graph exactly as the runtime does.

A flow network's activations depend on the *pair*: the cost volume of two consecutive frames of
a real video looks nothing like that of two unrelated images. So calibration always reads
consecutive frames (t, t+1) from one source:

* ``synthetic`` (default, no data needed): :class:`~edgeflow.synthetic.SyntheticFlowGenerator`
  pairs with photometric augmentation, i.e. the training distribution;
* a video file, an image folder / glob, or a camera URI, via :func:`edgeflow.sources.open_source`
  (so anything ``edgeflow run`` can read can calibrate).

Frames are resized to the artifact's resolution, then padded to the network multiple by the same
:func:`~edgeflow.preprocess.plan_geometry` the runtime uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from converters.progress import progress_bar
from edgeflow.errors import EdgeflowError, SourceError
from edgeflow.preprocess import plan_geometry, resize_bilinear

SYNTHETIC = "synthetic"
DEFAULT_PAIRS = 32


@dataclass(frozen=True)
class CalibrationSet:
    """Frame pairs (HxWx3 uint8 RGB, the artifact's resolution) plus where they came from."""

    source: str
    pairs: list[tuple[np.ndarray, np.ndarray]]

    def describe(self) -> dict:
        return {"source": self.source, "pairs": len(self.pairs)}


def _fit(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    if frame.shape[:2] == (height, width):
        return frame
    return np.clip(np.rint(resize_bilinear(frame, height, width)), 0, 255).astype(np.uint8)


def synthetic_pairs(count: int, height: int, width: int, seed: int = 2024):
    from edgeflow.synthetic import SyntheticFlowGenerator

    gen = SyntheticFlowGenerator(height, width, seed=seed, augment=True)
    return [(s.frame1, s.frame2) for s in (gen.sample(i) for i in progress_bar(range(count), count, "calibration pairs"))]


def source_pairs(uri: str, count: int, height: int, width: int):
    """``count`` consecutive pairs (f0, f1), (f1, f2), ... from any frame source."""
    from edgeflow.sources import open_source

    frames = []
    try:
        with open_source(uri) as source:
            bar = progress_bar(range(count + 1), count + 1, "calibration frames")
            for _ in bar:
                frame = source.read(timeout=10.0) if source.is_live else source.read()
                if frame is None:
                    break
                frames.append(_fit(frame.image, height, width))
    except SourceError as err:
        raise EdgeflowError(f"cannot read calibration frames from {uri}: {err}") from None
    if len(frames) < 2:
        raise EdgeflowError(f"calibration source {uri} gave {len(frames)} frame(s); INT8 calibration needs at least 2 consecutive frames")
    return list(zip(frames[:-1], frames[1:]))


def load_calibration(source: str | None, count: int, height: int, width: int) -> CalibrationSet:
    """Pairs for calibration from ``source`` (None / "synthetic" = the built-in generator)."""
    if count < 1:
        raise EdgeflowError(f"--calib-frames must be >= 1, got {count}")
    name = str(source) if source else SYNTHETIC
    if name == SYNTHETIC:
        return CalibrationSet(SYNTHETIC, synthetic_pairs(count, height, width))
    return CalibrationSet(name, source_pairs(name, count, height, width))


class PairFeeds:
    """Turns frame pairs into graph feeds; iterable any number of times (one reader per pass)."""

    def __init__(self, pairs, input_names: list[str], pad_multiple: int):
        self.pairs = pairs
        self.input_names = input_names
        self.pad_multiple = pad_multiple

    def feed(self, pair) -> dict[str, np.ndarray]:
        f1, f2 = pair
        geo = plan_geometry(f1.shape[:2], (1, 3, None, None), self.pad_multiple)
        return {self.input_names[0]: geo.to_network(f1), self.input_names[1]: geo.to_network(f2)}

    def __iter__(self):
        return (self.feed(p) for p in self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def reader(self):
        """An ``onnxruntime.quantization.CalibrationDataReader`` over these feeds."""
        from onnxruntime.quantization import CalibrationDataReader

        feeds = self

        class _Reader(CalibrationDataReader):
            def __init__(self):
                self._it = iter(feeds)

            def get_next(self):
                return next(self._it, None)

            def __len__(self):
                return len(feeds)

        return _Reader()
