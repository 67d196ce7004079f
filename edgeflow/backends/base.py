"""The backend interface: a *loader* makes a *runner*; a runner maps a feed dict to outputs.

Polygraphy's shape: loading (parsing, optimizing, deserializing) is a callable of its own
(:class:`~edgeflow.backends.onnxruntime.SessionLoader`,
:class:`~edgeflow.backends.tensorrt.EngineFromArtifact`) so its cost is paid once and never shows
up in per-frame latency; a runner has a life cycle (``activate`` / ``infer`` / ``deactivate``)
and times its own inference, so callers (the model, the stream, ``edgeflow bench``) read stage
times from the runner instead of wrapping each call in their own clock.

The base class owns what every backend would otherwise repeat: the feed is checked against the
graph's input names, ranks, static sizes and dtypes (once per distinct input signature, not per
frame), and the time of each ``infer_impl`` call is recorded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from time import perf_counter

import numpy as np

from edgeflow.errors import EdgeflowError, InputError

#: How many per-call inference times a runner keeps (a long stream must not grow a list forever).
KEEP_TIMES = 1024


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

    Subclasses implement ``activate_impl`` (set ``_inputs`` / ``_outputs``, lists of
    :class:`TensorSpec`), ``infer_impl`` and ``deactivate_impl``. The runtime's constructors
    activate at once (a runner you are handed is ready); ``deactivate()`` (alias ``close()``)
    frees it and ``activate()`` loads it again from its loader.
    """

    backend: str = "?"
    name: str = "runner"
    _inputs: list[TensorSpec]
    _outputs: list[TensorSpec]
    is_active: bool = False
    _checked: tuple | None = None
    _last_time: float | None = None

    # -- life cycle ------------------------------------------------------------------------------
    def activate(self) -> "Runner":
        if not self.is_active:
            self.activate_impl()
            self.is_active = True
            self._checked = None
            self.inference_times = deque(maxlen=KEEP_TIMES)
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self.is_active = False
            self.deactivate_impl()

    def close(self) -> None:
        self.deactivate()

    @abstractmethod
    def activate_impl(self) -> None: ...

    def deactivate_impl(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self):
        return self.activate()

    def __exit__(self, *exc):
        self.deactivate()
        return False

    # -- graph facts -----------------------------------------------------------------------------
    @property
    def inputs(self) -> list[TensorSpec]:
        return self._inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self._outputs

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    # -- inference -------------------------------------------------------------------------------
    def infer(self, feed: dict[str, np.ndarray], check_inputs: bool = True) -> dict[str, np.ndarray]:
        """Run the graph; the time spent in the backend is kept (:meth:`last_inference_time`)."""
        if not self.is_active:
            raise EdgeflowError(f"{self.name}: the {self.backend} runner is not active (closed); "
                                "activate() it or load the model again")
        if check_inputs:
            self.check_feed(feed)
        t0 = perf_counter()
        out = self.infer_impl(feed)
        self._last_time = perf_counter() - t0
        self.inference_times.append(self._last_time)
        return out

    @abstractmethod
    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def last_inference_time(self) -> float | None:
        """Seconds the last :meth:`infer` spent in the backend (None before the first)."""
        return self._last_time

    def check_feed(self, feed: dict) -> None:
        """One clear error naming what is wrong with the feed, before a backend fails obscurely.

        Names (every missing one), rank, static sizes and dtype (exact) are checked; the
        signature that passed is remembered, so a stream of same-sized frames pays for it once.
        """
        missing = [s.name for s in self._inputs if s.name not in feed]
        if missing:
            raise InputError(f"missing model input(s): {', '.join(missing)}")
        arrays = [(s, feed[s.name] if isinstance(feed[s.name], np.ndarray) else np.asarray(feed[s.name]))
                  for s in self._inputs]
        signature = tuple((x.shape, x.dtype) for _, x in arrays)
        if signature == self._checked:
            return
        for spec, x in arrays:
            if x.ndim != len(spec.shape) or any(isinstance(d, int) and d > 0 and d != got
                                                 for d, got in zip(spec.shape, x.shape)):
                want = "x".join(str(d) if isinstance(d, int) and d > 0 else "?" for d in spec.shape)
                raise InputError(f"input {spec.name!r} has shape {tuple(x.shape)}, {self.name} takes {want}")
            try:
                want_dtype = np.dtype(spec.dtype)
            except TypeError:  # a type numpy does not name (the backend checks it)
                continue
            if x.dtype != want_dtype:  # onnxruntime refuses any other dtype; so does every backend here
                raise InputError(f"input {spec.name!r} is {x.dtype}, {self.name} takes {spec.dtype}")
        self._checked = signature
