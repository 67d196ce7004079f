"""Zoo names -> (model class, config, bundled weights) and the builders that use them.

Two vocabularies meet here:

* a *zoo name* ("pwc", "pwc-lite", "flownetc-s") is a ready-made model a user asks for;
* an *arch* ("pwc", "flownetc") is a model family, i.e. a class; checkpoints store the arch
  plus the full config, so any configuration of a family round-trips, not only the zoo ones.

Bundled weights are toolchain files: ``converters/zoo/weights/<name>.pt`` in the edgeflow
checkpoint format (see :mod:`converters.load`), described by a torchvision-style :class:`Weights`
record (file, parameter count, measured metrics, the recipe that made them) and read by
:func:`load_weights`, the one function that loads zoo weights (``get_model`` and
``converters.load.load_model`` both go through it, so this module imports nothing above it). A zoo
model without weights is returned randomly initialised, with ``model.pretrained = False`` and a
:class:`RandomWeightsWarning`, so callers can tell users the output is meaningless until the model
is trained.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from converters.ops import Correlation
from converters.zoo.base import FlowNetwork
from converters.zoo.fastflow import FASTFLOW_LITE_CONFIG, FastFlowConfig, FastFlowNet
from converters.zoo.flownetc import FLOWNETC_S_CONFIG, FlowNetC, FlowNetCConfig
from converters.zoo.neuflow import DEFAULT_CONFIG, NEUFLOW_LITE_CONFIG, NeuFlowConfig, NeuFlowNet
from converters.zoo.pwc import PWC_CONFIG, PWC_LITE_CONFIG, PWCConfig, PWCNet
from converters.zoo.rapid import RAPID_LITE_CONFIG, RapidConfig, RapidFlowNet
from edgeflow.errors import EdgeflowError, first_line

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclasses.dataclass(frozen=True)
class Weights:
    """What is known about one zoo entry's bundled weights (torchvision's ``Weights`` meta, the idea).

    ``file`` is under ``converters/zoo/weights/``; ``params`` the parameter count (tests check the
    file against it); ``metrics`` measured numbers with their units in the key; ``recipe`` the
    training configs that made the file, in order; ``card`` the model card. An entry without a
    record still picks up ``<name>.pt`` there, so freshly trained weights count.
    """

    file: str
    params: int | None = None
    metrics: dict = dataclasses.field(default_factory=dict)
    recipe: tuple = ()
    card: str | None = None

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / self.file


#: zoo name -> record of its bundled weights (docs/model_card_*.md hold the measurements).
WEIGHTS: dict[str, Weights] = {
    "pwc-lite": Weights(
        "pwc-lite.pt",
        params=1_414_640,
        metrics={"builtin_mean_epe_px": 1.35, "motorcycle_epe_px": 2.85},
        recipe=("converters/train/configs/pwc-lite.toml", "converters/train/configs/pwc-lite-finetune.toml"),
        card="docs/model_card_pwc_lite.md",
    ),
    "default": Weights(
        "default.pt",
        params=766_552,
        metrics={"unseen_mean_epe_px": 0.77, "builtin_mean_epe_px": 0.98, "motorcycle_epe_px": 2.24,
                 "unseen_mean_epe_px_network_alone": 1.40},
        recipe=("converters/train/configs/default.toml", "benchmarks/tune_refinement.py"),
        card="docs/model_card_default.md",
    ),
}

#: arch -> (model class, config class).
ARCHS: dict[str, tuple[type[FlowNetwork], type]] = {
    "pwc": (PWCNet, PWCConfig),
    "flownetc": (FlowNetC, FlowNetCConfig),
    "neuflow": (NeuFlowNet, NeuFlowConfig),
    "rapid": (RapidFlowNet, RapidConfig),
    "fastflow": (FastFlowNet, FastFlowConfig),
}


class RandomWeightsWarning(UserWarning):
    """A zoo model was requested pretrained but no bundled weights exist: it is randomly initialised."""


class ZooEntry(NamedTuple):
    name: str
    model_class: type[FlowNetwork]
    config: object

    @property
    def arch(self) -> str:
        return self.model_class.arch

    @property
    def record(self) -> Weights:
        """This entry's weights record (a bare ``<name>.pt`` one when none is written down)."""
        return WEIGHTS.get(self.name) or Weights(f"{self.name}.pt")

    @property
    def weights(self) -> Path | None:
        """The bundled checkpoint, or None; looked up on access so freshly trained weights count."""
        path = self.record.path
        return path if path.is_file() else None


MODELS: dict[str, ZooEntry] = {
    "pwc": ZooEntry("pwc", PWCNet, PWC_CONFIG),
    "pwc-lite": ZooEntry("pwc-lite", PWCNet, PWC_LITE_CONFIG),
    "flownetc-s": ZooEntry("flownetc-s", FlowNetC, FLOWNETC_S_CONFIG),
    # Issue 14 candidates for the edge default (docs/model_card_default.md has the measurements).
    "neuflow-lite": ZooEntry("neuflow-lite", NeuFlowNet, NEUFLOW_LITE_CONFIG),
    "rapid-lite": ZooEntry("rapid-lite", RapidFlowNet, RAPID_LITE_CONFIG),
    "fastflow-lite": ZooEntry("fastflow-lite", FastFlowNet, FASTFLOW_LITE_CONFIG),
    # The edge default chosen by measurement (issue 14): NeuFlow-style, 1/16 matching + 1/8
    # refinement, then Lucas-Kanade at 1/4 and 1/2 resolution (converters/zoo/refine.py).
    "default": ZooEntry("default", NeuFlowNet, DEFAULT_CONFIG),
}


def list_models() -> list[str]:
    return list(MODELS)


def config_from(arch: str, config=None):
    """A config object for ``arch`` from None (zoo default), a dataclass, or a plain dict."""
    if arch in MODELS:
        if config is None:
            return MODELS[arch].config
        arch = MODELS[arch].arch
    if arch not in ARCHS:
        known = ", ".join(sorted(set(ARCHS) | set(MODELS)))
        raise EdgeflowError(f"unknown arch {arch!r}; known: {known}")
    config_class = ARCHS[arch][1]
    if config is None:
        return config_class()
    if isinstance(config, config_class):
        return config
    if isinstance(config, dict):
        names = {field.name for field in dataclasses.fields(config_class)}
        unknown = sorted(set(config) - names)
        if unknown:
            raise EdgeflowError(f"config for arch {arch!r} has unknown keys {unknown}; expected a subset of {sorted(names)}")
        return config_class.from_dict(config)
    raise EdgeflowError(f"config for arch {arch!r} must be a {config_class.__name__} or a dict, got {type(config).__name__}")


def build_model(arch: str, config=None) -> FlowNetwork:
    """A randomly initialised model of ``arch`` (a family or a zoo name) with ``config``."""
    config = config_from(arch, config)
    family = MODELS[arch].arch if arch in MODELS else arch
    return ARCHS[family][0](config)


def get_model(name: str, pretrained: bool = True) -> FlowNetwork:
    """A zoo model; with ``pretrained`` its bundled weights, else (or if none) random init.

    Sets ``model.pretrained`` (bool) and ``model.zoo_name``; warns with RandomWeightsWarning when
    weights were asked for but none are bundled.
    """
    if name not in MODELS:
        raise EdgeflowError(f"unknown zoo model {name!r}; available: {', '.join(MODELS)}")
    entry = MODELS[name]
    weights = entry.weights if pretrained else None
    if weights is not None:
        model = load_weights(entry)
    else:
        model = entry.model_class(entry.config)
        model.pretrained = False
        if pretrained:
            warnings.warn(
                f"no bundled weights for {name!r} ({entry.record.path}); the model is randomly "
                "initialised and its flow is meaningless until trained",
                RandomWeightsWarning,
                stacklevel=2,
            )
    model.zoo_name = name
    return model


def load_weights(entry: ZooEntry) -> FlowNetwork:
    """The one function that reads a zoo entry's bundled weights (``get_model`` and
    ``converters.load`` both call it); our own files, read by torch's restricted ``weights_only``
    unpickler and checked like any user checkpoint (:func:`model_from_checkpoint`)."""
    path = entry.record.path
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # missing, truncated, not ours
        raise EdgeflowError(f"cannot read bundled weights {path}: {first_line(err)}; reinstall edgeflow-sdk") from None
    model = model_from_checkpoint(obj, path)
    if not isinstance(model, entry.model_class):
        raise EdgeflowError(f"bundled weights {path} hold arch {model.arch!r}, not {entry.arch!r}; reinstall edgeflow-sdk")
    model.zoo_name = entry.name
    return model


def model_from_checkpoint(obj, path) -> FlowNetwork:
    """The model (eval mode, ``pretrained = True``) an edgeflow checkpoint dict describes, or one
    EdgeflowError line saying what is wrong with it (``path`` names the file in messages)."""
    if not isinstance(obj, dict):
        raise EdgeflowError(f"{path} holds a {type(obj).__name__}, not a model; save it with converters.load.save_checkpoint")
    if "state_dict" not in obj or "arch" not in obj:
        if obj and all(isinstance(value, torch.Tensor) for value in obj.values()):
            raise EdgeflowError(
                f"{path} is a bare state_dict with no architecture; re-save it with "
                "converters.load.save_checkpoint(model, path, arch, config)"
            )
        raise EdgeflowError(f"{path} is not an edgeflow checkpoint (needs keys 'arch', 'config', 'state_dict')")
    arch, state_dict = obj["arch"], obj["state_dict"]
    if not isinstance(arch, str) or (arch not in ARCHS and arch not in MODELS):
        raise EdgeflowError(f"unknown arch {arch!r} in {path}; known: {', '.join(sorted(ARCHS))}")
    try:
        model = build_model(arch, obj.get("config"))
    except EdgeflowError as err:
        raise EdgeflowError(f"bad config in {path}: {err}") from None
    except (TypeError, ValueError) as err:
        raise EdgeflowError(f"bad config in {path}: {first_line(err)}") from None
    if not isinstance(state_dict, dict):
        raise EdgeflowError(f"'state_dict' in {path} is a {type(state_dict).__name__}, not a dict of tensors")
    _check_state_dict(model, state_dict, arch, path)
    model.load_state_dict(state_dict)
    model.eval()
    model.pretrained = True
    return model


def _check_state_dict(model: nn.Module, state_dict: dict, arch: str, path) -> None:
    """One readable line instead of load_state_dict's multi-line RuntimeError."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    mismatched = [
        f"{key} {tuple(state_dict[key].shape)} vs {tuple(value.shape)}"
        for key, value in expected.items()
        if key in state_dict and (not isinstance(state_dict[key], torch.Tensor) or state_dict[key].shape != value.shape)
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
        if items:
            more = f" (+{len(items) - 2} more)" if len(items) > 2 else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:2])}{more}")
    if problems:
        raise EdgeflowError(
            f"state_dict in {path} does not fit arch {arch!r} with its config: {'; '.join(problems)}"
        )


def correlation_attributes(model: nn.Module) -> list[dict]:
    """The distinct Correlation attribute sets ``model`` runs, as ONNX attribute dicts (all ints).

    Read from the model's :class:`converters.ops.Correlation` sub-modules, so it also works for
    any user module built from that layer (not for TorchScript / torch.export modules).
    """
    unique: list[dict] = []
    for module in model.modules():
        if isinstance(module, Correlation):
            attributes = module.attrs.as_onnx_attributes()
            if attributes not in unique:
                unique.append(attributes)
    return unique
