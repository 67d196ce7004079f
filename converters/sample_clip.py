"""Make the bundled sample clip ``edgeflow/data/sample.mp4`` and ``sample.json`` describing it.

The clip is a synthetic sequence of real photos (scikit-image's) moving with exact, known motion,
encoded with H.264, so ``make demo`` streams a real encoded video and can also report accuracy: ``sample.json``
records the generator settings from which the demo re-creates the exact ground-truth flow.
Reproduce with ``python -m converters.sample_clip``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from edgeflow.synthetic import SyntheticSequence

log = logging.getLogger("edgeflow.converters.sample_clip")

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "edgeflow" / "data" / "sample.mp4"


def write_clip(path: Path, frames: int = 120, width: int = 320, height: int = 240, fps: int = 30, seed: int = 7, crf: int = 20) -> Path:
    import av

    seq = SyntheticSequence(height, width, seed=seed, length=frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "slow", "tune": "film"}
        for t in range(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(seq.frame(t)), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    meta = {"generator": "edgeflow.synthetic.SyntheticSequence", "height": height, "width": width, "seed": seed,
            "length": frames, "fps": fps, "codec": "h264", "crf": crf}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--frames", type=int, default=120)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    path = write_clip(args.out, frames=args.frames, seed=args.seed)
    log.info("wrote %s (%.0f kB)", path, path.stat().st_size / 1e3)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # a script: its messages on stderr
    raise SystemExit(main())
