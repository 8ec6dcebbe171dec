"""A Conformer over the raw montage: a depthwise-separable convolution stem, then Conformer
blocks (Gulati et al. 2020), the 1D design of the 3rd place HMS solution (a depthwise-conv
stem into Squeezeformer blocks, Kim et al. 2022, which are Conformer blocks reordered).

The stem cuts time by ``2 ** stem_layers`` (a 50 s window at 40 Hz: 2000 -> 125 steps) so that
self-attention over the whole window is cheap; each block then mixes the window globally
(attention) and locally (a depthwise convolution). Keras core layers only, so the model saves,
reloads and exports to ONNX like every other.
"""

from __future__ import annotations

import keras
from keras import layers

from hmsbrain.models.base import register_model


def _stem(x: keras.KerasTensor, filters: int, kernel: int, n_layers: int) -> keras.KerasTensor:
    """Depthwise-separable convolutions, each halving time: a depthwise kernel per channel
    (the temporal filter), a pointwise mix of channels, batch norm, swish."""
    x = layers.Conv1D(filters, 1, name="conf_in")(x)
    for i in range(n_layers):
        x = layers.DepthwiseConv1D(kernel, strides=2, padding="same", name=f"conf_stem{i}_dw")(x)
        x = layers.Conv1D(filters, 1, name=f"conf_stem{i}_pw")(x)
        x = layers.BatchNormalization(name=f"conf_stem{i}_bn")(x)
        x = layers.Activation("swish", name=f"conf_stem{i}_act")(x)
    return x


def _feed_forward(
    x: keras.KerasTensor, filters: int, dropout: float, name: str
) -> keras.KerasTensor:
    """Half-step feed-forward module (the Conformer's "macaron" pair, one each side)."""
    y = layers.LayerNormalization(name=f"{name}_ln")(x)
    y = layers.Dense(4 * filters, activation="swish", name=f"{name}_up")(y)
    y = layers.Dropout(dropout, name=f"{name}_drop")(y)
    y = layers.Dense(filters, name=f"{name}_down")(y)
    y = layers.Rescaling(0.5, name=f"{name}_half")(y)
    return layers.Add(name=f"{name}_res")([x, y])


def _conformer_block(
    x: keras.KerasTensor, filters: int, heads: int, kernel: int, dropout: float, name: str
) -> keras.KerasTensor:
    x = _feed_forward(x, filters, dropout, f"{name}_ff1")
    # Self-attention over the whole window: where in 50 s a discharge recurs.
    y = layers.LayerNormalization(name=f"{name}_att_ln")(x)
    y = layers.MultiHeadAttention(heads, filters // heads, dropout=dropout, name=f"{name}_att")(
        y, y
    )
    x = layers.Add(name=f"{name}_att_res")([x, y])
    # Convolution module: pointwise with a gated linear unit, depthwise in time, pointwise.
    y = layers.LayerNormalization(name=f"{name}_conv_ln")(x)
    value = layers.Conv1D(filters, 1, name=f"{name}_conv_value")(y)
    gate = layers.Conv1D(filters, 1, activation="sigmoid", name=f"{name}_conv_gate")(y)
    y = layers.Multiply(name=f"{name}_conv_glu")([value, gate])
    y = layers.DepthwiseConv1D(kernel, padding="same", name=f"{name}_conv_dw")(y)
    y = layers.BatchNormalization(name=f"{name}_conv_bn")(y)
    y = layers.Activation("swish", name=f"{name}_conv_act")(y)
    y = layers.Conv1D(filters, 1, name=f"{name}_conv_out")(y)
    y = layers.Dropout(dropout, name=f"{name}_conv_drop")(y)
    x = layers.Add(name=f"{name}_conv_res")([x, y])
    x = _feed_forward(x, filters, dropout, f"{name}_ff2")
    return layers.LayerNormalization(name=f"{name}_out_ln")(x)


def conformer_features(
    x: keras.KerasTensor,
    *,
    filters: int = 64,
    stem_layers: int = 4,
    stem_kernel: int = 7,
    blocks: int = 3,
    heads: int = 4,
    kernel: int = 15,
    dropout: float = 0.1,
) -> keras.KerasTensor:
    """Conformer over the raw montage ``(time, channels)`` -> pooled features (mean and max
    over time). The keyword arguments are the ``model.conformer`` section
    (:class:`hmsbrain.config.ConformerConfig` documents them)."""
    if filters % heads:
        raise ValueError(
            f"model.conformer.filters={filters} must be a multiple of model.conformer.heads="
            f"{heads} (each head gets filters / heads dimensions)"
        )
    x = _stem(x, filters, stem_kernel, stem_layers)
    for b in range(blocks):
        x = _conformer_block(x, filters, heads, kernel, dropout, f"conf_b{b}")
    return layers.Concatenate(name="conf_features")(
        [layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)]
    )


@register_model("conformer", reads="raw")
def conformer_model(
    raw: keras.KerasTensor, sample_rate: float, **section: object
) -> keras.KerasTensor:
    """The Conformer as a model of its own; its kernels are counted in samples of the raw
    branch's rate, so ``sample_rate`` is not used."""
    del sample_rate
    return conformer_features(raw, **section)
