"""The backend interface: a *loader* makes a *runner*; a runner maps a feed dict to outputs.

Polygraphy-style: loading (parsing, optimizing, building) is separated from running so the cost
of the first is paid once and never shows up in per-frame latency.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from edgeflow.errors import InputError


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints, or strings / None for dynamic axes
    dtype: str  # numpy dtype name

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) and d > 0 for d in self.shape)


class Runner(ABC):
    """Runs one graph. ``infer`` takes and returns numpy arrays keyed by tensor name.

    Subclasses set ``_inputs`` / ``_outputs`` (lists of :class:`TensorSpec`) when they load.
    """

    backend: str = "?"
    _inputs: list[TensorSpec]
    _outputs: list[TensorSpec]

    @property
    def inputs(self) -> list[TensorSpec]:
        return self._inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self._outputs

    def check_feed(self, feed: dict) -> None:
        """One clear error naming every missing input, before a backend fails obscurely."""
        missing = [s.name for s in self._inputs if s.name not in feed]
        if missing:
            raise InputError(f"missing model input(s): {', '.join(missing)}")

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    @abstractmethod
    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
