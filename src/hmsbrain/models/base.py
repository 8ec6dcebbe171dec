"""The model registry's entries: what each model is, which input it reads, how it is made.

Every model registers itself in its own module with :func:`register_model`;
:mod:`hmsbrain.models.registry` imports those modules, so the registry is complete wherever a
model is built. A model is one of two kinds:

- ``gradient``: a network trained by gradient descent. An ``image`` model's ``build(shape,
  weights, **section)`` returns an ImageNet-style backbone (features, no top) over the
  spectrogram image; a ``raw`` model's ``build(raw, sample_rate, **section)`` returns a
  features tensor over the raw montage ``(time, channels)``.
- ``fitted``: a classical model fitted in closed form. ``build(chunks, targets, raw_shape,
  sample_rate, weights, groups, **section)`` fits it on the raw inputs (an iterable of row
  chunks, so memory stays bounded) and returns it as a Keras model of the ``raw`` input.

``section`` is the model's own ``model.<name>`` config section, as keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import keras

Reads = Literal["image", "raw"]
Kind = Literal["gradient", "fitted"]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model."""

    name: str
    reads: Reads  # image models also read the raw montage when model.use_wavenet is on
    kind: Kind
    build: Callable[..., Any]
    head_max_norm: float | None = None  # a max-norm constraint on the classifier's kernel


MODELS: dict[str, ModelSpec] = {}


def register_model(
    name: str, *, reads: Reads, kind: Kind = "gradient", head_max_norm: float | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated builder as model ``name`` (see the module doc for its signature)."""

    def wrap(build: Callable[..., Any]) -> Callable[..., Any]:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = ModelSpec(name, reads, kind, build, head_max_norm)
        return build

    return wrap


def all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer of ``model``, nested models' included (an ImageNet backbone is one)."""
    found = []
    for layer in model.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found += all_layers(layer)
    return found
