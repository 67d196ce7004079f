"""Training batches streamed from :class:`edgeflow.synthetic.SyntheticFlowGenerator`.

Nothing is stored on disk: every batch is rendered when it is needed. Batch ``b`` is a pure
function of ``(seed, b)`` and the data config: it holds generator samples ``b * batch_size ...``
and its crops and flips come from a random stream seeded by ``(seed, b)``. That is what makes
``--resume`` exact without saving any data-loader state: the trainer restarts the stream at the
step it stopped at.

Augmentation here is geometric only (the generator already does the photometric part):

* a random crop (the network sees many positions of each rendered scene);
* a horizontal flip mirrors both frames and negates ``u``; a vertical flip negates ``v``.
  Mirroring a pair mirrors its motion, so the flipped flow is exact, not an approximation
  (``tests/test_train.py`` checks it by warping).

A *stage* (see :class:`Stage`) sets the rendered size and the crop from a given step on, so a
config can train on small, cheap crops first and on larger ones later (a curriculum).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator, NamedTuple, Optional, Sequence

import numpy as np
import torch

from edgeflow.errors import EdgeflowError

#: Random-stream tag for crops/flips, distinct from the generator's own streams.
_AUGMENT_STREAM = 7


def _change_augment():
    from edgeflow.synthetic.photometric import PhotometricAugment

    return PhotometricAugment(brightness=0.3, contrast=0.3, gamma=0.3, color=0.1, noise=8.0, noise_prob=0.6,
                              blur=1.5, blur_prob=0.3, frame_jitter=0.03, change_prob=0.5, change_gain=0.35,
                              change_gamma=0.3, change_offset=20.0, change_color=0.1, change_blur=1.5,
                              change_noise=8.0, jpeg_prob=0.2)


#: ``photometric = "change"``: stronger shared jitter plus, on half of the pairs, a photometric
#: change between the frames (issue 14: a lighting change cost pwc-lite 3.12 px vs DIS 0.43).
CHANGE_AUGMENT = _change_augment()


@dataclass(frozen=True)
class Stage:
    """From ``start`` (a step) on, render ``size`` = (H, W) scenes and crop ``crop`` = (h, w);
    ``max_motion`` (px) overrides :attr:`DataConfig.max_motion` for this stage, and
    ``photometric``, ``nonrigid``, ``small_prob``, ``large_prob`` (when set) override the
    :class:`DataConfig` fields of the same name: a curriculum can start on easy data (small
    motions, no photometric change) and switch to the full mix later."""

    start: int
    size: tuple[int, int]
    crop: tuple[int, int]
    max_motion: Optional[float] = None
    photometric: Optional[str] = None
    nonrigid: Optional[float] = None
    small_prob: Optional[float] = None
    large_prob: Optional[float] = None

    def overrides(self) -> dict:
        return {key: getattr(self, key) for key in ("photometric", "nonrigid", "small_prob", "large_prob")
                if getattr(self, key) is not None}

    def __post_init__(self):
        if self.crop[0] > self.size[0] or self.crop[1] > self.size[1]:
            raise EdgeflowError(f"stage at step {self.start}: crop {self.crop} is larger than rendered size {self.size}")


@dataclass(frozen=True)
class DataConfig:
    batch_size: int = 8
    seed: int = 0
    stages: tuple[Stage, ...] = (Stage(0, (240, 320), (192, 256)),)
    #: Largest object translation in pixels (None: the generator's default for the rendered size).
    max_motion: Optional[float] = None
    max_objects: int = 8
    hflip: float = 0.5
    vflip: float = 0.1
    #: Texture source: "skimage" (the 11 photos, as pwc-lite was trained) or "train-split" (the
    #: training photos + procedural training families, :mod:`edgeflow.synthetic.families`; the
    #: held-out families and photos stay unseen).
    textures: str = "skimage"
    #: "default" (shared photometric jitter) or "change" (also a lighting / exposure / colour /
    #: blur / noise / JPEG change between the two frames, :data:`CHANGE_AUGMENT`).
    photometric: str = "default"
    #: Largest smooth non-rigid bend of frame 2 in px (0: off); see ``nonrigid_warp``.
    nonrigid: float = 0.0
    #: Share of sub-pixel scenes and of large-motion scenes (objects and camera up to
    #: ``large_motion`` px; None: 2.5 x max_motion).
    small_prob: float = 0.0
    large_prob: float = 0.0
    large_motion: Optional[float] = None
    #: Object rotation (degrees) and zoom (log-scale) ranges.
    rotation: float = 10.0
    zoom: float = 0.1

    def generator_options(self) -> dict:
        """Keyword arguments for ``SyntheticFlowGenerator`` (besides size, seed and max_motion)."""
        if self.textures not in ("skimage", "train-split"):
            raise EdgeflowError(f"data.textures must be 'skimage' or 'train-split', got {self.textures!r}")
        if self.photometric not in ("default", "change"):
            raise EdgeflowError(f"data.photometric must be 'default' or 'change', got {self.photometric!r}")
        options = dict(max_objects=self.max_objects, rotation=self.rotation, zoom=self.zoom,
                       small_prob=self.small_prob, large_prob=self.large_prob, large_motion=self.large_motion,
                       nonrigid=self.nonrigid)
        if self.textures == "train-split":
            from edgeflow.synthetic.families import training_bank

            options["textures"] = training_bank()
        if self.photometric == "change":
            options["augment"] = CHANGE_AUGMENT
        return options

    def stage_at(self, step: int) -> Stage:
        current = self.stages[0]
        for stage in self.stages:
            if stage.start <= step:
                current = stage
        return current

    @classmethod
    def from_dict(cls, values: dict) -> "DataConfig":
        values = dict(values)
        stages = values.pop("stages", None)
        if stages is not None:
            unknown = sorted({key for s in stages for key in s} - {f.name for f in dataclasses.fields(Stage)})
            if unknown:
                raise EdgeflowError(f"unknown key(s) {unknown} in [[data.stages]]")
            values["stages"] = tuple(
                Stage(int(s.get("start", 0)), tuple(s["size"]), tuple(s["crop"]), s.get("max_motion"),
                      s.get("photometric"), s.get("nonrigid"), s.get("small_prob"), s.get("large_prob"))
                for s in stages
            )
            if not values["stages"] or values["stages"][0].start != 0:
                raise EdgeflowError("data.stages must start with a stage at start = 0")
        return cls(**values)


class Batch(NamedTuple):
    """float32 tensors: frames (B, 3, h, w) in 0..255, flow (B, 2, h, w) in pixels, valid (B, h, w)."""

    frame1: torch.Tensor
    frame2: torch.Tensor
    flow: torch.Tensor
    valid: torch.Tensor


def flip_sample(frame1, frame2, flow, valid, horizontal: bool, vertical: bool):
    """Mirror an HxW pair and its flow exactly: a horizontal mirror negates u, a vertical one v."""
    if horizontal:
        frame1, frame2, flow, valid = frame1[:, ::-1], frame2[:, ::-1], flow[:, ::-1], valid[:, ::-1]
        flow = flow * np.array([-1.0, 1.0], np.float32)
    if vertical:
        frame1, frame2, flow, valid = frame1[::-1], frame2[::-1], flow[::-1], valid[::-1]
        flow = flow * np.array([1.0, -1.0], np.float32)
    return frame1, frame2, flow, valid


class SyntheticBatches:
    """``batch(b)`` -> :class:`Batch`; iterate from any batch index with :meth:`stream`."""

    def __init__(self, config: DataConfig):
        self.config = config
        self._generators: dict[tuple, object] = {}

    def _generator(self, stage: Stage):
        motion = stage.max_motion if stage.max_motion is not None else self.config.max_motion
        key = (stage.size, motion, tuple(sorted(stage.overrides().items())))
        if key not in self._generators:
            from edgeflow.synthetic.generator import SyntheticFlowGenerator

            config = dataclasses.replace(self.config, **stage.overrides())
            self._generators[key] = SyntheticFlowGenerator(
                stage.size[0], stage.size[1], seed=self.config.seed, max_motion=motion,
                **config.generator_options(),
            )
        return self._generators[key]

    def batch(self, index: int) -> Batch:
        cfg = self.config
        stage = cfg.stage_at(index)
        gen = self._generator(stage)
        rng = np.random.default_rng([cfg.seed, int(index), _AUGMENT_STREAM])
        (H, W), (h, w) = stage.size, stage.crop
        items = []
        for k in range(cfg.batch_size):
            sample = gen.sample(index * cfg.batch_size + k)
            y = int(rng.integers(0, H - h + 1))
            x = int(rng.integers(0, W - w + 1))
            hflip, vflip = rng.random() < cfg.hflip, rng.random() < cfg.vflip
            crop = (slice(y, y + h), slice(x, x + w))
            parts = (sample.frame1[crop], sample.frame2[crop], sample.flow[crop], sample.valid[crop])
            items.append(flip_sample(*parts, hflip, vflip))
        return collate(items)

    def stream(self, start: int = 0) -> Iterator[Batch]:
        index = start
        while True:
            yield self.batch(index)
            index += 1


def collate(items: Sequence[tuple]) -> Batch:
    frame1 = np.stack([np.ascontiguousarray(i[0]) for i in items]).transpose(0, 3, 1, 2)
    frame2 = np.stack([np.ascontiguousarray(i[1]) for i in items]).transpose(0, 3, 1, 2)
    flow = np.stack([np.ascontiguousarray(i[2]) for i in items]).transpose(0, 3, 1, 2)
    valid = np.stack([np.ascontiguousarray(i[3]) for i in items])
    return Batch(
        torch.from_numpy(np.ascontiguousarray(frame1, np.float32)),
        torch.from_numpy(np.ascontiguousarray(frame2, np.float32)),
        torch.from_numpy(np.ascontiguousarray(flow, np.float32)),
        torch.from_numpy(valid.astype(np.float32)),
    )


class _BatchDataset(torch.utils.data.IterableDataset):
    def __init__(self, source: SyntheticBatches, start: int):
        self.source, self.start = source, start

    def __iter__(self):
        return self.source.stream(self.start)


def _leave_stop_signals_to_the_trainer(worker_id: int) -> None:
    """Ctrl-C and ``kill``/``timeout`` signal the whole process group: the render worker must not
    die of them (the trainer would then crash on the dead worker instead of finishing its step and
    saving). The trainer shuts the worker down when it stops; if the trainer itself dies, the
    DataLoader's parent watchdog ends the worker."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def batch_stream(config: DataConfig, start: int = 0, workers: int = 0) -> Iterator[Batch]:
    """Batches ``start, start + 1, ...``; ``workers=1`` renders them in a background process
    (one worker only: more would interleave and break the batch-index order resume relies on)."""
    source = SyntheticBatches(config)
    if workers <= 0:
        return source.stream(start)
    if workers != 1:
        raise EdgeflowError("train.workers must be 0 or 1 (batch order must stay deterministic for --resume)")
    loader = torch.utils.data.DataLoader(
        _BatchDataset(source, start), batch_size=None, num_workers=1, prefetch_factor=2, persistent_workers=False,
        worker_init_fn=_leave_stop_signals_to_the_trainer,
    )
    return (Batch(*b) for b in loader)
