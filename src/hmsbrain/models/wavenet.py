"""The WaveNet branch: dilated, gated 1D convolutions over the raw montage."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from hmsbrain.models.base import register_model


def wavenet_features(
    x: keras.KerasTensor,
    *,
    filters: int = 32,
    dilations: Sequence[int] = (1, 2, 4, 8),
    blocks: int = 3,
) -> keras.KerasTensor:
    """WaveNet over the raw montage ``(time, channels)`` -> pooled features.

    The keyword arguments are the ``model.wavenet`` section
    (:class:`hmsbrain.config.WaveNetConfig` documents them).

    Each block is a stack of dilated, non-causal ("same"-padded) convolutions with gated
    activations (tanh * sigmoid) and residual connections, then 4x average pooling in time, so
    later blocks see seconds of context at a few convolutions' cost.
    """
    f = filters
    x = layers.Conv1D(f, 1, name="wave_in")(x)
    for b in range(blocks):
        for d in dilations:
            name = f"wave_b{b}_d{d}"
            tanh = layers.Conv1D(
                f, 3, padding="same", dilation_rate=d, activation="tanh", name=f"{name}_tanh"
            )(x)
            gate = layers.Conv1D(
                f, 3, padding="same", dilation_rate=d, activation="sigmoid", name=f"{name}_gate"
            )(x)
            gated = layers.Multiply(name=f"{name}_mul")([tanh, gate])
            x = layers.Add(name=f"{name}_res")([x, layers.Conv1D(f, 1, name=f"{name}_proj")(gated)])
        x = layers.BatchNormalization(name=f"wave_b{b}_bn")(x)
        x = layers.AveragePooling1D(4, padding="same", name=f"wave_b{b}_pool")(x)
    return layers.Concatenate(name="wave_features")(
        [layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)]
    )


@register_model("wavenet", reads="raw")
def wavenet_model(
    raw: keras.KerasTensor, sample_rate: float, **section: object
) -> keras.KerasTensor:
    """WaveNet as a model of its own: its features do not depend on the rate (its kernels are
    counted in samples), so ``sample_rate`` is not used."""
    del sample_rate
    return wavenet_features(raw, **section)
