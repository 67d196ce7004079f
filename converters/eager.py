"""Run a PyTorch flow model eagerly on numpy frames: ``edgeflow eval MODEL`` on the host.

The runtime never imports torch, so scoring a checkpoint or zoo model *before* conversion lives
here, on the toolchain side. Frames go in as ``HxWx3`` uint8 RGB and flow comes out as ``HxWx2``
float32, exactly like :meth:`edgeflow.model.FlowModel.infer`, so the same evaluation loop scores
both and a checkpoint can be compared with its converted artifact pair by pair.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from converters.load import load_model
from edgeflow.errors import InputError
from edgeflow.preprocess import padded_size

DEFAULT_PAD_MULTIPLE = 64


class EagerFlowModel:
    """A loaded model (see :func:`converters.load.load_model`) with ``infer(frame1, frame2)``."""

    def __init__(self, spec, trust_pickle: bool = False, device: str = "cpu"):
        self.loaded = load_model(spec, trust_pickle=trust_pickle)
        self.device = torch.device(device)
        self.module = self.loaded.module.to(self.device)
        self.pad_multiple = self.loaded.pad_multiple or DEFAULT_PAD_MULTIPLE
        source = self.loaded.source_path
        self.name = self.loaded.name or (Path(source).stem if source else "model")
        self.warning = self.loaded.warning

    @property
    def info(self) -> dict:
        return {"source": self.loaded.source_path or self.loaded.name, "load_kind": self.loaded.kind,
                "arch": self.loaded.arch, "sha256": self.loaded.sha256, "device": str(self.device)}

    def _tensor(self, frame: np.ndarray) -> torch.Tensor:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise InputError(f"frames must be HxWx3 uint8 RGB, got shape {frame.shape} dtype {frame.dtype}")
        return torch.from_numpy(np.ascontiguousarray(frame)).to(self.device).permute(2, 0, 1)[None].float()

    def _forward(self, t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
        if hasattr(self.module, "forward_any_size"):
            return self.module.forward_any_size(t1, t2)
        # TorchScript / torch.export modules lose the helper: pad and crop here, the same way.
        height, width = t1.shape[-2:]
        padded_h, padded_w = padded_size(height, width, self.pad_multiple)
        pad = (0, padded_w - width, 0, padded_h - height)
        if any(pad):
            t1, t2 = F.pad(t1, pad, mode="replicate"), F.pad(t2, pad, mode="replicate")
        out = self.module(t1, t2)
        out = out[0] if isinstance(out, (tuple, list)) else out
        return out[:, :, :height, :width]

    def infer(self, frame1: np.ndarray, frame2: np.ndarray) -> np.ndarray:
        if np.shape(frame1) != np.shape(frame2):
            raise InputError(f"frame1 and frame2 differ in size: {np.shape(frame1)} vs {np.shape(frame2)}")
        with torch.inference_mode():
            flow = self._forward(self._tensor(frame1), self._tensor(frame2))
        return np.ascontiguousarray(flow[0].permute(1, 2, 0).float().cpu().numpy(), dtype=np.float32)

    def close(self) -> None:
        pass
