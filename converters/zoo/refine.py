"""Lucas-Kanade refinement: a parameter-free last stage that gives a 1/8-resolution network
sub-pixel precision.

Why (issue 14): the default network estimates flow at 1/8 of the input and up-samples it
bilinearly. On smooth motions it is then off by about a pixel, where OpenCV's DIS (a patch
inverse search, i.e. Lucas-Kanade, plus variational refinement, at full resolution) is off by
0.2 px. Learning that precision would need a 1/4 or 1/2 level, which was measured too slow on a
CPU (docs/model_card_default.md). This stage does what DIS does, starting from the network's flow
instead of from zero: a few Gauss-Newton steps of a windowed brightness-constancy fit, coarse to
fine (the default: one at 1/4, two at 1/2; full-resolution steps are more accurate and were
measured too slow on a CPU, docs/model_card_default.md). The network supplies what a local search cannot (large motion, occlusions,
textureless regions, photometric change); the fit supplies what the coarse network cannot
(sub-pixel precision where there is texture).

Per scale, with ``n1``, ``n2`` frame 1's and frame 2's luminance, locally normalised to zero mean
and unit variance (so a gain or offset change between the frames cancels):

* ``Ix, Iy`` central differences of ``n1``; the structure tensor ``[a b; b c]`` = box sums of
  ``Ix^2, Ix Iy, Iy^2`` over a ``window`` (plus ``damping`` on the diagonal, so textureless or
  edge-only windows keep the incoming flow instead of dividing by ~0);
* each iteration: ``It = n2(x + flow) - n1``, ``du = -[a b; b c]^-1 [sum Ix It, sum Iy It]``,
  clipped to ``max_step`` px, then averaged over a ``smooth`` window weighted by each pixel's
  confidence ``det / trace`` (DIS's densification: confident patches speak for their
  neighbours), and added to the flow.

No learned weights, so nothing here depends on the training data; the few numbers (windows,
iterations, step) were chosen on :func:`edgeflow.synthetic.tuning_eval.tuning_set` (training
material only), never on the unseen set (``benchmarks/tune_refinement.py``). Standard ONNX ops
only (AveragePool, Pad, Gather, Mul, Div, Clip), so the same graph runs on onnxruntime on a
Pi and on TensorRT. The frame-only part (luminance, normalisation) is in the encoder and cached by
the stream. In INT8 artifacts this stage stays FP32: a division and sub-pixel increments have no
useful 8-bit form, and its cost is in the latency benchmark.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Rec. 601 luma weights on 0..255 RGB, scaled to 0..1.
_LUMA = (0.299 / 255.0, 0.587 / 255.0, 0.114 / 255.0)


def box(x: torch.Tensor, window: int) -> torch.Tensor:
    """Mean over a ``window`` x ``window`` neighbourhood, shrinking at the borders.

    One 2-D AveragePool (``count_include_pad=False``: exact border means): on onnxruntime's CPU
    it measured faster than a row pass plus a column pass (0.34 vs 0.49 ms for three 160x120
    maps, window 9, 1 thread).
    """
    return F.avg_pool2d(x, window, 1, window // 2, count_include_pad=False)


def luminance(frames: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in 0..255 -> (B, 1, H, W) luma in 0..1."""
    red, green, blue = frames.split(1, dim=1)
    return red * _LUMA[0] + green * _LUMA[1] + blue * _LUMA[2]


def local_normalize(x: torch.Tensor, window: int, eps: float = 1e-3) -> torch.Tensor:
    """Zero mean, unit variance over a ``window`` neighbourhood: gain and offset cancel."""
    mean, mean_sq = box(torch.cat([x, x * x], dim=1), window).split(1, dim=1)
    var = (mean_sq - mean * mean).clamp(min=0.0)
    return (x - mean) / torch.sqrt(var + eps)


def gradients(x: torch.Tensor) -> torch.Tensor:
    """Central differences (B, 2, H, W) = (d/dx, d/dy), edge-replicated at the borders."""
    gx = F.pad(x, (1, 1, 0, 0), mode="replicate")
    gy = F.pad(x, (0, 0, 1, 1), mode="replicate")
    return torch.cat([gx[..., 2:] - gx[..., :-2], gy[..., 2:, :] - gy[..., :-2, :]], dim=1) * 0.5


def frame_pyramid(frames: torch.Tensor, scales: tuple[int, ...], norm_window: int) -> list[torch.Tensor]:
    """Per scale ``s`` (a divisor: 1 = full resolution), the normalised luminance at 1/s.

    Computed once per frame (the encoder's job): luma at full resolution, 2x2 means cascaded
    down to each scale (a 3-channel pool of the frame cost 3x more in onnxruntime), then
    normalisation.
    """
    level, current, maps = luminance(frames), 1, {}
    for scale in sorted(scales):
        while current < scale:
            level, current = F.avg_pool2d(level, 2), current * 2
        maps[scale] = local_normalize(level, norm_window)
    return [maps[scale] for scale in scales]


class BorderSampler:
    """Bilinear samples of a one-channel image at ``(x + u, y + v)``, clamped to the border.

    One Gather of the four neighbours instead of GridSample: onnxruntime's CPU GridSample took
    2.4 ms for one 320x240 map on the development host against 1.2 ms for a gather (1 thread), and
    it runs every iteration. Everything that does not depend on the flow (the pixel grid, the
    image padded by one replicated row and column so the right / bottom neighbour always exists,
    the neighbours' index offsets) is built once per scale; a call is ~20 small ops. Coordinates
    come from cumulative sums, so H and W stay symbolic in an exported graph.
    """

    def __init__(self, image: torch.Tensor):
        self.shape = image.shape
        ones = torch.ones_like(image)
        self.base = torch.cat([ones.cumsum(dim=3) - 1.0, ones.cumsum(dim=2) - 1.0], dim=1)
        x_max, y_max = ones.sum(dim=3, keepdim=True) - 1.0, ones.sum(dim=2, keepdim=True) - 1.0
        self.limit = torch.cat([ones * x_max, ones * y_max], dim=1)
        stride = x_max + 2.0  # the padded row length, W + 1
        # Neighbour order (x0 y0, x0 y1, x1 y0, x1 y1): the left pair then the right pair.
        self.offsets = torch.cat([torch.zeros_like(stride), stride, torch.ones_like(stride), stride + 1.0], dim=1)
        self.stride = stride
        self.flat = F.pad(image, (0, 1, 0, 1), mode="replicate").flatten(1)

    def __call__(self, flow: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = self.shape
        xy = torch.minimum((self.base + flow).clamp(min=0.0), self.limit)
        xy0 = torch.floor(xy)
        fx, fy = (xy - xy0).split(1, dim=1)
        x0, y0 = xy0.split(1, dim=1)
        index = (y0 * self.stride + x0 + self.offsets).flatten(1).long()
        corners = torch.gather(self.flat, 1, index).view(batch, 4, height, width)
        left, right = corners.split(2, dim=1)
        top, bottom = (left + (right - left) * fx).split(1, dim=1)
        return top + (bottom - top) * fy


def sample_border(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """:class:`BorderSampler` for one call (tests and eager use)."""
    return BorderSampler(image)(flow)


class LucasKanade(nn.Module):
    """Iterated, confidence-smoothed Lucas-Kanade on normalised luminance at one scale.

    ``forward(n1, n2, flow)`` -> refined flow, all at this scale's resolution and pixel units.
    Holds no parameters or buffers: a model's state dict is the same with or without it.
    """

    def __init__(self, iterations: int, window: int, smooth: int, max_step: float, damping: float):
        super().__init__()
        self.iterations, self.window, self.smooth = int(iterations), int(window), int(smooth)
        self.max_step, self.damping = float(max_step), float(damping)

    def forward(self, n1: torch.Tensor, n2: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        # Per scale, once: gradients, the damped structure tensor [a b; b c], and its inverse
        # folded into two 2-channel maps so that a step is P * p + Q * q (few, large ops: in
        # onnxruntime each node costs a few microseconds before it touches data).
        grad = gradients(n1)
        gx, gy = grad.split(1, dim=1)
        a, b, c = box(torch.cat([gx * gx, gx * gy, gy * gy], dim=1), self.window).split(1, dim=1)
        a, c = a + self.damping, c + self.damping
        det = a * c - b * b
        inv_det = 1.0 / det
        P = torch.cat([-c, b], dim=1) * inv_det  # noqa: N806 (matrix columns)
        Q = torch.cat([b, -a], dim=1) * inv_det  # noqa: N806
        confidence = det / (a + c)
        inv_norm = 1.0 / box(confidence, self.smooth) if self.smooth > 1 else None
        sample = BorderSampler(n2)
        for _ in range(self.iterations):
            p, q = box(grad * (sample(flow) - n1), self.window).split(1, dim=1)
            step = (P * p + Q * q).clamp(-self.max_step, self.max_step)
            if inv_norm is not None:
                step = box(step * confidence, self.smooth) * inv_norm
            flow = flow + step
        return flow

    def extra_repr(self) -> str:
        return (f"iterations={self.iterations}, window={self.window}, smooth={self.smooth}, "
                f"max_step={self.max_step}, damping={self.damping}")
