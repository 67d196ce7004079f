"""``edgeflow.load(DIR).infer(frame1, frame2)``: the smallest useful runtime API.

A :class:`FlowModel` owns an opened artifact and its runner(s). When the artifact was exported
split into ``encoder`` and ``decoder`` graphs, :meth:`encode` / :meth:`decode` let a stream compute
each frame's features once and reuse them for the next pair (see :mod:`edgeflow.stream`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeflow.artifact import Artifact
from edgeflow.backends import create_runner
from edgeflow.errors import ArtifactError, EdgeflowError, InputError
from edgeflow.preprocess import Conventions, Geometry, check_frame, plan_geometry

#: The bundled default model: ``edgeflow convert default`` (NeuFlow-style, docs/model_card_default.md).
#: ``data/pwc-lite`` stays bundled beside it (the previous default, docs/model_card_pwc_lite.md).
DEFAULT_ARTIFACT = Path(__file__).parent / "data" / "default"


def default_artifact_path() -> Path:
    if not (DEFAULT_ARTIFACT / "manifest.json").is_file():
        raise ArtifactError(
            f"the bundled default model is missing ({DEFAULT_ARTIFACT}); reinstall edgeflow or pass an artifact directory"
        )
    return DEFAULT_ARTIFACT


def decoder_plan(decoder_inputs, encoder_outputs, where="the artifact") -> list:
    """``[(decoder input, 0 | 1 for frame t-1 | t, encoder output)]``, matched by name.

    Decoder inputs are named ``feat1_<i>`` / ``feat2_<i>`` after encoder output ``feat_<i>``; an
    exporter may drop inputs a decoder never reads, so matching is by name, never by position.
    """
    plan = []
    for name in decoder_inputs:
        side, _, level = name.partition("_")
        key = f"feat_{level}"
        if side not in ("feat1", "feat2") or key not in encoder_outputs:
            raise ArtifactError(f"{where}: decoder input {name!r} has no matching encoder output; re-run `edgeflow convert`")
        plan.append((name, 0 if side == "feat1" else 1, key))
    return plan


class Features:
    """One frame's encoder outputs, opaque to callers; valid for frames of one geometry."""

    __slots__ = ("tensors", "geometry")

    def __init__(self, tensors: dict[str, np.ndarray], geometry: Geometry):
        self.tensors = tensors
        self.geometry = geometry


class FlowModel:
    """``threads`` / ``spin`` override the thread budget (:mod:`edgeflow.budget`): by default
    inference gets every usable core and its workers spin only inside a run; ``budget`` says what
    was decided."""

    def __init__(self, artifact: Artifact, backend: str = "auto", threads: int | None = None, split: bool | None = None,
                 spin: str = "auto"):
        from edgeflow.budget import decide

        self.artifact = artifact
        self.budget = decide(threads, spin)
        threads, spinning = self.budget.threads, self.budget.spinning
        self.runner = create_runner(artifact, "model", backend, threads, spinning=spinning)
        pre = artifact.preprocessing
        self.pad_multiple = int(pre.get("pad_multiple", 1))
        self._inputs = self.runner.input_names
        if len(self._inputs) != 2:
            raise ArtifactError(f"{artifact.root}: a flow model needs two inputs, the graph has {self._inputs}")
        self.encoder = self.decoder = None
        # The split path must run on the same backend as the whole-pair graph: with TensorRT that
        # needs split engines too (they are not built when precisions differ).
        split_roles = ("encoder_engine", "decoder_engine") if self.runner.backend == "tensorrt" else ("encoder", "decoder")
        can_split = all(artifact.has(r) for r in split_roles)
        if split or (split is None and can_split):
            if not can_split:
                raise ArtifactError(f"{artifact.root} has no encoder/decoder graphs; re-run `edgeflow convert` (it exports them)")
            split_backend = self.runner.backend if backend == "auto" else backend
            self.encoder = create_runner(artifact, "encoder", split_backend, threads, spinning=spinning)
            self.decoder = create_runner(artifact, "decoder", split_backend, threads, spinning=spinning)
        self._geometry: Geometry | None = None
        self._decoder_plan: list | None = None  # built on the first decode()
        self._closed = False
        self._last_stages: dict = {}

    @classmethod
    def load(cls, path=None, backend: str = "auto", threads: int | None = None, verify: bool = True, split: bool | None = None,
             spin: str = "auto"):
        artifact = Artifact.open(default_artifact_path() if path is None else path, verify=verify)
        return cls(artifact, backend=backend, threads=threads, split=split, spin=spin)

    @property
    def name(self) -> str:
        return self.artifact.name

    @property
    def can_cache_features(self) -> bool:
        return self.encoder is not None

    def _check_open(self) -> None:
        # A closed runner may still answer (onnxruntime) or crash the process (TensorRT frees its
        # buffers): either way the caller has a bug it should hear about in one line.
        if self._closed:
            raise EdgeflowError(f"this model ({self.name}) was closed; load it again with edgeflow.load(...)")

    def geometry(self, frame: np.ndarray) -> Geometry:
        hw = frame.shape[:2]
        if self._geometry is None or self._geometry.frame_hw != hw:
            self._geometry = plan_geometry(hw, self.runner.inputs[0].shape, self.pad_multiple,
                                           Conventions.from_preprocessing(self.artifact.preprocessing))
        return self._geometry

    # -- whole-pair inference ------------------------------------------------------------------------
    def infer(self, frame1: np.ndarray, frame2: np.ndarray) -> np.ndarray:
        """Two HxWx3 uint8 RGB frames -> HxWx2 float32 flow (u, v) in pixels."""
        self._check_open()
        check_frame(frame1, "frame1")
        check_frame(frame2, "frame2")
        if frame1.shape != frame2.shape:
            raise InputError(f"frame1 and frame2 differ in size: {frame1.shape} vs {frame2.shape}")
        geo = self.geometry(frame1)
        return geo.to_frame(self.infer_network(geo.to_network(frame1), geo.to_network(frame2)))

    # -- split inference (feature caching) ---------------------------------------------------------
    def encode(self, frame: np.ndarray) -> Features:
        self._check_open()
        if self.encoder is None:
            raise ArtifactError(f"{self.artifact.root} has no encoder graph; feature caching needs `edgeflow convert` >= 0.1")
        check_frame(frame)
        geo = self.geometry(frame)
        return Features(self.encode_network(geo.to_network(frame)), geo)

    def decode(self, feats1: Features, feats2: Features) -> np.ndarray:
        """Flow between two frames from their :meth:`encode` results (feature caching)."""
        self._check_open()
        if self.decoder is None:
            raise ArtifactError(f"{self.artifact.root} has no decoder graph; feature caching needs `edgeflow convert` >= 0.1")
        if not isinstance(feats1, Features) or not isinstance(feats2, Features):
            raise InputError("decode() takes the Features that encode() returned for two frames, got "
                             f"{type(feats1).__name__} and {type(feats2).__name__}")
        if feats1.geometry != feats2.geometry:
            raise InputError("the two frames' features come from frames of different sizes")
        return feats1.geometry.to_frame(self.decode_network(feats1.tensors, feats2.tensors))

    # -- network tensors: what infer/encode/decode run, and what a stream feeds ----------------------
    # A stream prepares each frame's network tensor once on its capture thread (``geometry(frame)
    # .to_network``) and maps the raw flow back on its delivery thread (``Geometry.to_frame``); in
    # between it calls these, and reads the runners' own timings from :meth:`last_stage_times`.
    def infer_network(self, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
        """Whole-pair graph on two prepared network tensors -> raw network flow (1x2xhxw)."""
        self._check_open()
        out = self.runner.infer({self._inputs[0]: x1, self._inputs[1]: x2})
        self._last_stages = {"inference": self.runner.last_inference_time()}
        return out[self.runner.output_names[0]]

    def encode_network(self, x: np.ndarray) -> dict:
        """Encoder graph on one prepared network tensor -> its features (name -> array)."""
        self._check_open()
        if self.encoder is None:
            raise ArtifactError(f"{self.artifact.root} has no encoder graph; feature caching needs `edgeflow convert` >= 0.1")
        out = self.encoder.infer({self.encoder.input_names[0]: x})
        seconds = self.encoder.last_inference_time()
        self._last_stages = {"encode": seconds, "inference": seconds}
        return out

    def decode_network(self, feats1: dict, feats2: dict) -> np.ndarray:
        """Decoder graph on two frames' :meth:`encode_network` features -> raw network flow."""
        self._check_open()
        if self.decoder is None:
            raise ArtifactError(f"{self.artifact.root} has no decoder graph; feature caching needs `edgeflow convert` >= 0.1")
        if self._decoder_plan is None:
            # Matched by name, never by position: exporters drop inputs a decoder never reads
            # (FlowNetC uses only the deepest frame-2 feature).
            self._decoder_plan = decoder_plan(self.decoder.input_names, self.encoder.output_names, self.artifact.root)
        pair = (feats1, feats2)
        out = self.decoder.infer({name: pair[side][key] for name, side, key in self._decoder_plan})
        self._last_stages = {"decode": self.decoder.last_inference_time()}
        return out[self.decoder.output_names[0]]

    def last_stage_times(self) -> dict:
        """Seconds the runners spent in the last ``*_network`` call (``inference``, ``encode`` or
        ``decode``), as the runners recorded them: callers never time the backends themselves."""
        return dict(self._last_stages)

    @property
    def backend(self) -> str:
        return self.runner.backend

    def describe(self) -> dict:
        """What a stream's report says about the model (name, artifact folder, backend, thread
        budget), so that a caller reads facts without reaching into the artifact or the runners."""
        return {"name": self.name, "artifact": str(self.artifact.root), "backend": self.backend,
                "thread_budget": self.budget.to_dict()}

    def close(self) -> None:
        """Release the runners; later infer/encode/decode calls raise. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for r in (self.runner, self.encoder, self.decoder):
            if r is not None:
                r.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self) -> str:
        return f"FlowModel({self.name!r}, {self.artifact.precision}, backend={self.backend}, split={self.can_cache_features})"
