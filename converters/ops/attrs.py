"""Correlation attributes: one validated record shared by eager, ONNX and plugin code.

Kept torch-free so the spec (output size, displacement order) can be checked anywhere.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class CorrelationAttrs:
    """FlowNet2 / PWC-Net correlation attributes; see docs/correlation.md."""

    max_displacement: int
    kernel_size: int = 1
    stride1: int = 1
    stride2: int = 1
    pad_size: int | None = None
    normalize: bool = True

    def __post_init__(self):
        if self.pad_size is None:
            object.__setattr__(self, "pad_size", self.max_displacement)
        for name in ("max_displacement", "pad_size"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"correlation: {name} must be >= 0, got {getattr(self, name)}")
        for name in ("kernel_size", "stride1", "stride2"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"correlation: {name} must be >= 1, got {getattr(self, name)}")
        if self.kernel_size % 2 != 1:
            raise ValueError(f"correlation: kernel_size must be odd, got {self.kernel_size}")

    @property
    def kernel_radius(self) -> int:
        return (self.kernel_size - 1) // 2

    @property
    def border(self) -> int:
        return self.max_displacement + self.kernel_radius

    @property
    def grid_radius(self) -> int:
        return self.max_displacement // self.stride2

    @property
    def grid_width(self) -> int:
        """D: displacements per axis; the output has D*D channels."""
        return 2 * self.grid_radius + 1

    @property
    def out_channels(self) -> int:
        return self.grid_width**2

    def displacements(self) -> list[tuple[int, int]]:
        """(dy, dx) in channel order: channel i*D + j has dy=(i-r)*s2, dx=(j-r)*s2 (vertical outer)."""
        r, s2 = self.grid_radius, self.stride2
        return [((i - r) * s2, (j - r) * s2) for i in range(self.grid_width) for j in range(self.grid_width)]

    def out_size(self, height: int, width: int) -> tuple[int, int]:
        """Output (H', W') for an input of (height, width); raises when the input is too small."""
        sizes = []
        for n in (height, width):
            span = n + 2 * self.pad_size - 2 * self.border
            if span <= 0:
                raise ValueError(
                    f"correlation: input size {n} is too small for max_displacement={self.max_displacement}, "
                    f"kernel_size={self.kernel_size}, pad_size={self.pad_size}"
                )
            sizes.append(math.ceil(span / self.stride1))
        return sizes[0], sizes[1]

    def as_onnx_attributes(self) -> dict[str, int]:
        d = asdict(self)
        d["normalize"] = int(bool(d["normalize"]))
        return {k: int(v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "CorrelationAttrs":
        return cls(**{k: (bool(v) if k == "normalize" else int(v)) for k, v in d.items() if k in cls.__dataclass_fields__})
