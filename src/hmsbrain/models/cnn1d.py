"""A plain 1D convolutional stack over the raw signal, for windows of one or a few channels.

EEGNet and ShallowConvNet are built around spatial filters over many electrodes; with one or two
channels (an intracranial contact, a sleep derivation, a consumer headset's forehead pair) that
bias has nothing to work on, and what separates the classes is the waveform itself: spikes,
rhythmic discharges, sharp transients. This stack learns the waveform: blocks of a ``kernel``-
sample convolution over every channel at once, batch norm, ReLU and a 2x max pool, the filters
doubling every second block (``filters``, ``2 * filters``, ...), then global average and max
pooling over time, so any window length builds. Windows are the crops of
``preprocess.crop_seconds``, and an epoch is predicted as the mean over its crops (the project's
cropped decoding), as the conv stacks of the seizure-detection literature are.
"""

from __future__ import annotations

import keras
from keras import layers

from hmsbrain.models.base import register_model


@register_model("cnn1d", reads="raw")
def cnn1d_features(
    raw: keras.KerasTensor,
    sample_rate: float,
    *,
    filters: int = 32,
    blocks: int = 6,
    kernel: int = 7,
    dropout: float = 0.1,
) -> keras.KerasTensor:
    """The stack over ``raw`` ``(batch, time, channels)`` -> pooled features. Kernels are in
    samples (the waveform's shape at the recipe's rate, not a frequency band), and a block whose
    input is down to one sample stops pooling. ``sample_rate`` is unused: the registry passes it
    to every raw model."""
    del sample_rate
    x, length = raw, raw.shape[1]
    if length is None:
        raise ValueError(f"cnn1d needs a static time axis, got {raw.shape}")
    for block in range(blocks):
        width = filters * 2 ** (block // 2)
        x = layers.Conv1D(width, kernel, padding="same", use_bias=False, name=f"cnn1d_conv{block}")(
            x
        )
        x = layers.BatchNormalization(name=f"cnn1d_bn{block}")(x)
        x = layers.Activation("relu", name=f"cnn1d_relu{block}")(x)
        if length > 1:
            x = layers.MaxPooling1D(2, padding="same", name=f"cnn1d_pool{block}")(x)
            length = -(-length // 2)
        if dropout:
            x = layers.SpatialDropout1D(dropout, name=f"cnn1d_dropout{block}")(x)
    pooled = [
        layers.GlobalAveragePooling1D(name="cnn1d_mean")(x),
        layers.GlobalMaxPooling1D(name="cnn1d_max")(x),
    ]
    return layers.Concatenate(name="cnn1d_features")(pooled)
