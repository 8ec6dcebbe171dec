"""Every model by name, and the one function that builds a classifier from the config.

Image backbones (:mod:`hmsbrain.models.imagenet`) read the spectrogram image, joined with the
WaveNet branch over the raw montage when ``model.use_wavenet`` is on (the HMS hybrid). The
raw-signal models read the montage alone: ``wavenet``, ``eegnet`` (Lawhern et al. 2018) and
``shallow`` (Schirrmeister et al. 2017) for small EEG datasets; ``bandpower`` is the fitted
classical baseline (:mod:`hmsbrain.models.bandpower`), built from its fit instead of here.

Every model ends in a ``logits`` layer and a float32 softmax ``probs``, is built from Keras core
layers and ``keras.applications`` only, and so reloads with plain ``keras.saving.load_model``
(the Kaggle kernel included) and exports to ONNX without custom converters.
"""

from __future__ import annotations

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
from hmsbrain.models.eegnet import eegnet_features
from hmsbrain.models.imagenet import build_backbone
from hmsbrain.models.shallow import shallow_features
from hmsbrain.models.spectrogram import mel_image
from hmsbrain.models.wavenet import wavenet_features

BANDPOWER = "bandpower"


@dataclass(frozen=True)
class GraphImage:
    """What a model that computes its own image needs (``preprocess.spectrogram=graph``): the
    recipe, the montage's channel groups (one tile each), and its two inputs' shapes."""

    cfg: PreprocessConfig
    groups: tuple[tuple[int, ...], ...]
    montage_shape: tuple[int, ...]  # (channels, samples)
    kaggle_shape: tuple[int, ...] | None  # (H, W) grey side tiles, HMS only


# The raw-signal models read at a sample rate; WaveNet (alone or in a hybrid) is built apart.
RAW_MODELS = {"eegnet": eegnet_features, "shallow": shallow_features}


def build_model(
    cfg: ModelConfig,
    image_shape: tuple[int, ...] | None,
    raw_shape: tuple[int, ...] | None,
    n_classes: int,
    sample_rate: float = 0.0,
    raw_stats: tuple[np.ndarray, np.ndarray] | None = None,
    graph: GraphImage | None = None,
) -> keras.Model:
    """The classifier of ``cfg.backbone`` ending in a float32 ``n_classes``-way softmax.

    The shape of an input the model does not read may be None. ``sample_rate`` is the raw
    input's rate (EEGNet and ShallowConvNet size their kernels in seconds). ``raw_stats``
    (per-channel mean and variance of the training folds) standardise the raw input inside the
    model, so prediction and export apply exactly what training saw. With ``graph`` the model
    reads the clean montage and computes the image itself (:mod:`hmsbrain.models.spectrogram`),
    the same image the CPU pipeline would feed it."""
    if cfg.backbone == BANDPOWER:
        raise ValueError("the band-power baseline is fitted, not built: see models.bandpower")
    names = model_inputs(cfg, graph.cfg if graph is not None else None)
    inputs, features = {}, []
    image = None
    if IMAGE_INPUT in names:
        image = inputs[IMAGE_INPUT] = keras.Input(image_shape, name=IMAGE_INPUT)
    elif MONTAGE_INPUT in names:
        assert graph is not None
        inputs[MONTAGE_INPUT] = keras.Input(graph.montage_shape, name=MONTAGE_INPUT)
        image = mel_image(inputs[MONTAGE_INPUT], graph.cfg, graph.groups, graph.cfg.sample_rate)
        if KAGGLE_INPUT in names:
            inputs[KAGGLE_INPUT] = keras.Input(graph.kaggle_shape, name=KAGGLE_INPUT)
            side = layers.Reshape((*graph.kaggle_shape, 1), name="kaggle_grey")(
                inputs[KAGGLE_INPUT]
            )
            side = layers.Concatenate(axis=-1, name="kaggle_rgb")([side, side, side])
            image = layers.Concatenate(axis=2, name="image")([image, side])
    if image is not None:
        backbone = build_backbone(cfg, tuple(image.shape[1:]))
        features.append(layers.GlobalAveragePooling2D(name="image_pool")(backbone(image)))
    if RAW_INPUT in names:
        inputs[RAW_INPUT] = keras.Input(raw_shape, name=RAW_INPUT)
        raw = inputs[RAW_INPUT]
        if raw_stats is not None:
            mean, var = raw_stats
            raw = layers.Normalization(mean=mean, variance=var, name="raw_standardize")(raw)
        # WaveNet alone or as an image model's 1D branch; each builder gets its own section.
        branch = cfg.backbone if cfg.backbone in RAW_MODELS else WAVENET
        if branch == WAVENET:
            features.append(wavenet_features(raw, **model_kwargs(cfg, WAVENET)))
        else:
            features.append(RAW_MODELS[branch](raw, sample_rate, **model_kwargs(cfg, branch)))
    x = features[0] if len(features) == 1 else layers.Concatenate(name="joint")(features)
    x = layers.Dropout(cfg.dropout, name="head_dropout")(x)
    # EEGNet's published head limits its weight norm (0.25), as part of its regularisation.
    constraint = keras.constraints.MaxNorm(0.25) if cfg.backbone == "eegnet" else None
    logits = layers.Dense(n_classes, name="logits", dtype="float32", kernel_constraint=constraint)(
        x
    )
    # Softmax in float32 under mixed precision: float16 probabilities lose the small votes.
    probs = layers.Activation("softmax", name="probs", dtype="float32")(logits)
    model = keras.Model([inputs[n] for n in names], probs, name=f"hms_{cfg.backbone}")
    if cfg.bn_momentum > 0:
        # Keras' 0.99 needs hundreds of steps before the moving statistics used at validation
        # match the batches; a short run from scratch has fewer, so inference-mode outputs lag.
        for layer in all_layers(model):
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = cfg.bn_momentum
    return model


def all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer of ``model``, nested models' included (an ImageNet backbone is one)."""
    found = []
    for layer in model.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found += all_layers(layer)
    return found
