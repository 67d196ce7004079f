"""The training recipe as a TOML file (read with :mod:`tomllib`), parsed into small dataclasses.

Sections: ``[model]`` (zoo name), ``[data]`` (:class:`converters.train.data.DataConfig`),
``[optim]`` (:class:`OptimConfig`), ``[train]`` (:class:`RunConfig`). Unknown keys are refused
so a typo does not silently train with a default. See ``configs/pwc-lite.toml``.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from converters.train.data import DataConfig
from edgeflow.errors import EdgeflowError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 4e-4
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 10.0


@dataclass(frozen=True)
class RunConfig:
    steps: int = 1000
    checkpoint_every: int = 100
    log_every: int = 10
    val_every: int = 200
    val_pairs: int = 12
    val_size: tuple[int, int] = (240, 320)
    builtin_eval: bool = True
    #: Also score the unseen evaluation set (edgeflow.synthetic.unseen_eval) at each validation.
    unseen_eval: bool = False
    threads: int = 2
    workers: int = 0
    device: str = "auto"
    fast_correlation: bool = True


@dataclass(frozen=True)
class TrainConfig:
    model: str = "pwc-lite"
    #: Weight init of a fresh run: "kaiming" (He normal, zero bias; as PWC-Net) or "default" (PyTorch's).
    init: str = "kaiming"
    #: Train with a BatchNorm after each hidden conv, folded into the convs when saving
    #: (:mod:`converters.train.batchnorm`): the saved model is the plain zoo architecture.
    batchnorm: bool = False
    #: Start from these weights instead of ``init`` (a fine-tuning stage, as PWC-Net's Chairs ->
    #: Things schedule): an earlier run's ``state.pt`` (weights only; optimizer and schedule start
    #: fresh) or an edgeflow checkpoint of the same architecture. Relative paths are relative to the
    #: working directory, like ``--out``.
    init_from: Optional[str] = None
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    source: str = ""  # the TOML text, stored in checkpoints for the record

    def with_overrides(self, steps=None, device=None, threads=None) -> "TrainConfig":
        run = self.run
        if steps is not None:
            run = dataclasses.replace(run, steps=int(steps))
        if device is not None:
            run = dataclasses.replace(run, device=device)
        if threads is not None:
            run = dataclasses.replace(run, threads=int(threads))
        return dataclasses.replace(self, run=run)


def _build(cls, values: dict, section: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise EdgeflowError(f"unknown key(s) {unknown} in [{section}] of the training config; allowed: {sorted(names)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def load_config(path) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        bundled = CONFIG_DIR / path.name
        if bundled.is_file() and path.parent == Path("."):
            path = bundled
        else:
            raise EdgeflowError(f"training config not found: {path} (bundled configs: {', '.join(p.name for p in CONFIG_DIR.glob('*.toml'))})")
    text = path.read_text()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise EdgeflowError(f"cannot parse {path}: {err}") from None
    unknown = sorted(set(raw) - {"model", "data", "optim", "train"})
    if unknown:
        raise EdgeflowError(f"unknown section(s) {unknown} in {path}; allowed: model, data, optim, train")
    try:
        model_section = dict(raw.get("model", {}))
        allowed_model = ("name", "init", "batchnorm", "init_from")
        unknown_model = sorted(set(model_section) - set(allowed_model))
        if unknown_model:
            raise EdgeflowError(f"unknown key(s) {unknown_model} in [model] of {path}; allowed: {', '.join(allowed_model)}")
        init_from = model_section.get("init_from")
        if init_from is not None and not isinstance(init_from, str):
            raise EdgeflowError(f"[model] init_from must be a path string, got {init_from!r}")
        batchnorm = bool(model_section.get("batchnorm", False))
        model = model_section.get("name", "pwc-lite")
        init = model_section.get("init", "kaiming")
        if init not in ("kaiming", "default"):
            raise EdgeflowError(f"[model] init must be 'kaiming' or 'default', got {init!r}")
        data_values = dict(raw.get("data", {}))
        data_names = {f.name for f in dataclasses.fields(DataConfig)}
        if set(data_values) - data_names:
            raise EdgeflowError(f"unknown key(s) {sorted(set(data_values) - data_names)} in [data] of {path}")
        data = DataConfig.from_dict(data_values)
        optim = _build(OptimConfig, raw.get("optim", {}), "optim")
        run = _build(RunConfig, raw.get("train", {}), "train")
    except (TypeError, ValueError, KeyError) as err:
        raise EdgeflowError(f"bad training config {path}: {err}") from None
    return TrainConfig(model, init, batchnorm, init_from, data, optim, run, text)
