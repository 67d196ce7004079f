"""The manifest's ``input_reference``: statistics of the frames a model was validated on.

``edgeflow convert`` calls :func:`reference_stage` after parity: the frames are the built-in
evaluation set (the same pairs the accuracy numbers in the manifest come from) plus pairs of the
synthetic generator (real photos, no augmentation) at the artifact's resolution, and the flows
are the converted model's own on them. :mod:`edgeflow.drift` defines the statistics; the runtime
scores live frames against them (``edgeflow run``, ``report["input_drift"]``).

For an artifact converted before references existed, add one without re-converting (the
manifest's file hashes are untouched; the manifest itself is rewritten atomically)::

    python -m converters.reference ARTIFACT            # same frames as convert, flows from the artifact
    python -m converters.reference ARTIFACT --clip edgeflow/data/sample.mp4   # or: frames of a clip
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import numpy as np

from edgeflow import drift

log = logging.getLogger("edgeflow.converters.reference")

#: Synthetic generator pairs added to the evaluation set (more frames: steadier quantiles).
GENERATOR_PAIRS = 16
GENERATOR_SEED = 4242


def reference_pairs(height: int, width: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Frame pairs the reference describes: the built-in evaluation set and generator pairs."""
    from converters.quantize.accuracy import validation_pairs
    from converters.validate import real_frame_pairs

    pairs = [(p.frame1, p.frame2) for p in validation_pairs(height, width)]
    pairs += real_frame_pairs(height, width, GENERATOR_PAIRS, seed=GENERATOR_SEED)
    return pairs


def reference_from_pairs(pairs, flow_fn, source: str, kind: str = "validation") -> dict:
    """Features of every distinct frame of ``pairs`` (consecutive pairs of a clip share frames) and
    the flow ``flow_fn(f1, f2)`` of every pair."""
    frames, flows, seen = [], [], set()
    for f1, f2 in pairs:
        for f in (f1, f2):
            if id(f) not in seen:
                seen.add(id(f))
                frames.append(f)
        flows.append(flow_fn(f1, f2))
    return drift.build_reference(frames, flows, source=source, kind=kind)


def reference_stage(module, pad_multiple: int, height: int, width: int) -> dict:
    """Convert-time reference: the PyTorch model's flows on :func:`reference_pairs`."""
    from converters.validate import torch_flow

    return reference_from_pairs(reference_pairs(height, width), lambda a, b: torch_flow(module, a, b, pad_multiple),
                                f"builtin eval set + {GENERATOR_PAIRS} synthetic pairs at {width}x{height}")


def clip_pairs(uri: str, limit: int = 120) -> list:
    from edgeflow.sources import open_source

    frames = []
    with open_source(uri) as src:
        while len(frames) < limit:
            frame = src.read(timeout=5)
            if frame is None:
                break
            frames.append(frame.image)
    return list(zip(frames[:-1], frames[1:]))


def add_reference(artifact: Path, clip: str | None = None) -> dict:
    """Compute a reference with the artifact's own graphs and store it in its manifest."""
    from edgeflow.model import FlowModel

    artifact = Path(artifact)
    model = FlowModel.load(artifact)
    try:
        if clip:
            pairs = clip_pairs(clip)
            source = f"clip {Path(clip).name} ({len(pairs) + 1} frames; python -m converters.reference --clip)"
        else:
            width, height = (model.artifact.manifest.get("resolution") or [320, 240])[:2]
            pairs = reference_pairs(int(height), int(width))
            source = f"builtin eval set + {GENERATOR_PAIRS} synthetic pairs at {width}x{height}"
        ref = reference_from_pairs(pairs, model.infer, source, kind="recording" if clip else "validation")
    finally:
        model.close()
    path = artifact / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["input_reference"] = ref
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, path)
    return ref


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m converters.reference", description=__doc__.split("\n\n")[0])
    ap.add_argument("artifact", type=Path)
    ap.add_argument("--clip", help="take the frames from this video instead of the convert-time frames")
    args = ap.parse_args(argv)
    ref = add_reference(args.artifact, args.clip)
    log.info("input_reference: %s frames, %s flows (%s) -> %s", ref["frames"], ref["flows"], ref["source"], args.artifact / "manifest.json")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # a script: its messages on stderr
    raise SystemExit(main())
