"""Zoo names -> (model class, config, bundled weights) and the builders that use them.

Two vocabularies meet here:

* a *zoo name* ("pwc", "pwc-lite", "flownetc-s") is a ready-made model a user asks for;
* an *arch* ("pwc", "flownetc") is a model family, i.e. a class; checkpoints store the arch
  plus the full config, so any configuration of a family round-trips, not only the zoo ones.

Bundled weights live in ``edgeflow/data/models/<name>.pt`` in the edgeflow checkpoint format
(see :mod:`converters.load`). A zoo model without them is returned randomly initialised, with
``model.pretrained = False`` and a :class:`RandomWeightsWarning`, so callers can tell users the
output is meaningless until the model is trained.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import NamedTuple

from torch import nn

import edgeflow
from converters.ops import Correlation
from converters.zoo.base import FlowModel
from converters.zoo.fastflow import FASTFLOW_LITE_CONFIG, FastFlowConfig, FastFlowNet
from converters.zoo.flownetc import FLOWNETC_S_CONFIG, FlowNetC, FlowNetCConfig
from converters.zoo.neuflow import NEUFLOW_LITE_CONFIG, NeuFlowConfig, NeuFlowNet
from converters.zoo.pwc import PWC_CONFIG, PWC_LITE_CONFIG, PWCConfig, PWCNet
from converters.zoo.rapid import RAPID_LITE_CONFIG, RapidConfig, RapidFlowNet
from edgeflow.errors import EdgeflowError

WEIGHTS_DIR = Path(edgeflow.__file__).resolve().parent / "data" / "models"

#: arch -> (model class, config class).
ARCHS: dict[str, tuple[type[FlowModel], type]] = {
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
    model_class: type[FlowModel]
    config: object

    @property
    def arch(self) -> str:
        return self.model_class.arch

    @property
    def weights(self) -> Path | None:
        """The bundled checkpoint, or None; looked up on access so freshly trained weights count."""
        path = WEIGHTS_DIR / f"{self.name}.pt"
        return path if path.is_file() else None


MODELS: dict[str, ZooEntry] = {
    "pwc": ZooEntry("pwc", PWCNet, PWC_CONFIG),
    "pwc-lite": ZooEntry("pwc-lite", PWCNet, PWC_LITE_CONFIG),
    "flownetc-s": ZooEntry("flownetc-s", FlowNetC, FLOWNETC_S_CONFIG),
    # Issue 14 candidates for the edge default (docs/model_card_default.md has the measurements).
    "neuflow-lite": ZooEntry("neuflow-lite", NeuFlowNet, NEUFLOW_LITE_CONFIG),
    "rapid-lite": ZooEntry("rapid-lite", RapidFlowNet, RAPID_LITE_CONFIG),
    "fastflow-lite": ZooEntry("fastflow-lite", FastFlowNet, FASTFLOW_LITE_CONFIG),
    # The edge default chosen by measurement (issue 14): NeuFlow-style, 1/16 matching + 1/8 refinement.
    "default": ZooEntry("default", NeuFlowNet, NEUFLOW_LITE_CONFIG),
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


def build_model(arch: str, config=None) -> FlowModel:
    """A randomly initialised model of ``arch`` (a family or a zoo name) with ``config``."""
    config = config_from(arch, config)
    family = MODELS[arch].arch if arch in MODELS else arch
    return ARCHS[family][0](config)


def get_model(name: str, pretrained: bool = True) -> FlowModel:
    """A zoo model; with ``pretrained`` its bundled weights, else (or if none) random init.

    Sets ``model.pretrained`` (bool) and ``model.zoo_name``; warns with RandomWeightsWarning when
    weights were asked for but none are bundled.
    """
    if name not in MODELS:
        raise EdgeflowError(f"unknown zoo model {name!r}; available: {', '.join(MODELS)}")
    entry = MODELS[name]
    weights = entry.weights if pretrained else None
    if weights is not None:
        from converters.load import load_model  # load.py imports this module; import late.

        model = load_model(str(weights)).module
        if not isinstance(model, entry.model_class):
            raise EdgeflowError(f"bundled weights {weights} are not a {entry.arch!r} model; reinstall edgeflow")
        model.pretrained = True
    else:
        model = entry.model_class(entry.config)
        model.pretrained = False
        if pretrained:
            warnings.warn(
                f"no bundled weights for {name!r} ({WEIGHTS_DIR / (name + '.pt')}); the model is randomly "
                "initialised and its flow is meaningless until trained",
                RandomWeightsWarning,
                stacklevel=2,
            )
    model.zoo_name = name
    return model


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
