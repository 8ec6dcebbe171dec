"""Every model by name, and the functions that make a classifier from the config.

The models register themselves (:mod:`hmsbrain.models.base`); this module imports them all, so
``MODELS`` is complete here. Image backbones (:mod:`hmsbrain.models.imagenet`) read the
spectrogram image, joined with the WaveNet branch over the raw montage when
``model.use_wavenet`` is on (the HMS hybrid). Raw-signal models read the montage alone:
``wavenet``, ``conformer`` (a depthwise-separable stem into Conformer blocks), ``eegnet``
(Lawhern et al. 2018) and ``shallow`` (Schirrmeister et al. 2017) are trained; ``bandpower``
is fitted (:mod:`hmsbrain.models.bandpower`).

Every model ends in a ``logits`` layer and a float32 softmax ``probs``, is built from Keras core
layers and ``keras.applications`` only, and so reloads with plain ``keras.saving.load_model``
(the Kaggle kernel included) and exports to ONNX without custom converters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from hmsbrain.config import ModelConfig, PreprocessConfig, model_kwargs
from hmsbrain.core.inputs import (
    IMAGE_INPUT,
    KAGGLE_INPUT,
    MONTAGE_INPUT,
    RAW_INPUT,
    WAVENET,
    model_inputs,
)
from hmsbrain.models import bandpower, cnn1d, conformer, eegnet, imagenet, shallow, wavenet
from hmsbrain.models.base import MODELS, ModelSpec, all_layers
from hmsbrain.models.imagenet import build_backbone
from hmsbrain.models.spectrogram import mel_image

# The modules whose import registers their models: a new model's module is added here.
MODEL_MODULES = (imagenet, wavenet, conformer, eegnet, shallow, cnn1d, bandpower)


def model_spec(name: str) -> ModelSpec:
    """The registered model ``name``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {registered()}")
    return MODELS[name]


def registered() -> list[str]:
    """Every registered model's name (every valid ``--backbone``), image backbones first."""
    return [n for n, s in MODELS.items() if s.reads == "image"] + [
        n for n, s in MODELS.items() if s.reads == "raw"
    ]


@dataclass(frozen=True)
class GraphImage:
    """What a model that computes its own image needs (``preprocess.spectrogram=graph``): the
    recipe, the montage's channel groups (one tile each), and its two inputs' shapes."""

    cfg: PreprocessConfig
    groups: tuple[tuple[int, ...], ...]
    montage_shape: tuple[int, ...]  # (channels, samples)
    kaggle_shape: tuple[int, ...] | None  # (H, W) grey side tiles, where the data has them


def build_model(
    cfg: ModelConfig,
    image_shape: tuple[int, ...] | None,
    raw_shape: tuple[int, ...] | None,
    n_classes: int,
    sample_rate: float = 0.0,
    raw_stats: tuple[np.ndarray, np.ndarray] | None = None,
    graph: GraphImage | None = None,
) -> keras.Model:
    """The network of ``cfg.backbone`` ending in a float32 ``n_classes``-way softmax.

    The shape of an input the model does not read may be None. ``sample_rate`` is the raw
    input's rate (EEGNet and ShallowConvNet size their kernels in seconds). ``raw_stats``
    (per-channel mean and variance of the training folds) standardise the raw input inside the
    model, so prediction and export apply exactly what training saw. With ``graph`` the model
    reads the clean montage and computes the image itself (:mod:`hmsbrain.models.spectrogram`),
    the same image the CPU pipeline would feed it."""
    spec = model_spec(cfg.backbone)
    if spec.kind == "fitted":
        raise ValueError(f"{spec.name} is fitted, not built: see fit_model")
    names = model_inputs(cfg, graph.cfg if graph is not None else None)
    inputs: dict[str, keras.KerasTensor] = {}
    features = []
    image = _image_input(names, inputs, image_shape, graph)
    if image is not None:
        backbone = build_backbone(cfg, tuple(image.shape[1:]))
        features.append(layers.GlobalAveragePooling2D(name="image_pool")(backbone(image)))
    if RAW_INPUT in names:
        inputs[RAW_INPUT] = keras.Input(raw_shape, name=RAW_INPUT)
        raw = inputs[RAW_INPUT]
        if raw_stats is not None:
            mean, var = raw_stats
            raw = layers.Normalization(mean=mean, variance=var, name="raw_standardize")(raw)
        # A raw model alone, or WaveNet as an image model's 1D branch; each gets its section.
        branch = spec if spec.reads == "raw" else MODELS[WAVENET]
        features.append(branch.build(raw, sample_rate, **model_kwargs(cfg, branch.name)))
    x = features[0] if len(features) == 1 else layers.Concatenate(name="joint")(features)
    x = layers.Dropout(cfg.dropout, name="head_dropout")(x)
    constraint = keras.constraints.MaxNorm(spec.head_max_norm) if spec.head_max_norm else None
    head = layers.Dense(n_classes, name="logits", dtype="float32", kernel_constraint=constraint)
    # Softmax in float32 under mixed precision: float16 probabilities lose the small votes.
    probs = layers.Activation("softmax", name="probs", dtype="float32")(head(x))
    model = keras.Model([inputs[n] for n in names], probs, name=cfg.backbone)
    if cfg.bn_momentum > 0:
        # Keras' 0.99 needs hundreds of steps before the moving statistics used at validation
        # match the batches; a short run from scratch has fewer, so inference-mode outputs lag.
        for layer in all_layers(model):
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = cfg.bn_momentum
    return model


def _image_input(
    names: tuple[str, ...],
    inputs: dict[str, keras.KerasTensor],
    image_shape: tuple[int, ...] | None,
    graph: GraphImage | None,
) -> keras.KerasTensor | None:
    """The image the backbone reads: an input, or computed in the graph from the montage
    (with the side tiles to its right); None for a raw-signal model. Adds the inputs it makes
    to ``inputs``."""
    if IMAGE_INPUT in names:
        inputs[IMAGE_INPUT] = keras.Input(image_shape, name=IMAGE_INPUT)
        return inputs[IMAGE_INPUT]
    if MONTAGE_INPUT not in names:
        return None
    assert graph is not None
    inputs[MONTAGE_INPUT] = keras.Input(graph.montage_shape, name=MONTAGE_INPUT)
    image = mel_image(inputs[MONTAGE_INPUT], graph.cfg, graph.groups, graph.cfg.sample_rate)
    if KAGGLE_INPUT in names:
        inputs[KAGGLE_INPUT] = keras.Input(graph.kaggle_shape, name=KAGGLE_INPUT)
        side = layers.Reshape((*graph.kaggle_shape, 1), name="kaggle_grey")(inputs[KAGGLE_INPUT])
        side = layers.Concatenate(axis=-1, name="kaggle_rgb")([side, side, side])
        image = layers.Concatenate(axis=2, name="image")([image, side])
    return image


def fit_model(
    cfg: ModelConfig,
    chunks: Iterable[np.ndarray],
    targets: np.ndarray,
    raw_shape: tuple[int, ...],
    sample_rate: float,
    weights: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> keras.Model:
    """The fitted model of ``cfg.backbone`` (kind ``fitted``), fitted on raw inputs given as
    row ``chunks`` with their ``targets`` (and optional sample ``weights`` and subject
    ``groups`` for its inner folds), as a Keras model of the ``raw`` input."""
    spec = model_spec(cfg.backbone)
    if spec.kind != "fitted":
        raise ValueError(f"{spec.name} is trained, not fitted: see build_model")
    return spec.build(
        chunks,
        targets,
        raw_shape=raw_shape,
        sample_rate=sample_rate,
        weights=weights,
        groups=groups,
        **model_kwargs(cfg, spec.name),
    )
