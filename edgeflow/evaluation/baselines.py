"""Classical optical-flow baselines from OpenCV, to put a learned model's numbers in context.

* ``dis-ultrafast`` / ``dis-fast`` / ``dis-medium``: Dense Inverse Search (Kroeger et al., ECCV
  2016), ``cv2.DISOpticalFlow_create(PRESET_...)`` with OpenCV's preset parameters, on grayscale.
  ULTRAFAST is what you would run on a Pi if you had no network; MEDIUM is the accurate end.
* ``farneback``: polynomial-expansion flow (Farneback, SCIA 2003), ``cv2.calcOpticalFlowFarneback``
  on grayscale with pyr_scale 0.5, levels 5, winsize 15, iterations 3, poly_n 5, poly_sigma 1.2
  (OpenCV's tutorial settings, with 5 pyramid levels instead of 3 for larger motions).

Each baseline is a callable ``(frame1, frame2) -> HxWx2 float32 flow`` with the SDK's convention
(RGB uint8 in; frame-1 pixel (x, y) moves to (x + u, y + v)), which is also OpenCV's.
"""

from __future__ import annotations

import numpy as np

from edgeflow.errors import EdgeflowError, InputError

#: name -> one-line description.
BASELINES = {
    "dis-ultrafast": "OpenCV DIS, PRESET_ULTRAFAST (grayscale)",
    "dis-fast": "OpenCV DIS, PRESET_FAST (grayscale)",
    "dis-medium": "OpenCV DIS, PRESET_MEDIUM (grayscale)",
    "farneback": "OpenCV Farneback (pyr 0.5, 5 levels, win 15, 3 iters, poly 5/1.2)",
}
FARNEBACK_PARAMS = dict(pyr_scale=0.5, levels=5, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def _cv2():
    try:
        import cv2
    except Exception:
        raise EdgeflowError(
            "the OpenCV baselines need OpenCV: pip install opencv-python-headless (or the system build)"
        ) from None
    return cv2


class Baseline:
    """A named classical method; ``baseline(frame1, frame2)`` returns the flow."""

    def __init__(self, name: str):
        if name not in BASELINES:
            raise InputError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
        self.name = name
        self.description = BASELINES[name]
        self._cv2 = _cv2()
        self._dis = None
        if name.startswith("dis-"):
            preset = getattr(self._cv2, f"DISOPTICAL_FLOW_PRESET_{name[4:].upper()}")
            self._dis = self._cv2.DISOpticalFlow_create(preset)  # reused: it keeps its buffers

    def _gray(self, frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise InputError(f"{self.name}: frames must be HxWx3 uint8 RGB, got {frame.shape} {frame.dtype}")
        return self._cv2.cvtColor(np.ascontiguousarray(frame), self._cv2.COLOR_RGB2GRAY)

    def __call__(self, frame1: np.ndarray, frame2: np.ndarray) -> np.ndarray:
        g1, g2 = self._gray(frame1), self._gray(frame2)
        if g1.shape != g2.shape:
            raise InputError(f"{self.name}: frames differ in size: {frame1.shape} vs {frame2.shape}")
        if self._dis is not None:
            flow = self._dis.calc(g1, g2, None)
        else:
            p = FARNEBACK_PARAMS
            flow = self._cv2.calcOpticalFlowFarneback(
                g1, g2, None, p["pyr_scale"], p["levels"], p["winsize"], p["iterations"],
                p["poly_n"], p["poly_sigma"], p["flags"],
            )
        return np.asarray(flow, dtype=np.float32)

    def __repr__(self) -> str:
        return f"Baseline({self.name!r})"


def parse_baselines(spec: str | None) -> list[str]:
    """``"dis-medium,farneback"`` (or ``"all"``) -> validated names, in order, without repeats."""
    if not spec:
        return []
    names = [s.strip().lower() for s in spec.split(",") if s.strip()]
    if names == ["all"]:
        return list(BASELINES)
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise InputError(f"unknown baseline {unknown[0]!r}; choose from {', '.join(BASELINES)} (comma-separated) or all")
    return list(dict.fromkeys(names))
