"""What feature caching will buy for this artifact, measured when it is converted.

Why: an artifact split into ``encoder.onnx`` and ``decoder.onnx`` lets a stream encode every frame
once and reuse its features for the next pair. That saves exactly one encoder run per pair, so
the gain is a property of the model, not of the runtime: with encoder time ``e`` and decoder time
``d`` it is at most ``(2e + d) / (e + d)``. PWC-style networks spend most of their time after the
feature pyramid (correlation and flow estimators), so their gain is small (about 1.1x for
pwc-lite); encoder-heavy models gain up to 2x. Users deciding between models, or wondering why
``--no-cache`` barely changes their loop, get the number for their model on their host in
``report.json`` instead of having to guess.

The three graphs are timed round-robin on the same frames (see :mod:`converters.variants` for
why interleaving), with the split driven exactly as the runtime drives it
(:func:`edgeflow.model.decoder_plan`).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np


def _median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1e3


def caching_estimate(model_path: Path, encoder_path: Path, decoder_path: Path, frame1: np.ndarray, frame2: np.ndarray,
                     iterations: int = 10, threads: int | None = None, warmup: int = 2) -> dict:
    """Time whole-pair inference against encoder + decoder on two network-ready frames (1, 3, H, W).

    Returns medians in ms (``whole_pair_ms``, ``encoder_ms``, ``decoder_ms``), what one new frame
    costs with caching (``cached_ms`` = e + d) and when recomputing both frames' features
    (``recompute_ms`` = 2e + d), the expected gain over the whole-pair graph
    (``gain_vs_whole_pair``), the gain over recomputing (``gain_bound``) and the encoder's share.
    """
    from edgeflow.backends.onnxruntime import OnnxRuntimeRunner, SessionLoader
    from edgeflow.model import decoder_plan

    whole = OnnxRuntimeRunner(SessionLoader(model_path, threads=threads))
    encoder = OnnxRuntimeRunner(SessionLoader(encoder_path, threads=threads))
    decoder = OnnxRuntimeRunner(SessionLoader(decoder_path, threads=threads))
    whole_feed = dict(zip(whole.input_names, (frame1, frame2)))
    enc_in = encoder.input_names[0]
    plan = decoder_plan(decoder.input_names, encoder.output_names, decoder_path.parent)
    feats = (encoder.infer({enc_in: frame1}), encoder.infer({enc_in: frame2}))
    dec_feed = {name: feats[side][key] for name, side, key in plan}

    calls = {
        "whole_pair": lambda: whole.infer(whole_feed),
        "encoder": lambda: encoder.infer({enc_in: frame2}),
        "decoder": lambda: decoder.infer(dec_feed),
    }
    for call in calls.values():
        for _ in range(warmup):
            call()
    times = {name: [] for name in calls}
    for _ in range(max(iterations, 1)):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    e, d, w = (_median_ms(times[k]) for k in ("encoder", "decoder", "whole_pair"))
    return {
        "backend": "onnxruntime-cpu",
        "threads": threads,
        "iterations": max(iterations, 1),
        "whole_pair_ms": w,
        "encoder_ms": e,
        "decoder_ms": d,
        "cached_ms": e + d,
        "recompute_ms": 2 * e + d,
        "encoder_share": e / (e + d),
        "gain_vs_whole_pair": w / (e + d),
        "gain_bound": (2 * e + d) / (e + d),
    }


def caching_summary(estimate: dict) -> str:
    """One line for the console, e.g. ``feature caching: encoder 6.7 ms + decoder 65.8 ms ...``."""
    return (f"feature caching: encoder {estimate['encoder_ms']:.1f} ms + decoder {estimate['decoder_ms']:.1f} ms per new frame "
            f"vs {estimate['whole_pair_ms']:.1f} ms for the whole pair -> {estimate['gain_vs_whole_pair']:.2f}x "
            f"(at most (2e + d) / (e + d) = {estimate['gain_bound']:.2f}x: the encoder is {estimate['encoder_share']:.0%} "
            f"of a cached frame)")


__all__ = ["caching_estimate", "caching_summary"]
