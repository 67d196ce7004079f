"""Flows of consecutive frames through an artifact, with the device runtime only.

usage: python pairs.py ARTIFACT FRAMES.npy OUT.npz [N]     (N: use the first N frames only)

Runs wherever the runtime is installed (x86 .venv, the arm64 root's venv, a NumPy-1 venv), so the
same frames give flows that can be compared across machines and NumPy versions. Frames are
decoded once on the host and passed as raw uint8 arrays, so only the model and onnxruntime differ.
"""

import sys

import numpy as np

import edgeflow


def main(artifact: str, frames_path: str, out: str, count: str = "0") -> None:
    frames = np.load(frames_path)
    if int(count) > 1:
        frames = frames[: int(count)]
    with edgeflow.load(artifact) as model:
        flows = np.stack([model.infer(frames[i], frames[i + 1]) for i in range(len(frames) - 1)])
    np.savez(out, flows=flows, numpy=np.__version__)
    print(f"pairs: {artifact}: {len(flows)} flows {flows.shape[1:]} (NumPy {np.__version__})")


if __name__ == "__main__":
    main(*sys.argv[1:5])
