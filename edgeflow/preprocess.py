"""Frames in, tensors out, and back: the only place frame geometry is decided.

The artifact's manifest says how the network wants its input: RGB, NCHW float32 in 0..255, spatial
size a multiple of ``pad_multiple``. Dynamic-shape graphs get frames padded (edge replicate) to
that multiple and the flow cropped back; static-shape graphs (TensorRT engines are usually built
for one size) get frames resized and the flow resized and rescaled to the frame's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeflow.errors import InputError


#: The smallest frame side the runtime takes (the networks' coarsest level needs a few pixels).
MIN_FRAME_SIDE = 8


def frame_problem(frame, name: str = "frame", min_side: int = MIN_FRAME_SIDE) -> str | None:
    """What is wrong with ``frame`` as the runtime's frame (HxWx3 uint8 RGB, sides >= ``min_side``),
    in one line, or ``None``: the one frame rule. ``check_frame`` raises it for a caller's frame,
    the stream's capture thread drops such a frame (``invalid_frame``), and a source refuses a
    decoded image with it."""
    if not isinstance(frame, np.ndarray):
        return f"{name} must be a numpy array (HxWx3 uint8 RGB), got {type(frame).__name__}"
    if frame.ndim != 3 or frame.shape[2] != 3:
        return f"{name} must be HxWx3 RGB, got shape {frame.shape}"
    if frame.dtype != np.uint8:
        return f"{name} must be uint8 (0..255), got dtype {frame.dtype}; convert with frame.astype(np.uint8)"
    if frame.shape[0] < min_side or frame.shape[1] < min_side:
        return f"{name} is too small ({frame.shape[1]}x{frame.shape[0]}); need at least {min_side}x{min_side} pixels"
    return None


def check_frame(frame, name: str = "frame") -> np.ndarray:
    """``frame`` if it is a runtime frame, else one :class:`InputError` line saying what to change."""
    problem = frame_problem(frame, name)
    if problem is not None:
        raise InputError(problem)
    return frame


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Half-pixel-centre bilinear resize of an HxWxC array (as OpenCV INTER_LINEAR), numpy only."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    ys = np.clip((np.arange(height) + 0.5) * (h / height) - 0.5, 0, h - 1)
    xs = np.clip((np.arange(width) + 0.5) * (w / width) - 0.5, 0, w - 1)
    y0 = np.floor(ys).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    wy = (ys - y0)[:, None, None]
    wx = (xs - x0)[None, :, None]
    img = image.astype(np.float32)
    top = img[y0][:, x0] * (1 - wx) + img[y0][:, x1] * wx
    bottom = img[y1][:, x0] * (1 - wx) + img[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


@dataclass(frozen=True)
class Conventions:
    """What values the model expects, recorded by ``edgeflow convert`` in ``manifest.preprocessing``:
    ``color_order`` RGB/BGR, ``input_range`` [0, 255] or [0, 1], optional per-channel ``mean`` and
    ``std`` (in that range, in the model's colour order). Frames are RGB uint8; this maps them
    exactly as the converter validated the graph with (``converters.validate`` uses this code).
    """

    color_order: str = "RGB"
    input_range: tuple = (0.0, 255.0)
    mean: tuple | None = None
    std: tuple | None = None

    @classmethod
    def from_preprocessing(cls, pre: dict | None) -> "Conventions":
        pre = pre or {}
        low, high = (float(v) for v in pre.get("input_range", (0, 255)))
        mean, std = pre.get("mean"), pre.get("std")
        order = str(pre.get("color_order", "RGB")).upper()
        if order not in ("RGB", "BGR"):
            raise InputError(f"unsupported colour order {order!r} in the artifact's preprocessing (RGB or BGR)")
        return cls(order, (low, high), tuple(float(v) for v in mean) if mean else None,
                   tuple(float(v) for v in std) if std else None)

    @property
    def identity(self) -> bool:
        return self.color_order == "RGB" and tuple(self.input_range) == (0.0, 255.0) and not self.mean and not self.std

    def apply(self, x: np.ndarray) -> np.ndarray:
        """1x3xHxW float32 RGB 0..255 -> what the model expects, in place."""
        if self.identity:
            return x
        if self.color_order == "BGR":
            x[0] = x[0, ::-1].copy()
        low, high = self.input_range
        x *= np.float32((high - low) / 255.0)
        if low:
            x += np.float32(low)
        if self.mean:
            x -= np.asarray(self.mean, np.float32).reshape(1, 3, 1, 1)
        if self.std:
            x /= np.asarray(self.std, np.float32).reshape(1, 3, 1, 1)
        return x


@dataclass(frozen=True)
class Geometry:
    """How one frame size maps onto the network input and back."""

    frame_hw: tuple[int, int]
    net_hw: tuple[int, int]
    mode: str  # "pad" or "resize"
    conventions: Conventions | None = None  # value range / colour order / mean-std the model expects

    def to_network(self, frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """HxWx3 uint8 -> 1x3xH'xW' float32 (0..255).

        ``out``: a 1x3xH'xW' float32 buffer to write into (the stream reuses buffers from frame
        to frame); padding is written in place, edge-replicated like ``np.pad(mode="edge")``.
        """
        h, w = self.frame_hw
        nh, nw = self.net_hw
        if out is None:
            out = np.empty((1, 3, nh, nw), np.float32)
        elif out.shape != (1, 3, nh, nw) or out.dtype != np.float32:
            raise InputError(f"output buffer must be 1x3x{nh}x{nw} float32, got {out.shape} {out.dtype}")
        dst = out[0]
        if self.mode == "pad":
            dst[:, :h, :w] = frame.transpose(2, 0, 1)  # the uint8 -> float32 cast happens in the copy
            if nh > h:
                dst[:, h:, :w] = dst[:, h - 1:h, :w]
            if nw > w:
                dst[:, :, w:] = dst[:, :, w - 1:w]
        else:
            dst[...] = resize_bilinear(frame, nh, nw).transpose(2, 0, 1)
        if self.conventions is not None:
            self.conventions.apply(out)
        return out

    def to_frame(self, flow_nchw: np.ndarray) -> np.ndarray:
        """1x2xH'xW' network flow -> HxWx2 float32 in frame pixels."""
        h, w = self.frame_hw
        flow = flow_nchw[0].transpose(1, 2, 0)
        if self.mode == "pad":
            return np.ascontiguousarray(flow[:h, :w], dtype=np.float32)
        nh, nw = self.net_hw
        flow = resize_bilinear(flow.astype(np.float32), h, w)
        flow[..., 0] *= w / nw
        flow[..., 1] *= h / nh
        return flow.astype(np.float32)


def padded_size(height, width, multiple: int) -> tuple:
    """``(height, width)`` rounded up to a multiple of ``multiple``: the one padding rule (bottom and
    right, edge-replicated) shared by the runtime, convert's parity and size checks, the report's
    MAC count and the eager PyTorch path, so they cannot disagree on a frame's network size.
    Works on torch's symbolic sizes too (no ``int()`` on height/width)."""
    m = max(int(multiple), 1)
    return -(-height // m) * m, -(-width // m) * m


def plan_geometry(frame_hw: tuple[int, int], input_shape: tuple, pad_multiple: int,
                  conventions: Conventions | None = None) -> Geometry:
    """Pad for dynamic-shape graphs, resize for static ones; ``conventions`` from the manifest."""
    h, w = frame_hw
    nh, nw = input_shape[2], input_shape[3]
    if conventions is not None and conventions.identity:
        conventions = None
    if isinstance(nh, int) and isinstance(nw, int) and nh > 0 and nw > 0:
        mode = "pad" if (nh - h) in range(pad_multiple) and (nw - w) in range(pad_multiple) else "resize"
        return Geometry(frame_hw, (nh, nw), mode, conventions)
    return Geometry(frame_hw, padded_size(h, w, pad_multiple), "pad", conventions)
