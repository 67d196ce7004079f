"""What tests/test_zoo.py (PWC family) and tests/test_zoo_edge.py (issue 14's candidates) both need:
seeded frame pairs, the zoo models built once per module, and one forward whole and split."""

from __future__ import annotations

import warnings

import torch

from converters.zoo import RandomWeightsWarning, get_model


def frames(height, width, batch=1, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(batch, 3, height, width, generator=gen) * 255 for _ in range(2))


def load_models(names, **kwargs) -> dict:
    """``{name: model.eval()}``; zoo entries without shipped weights warn, which these tests expect."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return {name: get_model(name, **kwargs).eval() for name in names}


def whole_and_split(model, f1, f2):
    """(flow of the whole model, flow of decoder(encoder(f1), encoder(f2))): feature caching needs them equal."""
    with torch.no_grad():
        return model(f1, f2), model.decoder(model.encoder(f1), model.encoder(f2))
