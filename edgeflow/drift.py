"""Input drift: is the camera still seeing what the model was calibrated and validated on?

A model validated on daylight frames says nothing about what it does at night, in fog, through a
dirty lens or after the camera was bumped. So ``edgeflow convert`` stores compact statistics of the
frames it validated on (the manifest's ``input_reference``), and ``edgeflow run`` computes the same
statistics on live frames and scores how far they moved. numpy only: this runs on the device and
in the converter alike, which is what makes the two sides comparable.

Features (per frame, on a copy block-averaged to about :data:`TARGET_WIDTH` pixels wide, so the
numbers do not depend on the camera resolution and cost well under a millisecond):

==================  =========================================================================
``luma_mean``       mean luminance (BT.601 ``0.299 R + 0.587 G + 0.114 B``), 0..255: exposure
``luma_std``        its standard deviation: global spread of brightness
``contrast``        5th-to-95th percentile range of luminance: contrast robust to a few outliers
``sharpness``       variance of the 4-neighbour Laplacian of luminance: focus, blur, fog, a dirty
                    lens lower it; sensor noise raises it
``saturation``      fraction of pixels clipped at either end (a channel >= 250, or luminance <= 5):
                    over/under-exposure
``red_ratio``       mean R / (mean R + G + B): colour balance (1/3 is grey); white balance, sodium
``blue_ratio``      mean B / (mean R + G + B)   lamps, IR-cut filter failure move these
``flow_magnitude``  per-pixel flow magnitude in percent of the frame width (one value per
                    pixel, not per frame): the motion the model reports
==================  =========================================================================

The reference keeps, per feature, 21 quantiles (0, 5, ..., 100 %) of the values seen at convert
time, their count and mean: a few hundred numbers in all.

**Score**: per feature, the Kolmogorov-Smirnov distance between the reference distribution and the
values of the last :data:`DEFAULT_WINDOW` sampled frames (:data:`DEFAULT_RATE` a second), ``D = max |F_ref(x) - F_live(x)|``,
evaluated at the reference's quantile points (where ``F_ref`` is known exactly; ties take the
highest level); no score before :data:`MIN_FRAMES` frames were sampled. ``D`` is 0 when the live values are spread like the reference, 1 when they all lie
outside its range. The combined ``score`` is the mean of the per-feature distances, so one odd
feature moves it by at most 1/8 while a change of lighting that moves several features at once
pushes it up quickly. KS needs no binning choice and is bounded, unlike PSI, which makes one
threshold meaningful across features.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Iterable, Optional

import numpy as np

#: Frames are block-averaged down to about this width before features are taken.
TARGET_WIDTH = 160
#: Quantile levels kept in the reference sketch (percent).
LEVELS = tuple(range(0, 101, 5))
#: Live frames the score compares against the reference.
DEFAULT_WINDOW = 60
#: Frames sampled per second at run time (the window then spans 30 s).
DEFAULT_RATE = 2.0
#: Sampled frames needed before a score is given (a KS distance of three values means nothing).
MIN_FRAMES = 20
#: Combined score above which ``edgeflow run`` warns, by the reference's ``kind`` (docs/watch.md):
#: against a ``recording`` of the deployed camera normal operation scores 0.1-0.4; against the
#: many scenes of a ``validation`` reference a steady single scene already sits near 0.5-0.65.
DEFAULT_THRESHOLDS = {"recording": 0.5, "validation": 0.75}
DEFAULT_THRESHOLD = DEFAULT_THRESHOLDS["recording"]
#: Flow samples kept per frame for ``flow_magnitude`` (a fixed-stride subset of the pixels).
FLOW_SAMPLES = 256

FRAME_FEATURES = ("luma_mean", "luma_std", "contrast", "sharpness", "saturation", "red_ratio", "blue_ratio")
FLOW_FEATURE = "flow_magnitude"
FEATURES = FRAME_FEATURES + (FLOW_FEATURE,)
REFERENCE_VERSION = 1


def downsample(image: np.ndarray, target_width: int = TARGET_WIDTH) -> np.ndarray:
    """Block-average an HxWxC array by an integer factor so it is about ``target_width`` wide
    (float32). Averaging, not striding: striding aliases noise and texture into the sharpness."""
    h, w = image.shape[:2]
    f = max(1, int(round(w / float(target_width))))
    if f == 1:
        return image.astype(np.float32, copy=False)
    hh, ww = (h // f) * f, (w // f) * f
    x = image[:hh, :ww].astype(np.float32)
    return x.reshape(hh // f, f, ww // f, f, *image.shape[2:]).mean(axis=(1, 3))


def frame_features(image: np.ndarray, target_width: int = TARGET_WIDTH) -> dict:
    """The per-frame features of an HxWx3 uint8 RGB frame (see the module docstring)."""
    small = downsample(image, target_width)
    r, g, b = small[..., 0], small[..., 1], small[..., 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    p5, p95 = np.percentile(luma, (5, 95))
    lap = (luma[1:-1, :-2] + luma[1:-1, 2:] + luma[:-2, 1:-1] + luma[2:, 1:-1] - 4.0 * luma[1:-1, 1:-1])
    clipped = (small.max(axis=-1) >= 250.0) | (luma <= 5.0)
    total = float(r.mean() + g.mean() + b.mean()) or 1e-6
    return {
        "luma_mean": float(luma.mean()),
        "luma_std": float(luma.std()),
        "contrast": float(p95 - p5),
        "sharpness": float(lap.var()) if lap.size else 0.0,
        "saturation": float(clipped.mean()),
        "red_ratio": float(r.mean()) / total,
        "blue_ratio": float(b.mean()) / total,
    }


def flow_magnitudes(flow: np.ndarray, samples: int = FLOW_SAMPLES) -> np.ndarray:
    """Per-pixel flow magnitude in percent of the frame width, at ``samples`` evenly spaced pixels
    (HxWx2 flow in pixels). Percent of the width so a 640-wide camera and a 320-wide reference agree."""
    h, w = flow.shape[:2]
    step = max(1, int(math.sqrt(h * w / float(samples))))
    sub = flow[step // 2::step, step // 2::step].reshape(-1, 2).astype(np.float32)
    return np.hypot(sub[:, 0], sub[:, 1]) * (100.0 / w)


# -- the reference (convert time) -----------------------------------------------------------------
def sketch(values: Iterable[float]) -> dict:
    """Quantile sketch of a sample: ``{"n", "mean", "q": [21 quantiles at LEVELS]}``."""
    x = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"n": 0, "mean": None, "q": []}
    q = np.percentile(x, LEVELS)
    return {"n": int(x.size), "mean": _round(float(x.mean())), "q": [_round(float(v)) for v in q]}


def _round(v: float) -> float:
    return float(f"{v:.6g}")


def build_reference(frames: Iterable[np.ndarray], flows: Iterable[np.ndarray] = (), source: str = "",
                    kind: str = "validation") -> dict:
    """The manifest's ``input_reference`` from RGB uint8 frames and the flows the model produced
    on them. ``source`` says which frames (kept for the reader); ``kind``: ``validation`` (the
    convert-time frames: many scenes) or ``recording`` (a recording of the deployed camera), which
    picks the default threshold (:func:`default_threshold`)."""
    per = {k: [] for k in FRAME_FEATURES}
    n_frames = 0
    for image in frames:
        for k, v in frame_features(image).items():
            per[k].append(v)
        n_frames += 1
    mags = [flow_magnitudes(f) for f in flows]
    features = {k: sketch(v) for k, v in per.items()}
    if mags:
        features[FLOW_FEATURE] = sketch(np.concatenate(mags))
    return {
        "version": REFERENCE_VERSION,
        "source": source,
        "kind": kind,
        "frames": n_frames,
        "flows": len(mags),
        "target_width": TARGET_WIDTH,
        "levels": list(LEVELS),
        "statistic": "Kolmogorov-Smirnov distance per feature at the reference quantiles; score = mean over features",
        "features": features,
    }


def default_threshold(reference: Optional[dict]) -> float:
    """The warning threshold for a reference: see :data:`DEFAULT_THRESHOLDS`."""
    kind = (reference or {}).get("kind", "validation")
    return DEFAULT_THRESHOLDS.get(kind, DEFAULT_THRESHOLDS["validation"])


def valid_reference(ref) -> bool:
    return (isinstance(ref, dict) and ref.get("version") == REFERENCE_VERSION and isinstance(ref.get("features"), dict)
            and any(isinstance(s, dict) and len(s.get("q") or ()) == len(LEVELS) for s in ref["features"].values()))


# -- the score (run time) -------------------------------------------------------------------------
def ks_to_sketch(values: np.ndarray, quantiles) -> float:
    """KS distance between a sample and a reference given by its quantiles at :data:`LEVELS`.

    At each distinct reference quantile ``x`` the reference CDF is the highest level with that
    quantile (ties: a feature that is often exactly 0), the live CDF the fraction of values ``<= x``.
    The live values below the reference minimum (or above its maximum) count fully, so a sample
    entirely outside the reference range scores 1."""
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan")
    q = np.asarray(quantiles, dtype=np.float64)
    levels = np.asarray(LEVELS, dtype=np.float64) / 100.0
    uniq, last = np.unique(q[::-1], return_index=True)  # highest level for each distinct value
    ref_cdf = levels[::-1][last]
    live_cdf = np.searchsorted(x, uniq, side="right") / x.size
    d = float(np.max(np.abs(live_cdf - ref_cdf)))
    below = float(np.searchsorted(x, q[0], side="left")) / x.size  # live mass under the reference minimum
    return max(d, below)


class DriftMonitor:
    """Rolling drift score of live frames against a reference.

    :meth:`add` is cheap enough to call from a worker thread per sampled frame; :meth:`state`
    (any thread) returns the latest score. ``threshold``: the combined score above which
    :attr:`first_above` records the frame index (once) and ``on_cross`` is called."""

    def __init__(self, reference: dict, window: int = DEFAULT_WINDOW, threshold: Optional[float] = DEFAULT_THRESHOLD,
                 on_cross=None):
        self.reference = reference
        self.features = [k for k in FEATURES if len((reference.get("features", {}).get(k) or {}).get("q") or ()) == len(LEVELS)]
        self.window = max(2, int(window))
        self.threshold = threshold
        self.on_cross = on_cross
        self._values = {k: deque(maxlen=self.window) for k in self.features}
        self._lock = threading.Lock()
        self.frames = 0
        self.score: Optional[float] = None
        self.per_feature: dict = {}
        self.max_score: Optional[float] = None
        self.first_above: Optional[int] = None
        self.last_index: Optional[int] = None

    def add(self, index: int, image: np.ndarray, flow: Optional[np.ndarray] = None) -> Optional[float]:
        feats = frame_features(image)
        mags = flow_magnitudes(flow) if flow is not None else None
        return self.add_features(index, feats, mags)

    def add_features(self, index: int, feats: dict, mags: Optional[np.ndarray] = None) -> Optional[float]:
        for k in self.features:
            if k == FLOW_FEATURE:
                if mags is not None:
                    self._values[k].append(np.asarray(mags, dtype=np.float64))
            elif k in feats:
                self._values[k].append(feats[k])
        per = {}
        for k in self.features:
            vals = self._values[k]
            if not vals:
                continue
            sample = np.concatenate(list(vals)) if k == FLOW_FEATURE else np.fromiter(vals, dtype=np.float64)
            per[k] = ks_to_sketch(sample, self.reference["features"][k]["q"])
        finite = [v for v in per.values() if math.isfinite(v)]
        score = float(np.mean(finite)) if finite else None
        crossed = False
        with self._lock:
            self.frames += 1
            if self.frames < min(MIN_FRAMES, self.window):
                per, score = {}, None
            self.last_index = index
            self.per_feature = per
            self.score = score
            if score is not None:
                self.max_score = score if self.max_score is None else max(self.max_score, score)
                if self.threshold is not None and score > self.threshold and self.first_above is None:
                    self.first_above = index
                    crossed = True
        if crossed and self.on_cross is not None:
            self.on_cross(index, score, per)
        return score

    def state(self) -> dict:
        """JSON-friendly summary: what ``report["input_drift"]`` and the live page show."""
        with self._lock:
            return {
                "score": _r4(self.score),
                "max_score": _r4(self.max_score),
                "features": {k: _r4(v) for k, v in self.per_feature.items()},
                "threshold": self.threshold,
                "above_threshold": bool(self.threshold is not None and self.score is not None and self.score > self.threshold),
                "first_frame_above": self.first_above,
                "frames_scored": self.frames,
                "window": self.window,
                "statistic": "ks",
            }


def _r4(v):
    if v is None or not math.isfinite(v):
        return None
    return round(float(v), 4)
