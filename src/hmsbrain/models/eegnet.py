"""EEGNet (Lawhern et al. 2018, "EEGNet: a compact convolutional neural network for EEG-based
brain-computer interfaces", J. Neural Eng. 15 056013), the EEGNet-F1,D variant (v4 of the
arXiv paper, braindecode's ``EEGNetv4``), in Keras core layers.

Block 1 mirrors the classical filter-bank CSP pipeline: a temporal convolution learns ``F1``
band-pass filters (the same FIR filter on every electrode), then a depthwise convolution that
spans all electrodes learns ``D`` spatial filters per band, with no mixing across bands so each
spatial pattern stays tied to one frequency band. Block 2 is a separable convolution: a short
depthwise temporal kernel summarises each map over ~0.5 s, and a pointwise convolution mixes the
maps into ``F2`` features. Batch norm, ELU, average pooling and dropout follow each block. The
model has ~2k parameters, which is the point: it is meant for small EEG data sets.

Layout. The input is ``(time, channels)``, so it is viewed as a ``(time, channels, 1)`` image and
every kernel of the paper is transposed: the paper's ``(1, 64)`` temporal kernel is ``(64, 1)``
here, its ``(C, 1)`` spatial kernel is ``(1, C)``, its ``(1, 4)`` pool is ``(4, 1)``. This avoids a
transpose in the graph and is the same arithmetic.

Choices:

* Kernel lengths are set in seconds and converted at ``sample_rate``: the paper's 64-sample
  temporal kernel is half a second at 128 Hz (frequency resolution down to 2 Hz), and its
  16-sample separable kernel is half a second at the 32 Hz reached after the first pool. Both
  scale with ``sample_rate / 128``; the pools stay 4 and 8 as in the paper, so the separable
  kernel keeps covering 0.5 s at any rate.
* Convolutions have no bias (the batch norm that follows has one), as in the paper.
* The spatial (depthwise) kernel has a max-norm 1 constraint, taken over the electrodes of each
  spatial filter, as in the paper. The classifier's max-norm 0.25 constraint belongs to the
  dense head, which the caller builds.
* Pools use ``"same"`` padding: the paper's inputs are multiples of 32 samples, for which this is
  identical to its ``"valid"`` pools, but on other lengths ``"valid"`` would silently drop up to
  ``pool - 1`` pooled steps at the end. When the time axis is shorter than a pool, the pool
  shrinks to the axis length (down to 1), so every input length builds.
"""

from __future__ import annotations

import keras
from keras import constraints, layers

from hmsbrain.models.base import register_model

PAPER_RATE = 128.0  # Hz at which the paper's sample counts (kernel 64, separable 16) are given
SEPARABLE_KERNEL = 16  # samples at PAPER_RATE
POOL_1 = 4
POOL_2 = 8
SPATIAL_MAX_NORM = 1.0


def depthwise_glorot(n_chans: int, f1: int, d: int) -> keras.initializers.Initializer:
    """Glorot-uniform over the fans of the depthwise ``(1, C, F1, D)`` kernel: ``F1 * C`` in,
    ``D * C`` out.

    EinsumDense's own Glorot takes its fans from the einsum's axes (``C`` in, ``F1 * D`` out),
    which at 64 electrodes draws spatial filters 2.8x larger; on demo:trials64 that cost 0.02-0.03
    of balanced accuracy (docs/results.md). With the same seed this draws the depthwise layer's
    weights."""
    limit = (6.0 / (f1 * n_chans + d * n_chans)) ** 0.5
    return keras.initializers.RandomUniform(-limit, limit)


def scaled_length(samples_at_paper_rate: float, sample_rate: float) -> int:
    """A kernel length of the paper (given at 128 Hz) in samples at ``sample_rate``, >= 1."""
    return max(1, round(samples_at_paper_rate * sample_rate / PAPER_RATE))


def shrunk_pool(pool: int, length: int) -> int:
    """``pool``, or the axis length when that is shorter, so the pool always has an output."""
    return max(1, min(pool, length))


# The published head limits its kernel's norm (0.25), as part of EEGNet's regularisation.
@register_model("eegnet", reads="raw", head_max_norm=0.25)
def eegnet_features(
    raw: keras.KerasTensor,
    sample_rate: float,
    *,
    f1: int = 8,
    d: int = 2,
    f2: int = 16,
    kernel_seconds: float = 0.5,
    dropout: float = 0.25,
    pool1_stride: int = 0,
) -> keras.KerasTensor:
    """EEGNet's two blocks over ``raw`` of shape ``(batch, time, channels)`` -> flat features.

    The keyword arguments are the ``model.eegnet`` section (:class:`hmsbrain.config.EEGNetConfig`
    documents them). The caller adds the classifier; the paper's is a dense softmax layer whose
    kernel has a max-norm 0.25 constraint (``keras.constraints.MaxNorm(0.25)``), applied by the
    caller, as is ``model.bn_momentum`` (to every batch norm of the model).
    """
    n_time, n_chans = raw.shape[1], raw.shape[2]
    if n_time is None or n_chans is None:
        raise ValueError(f"EEGNet needs a static (time, channels) input shape, got {raw.shape}")
    kernel = max(1, round(kernel_seconds * sample_rate))
    separable = scaled_length(SEPARABLE_KERNEL, sample_rate)
    pool_1 = shrunk_pool(POOL_1, n_time)
    stride_1 = pool1_stride or pool_1
    pool_2 = shrunk_pool(POOL_2, -(-n_time // stride_1))  # length after the first "same" pool

    x = layers.Reshape((n_time, n_chans, 1), name="eegnet_image")(raw)
    # Block 1: temporal filter bank, then per-band spatial filters.
    x = layers.Conv2D(f1, (kernel, 1), padding="same", use_bias=False, name="eegnet_temporal")(x)
    x = layers.BatchNormalization(name="eegnet_temporal_bn")(x)
    # The paper's depthwise (1, C) convolution with depth multiplier D, written as the same sum
    # over electrodes in an einsum (`python src/benchmark.py eegnet` times the two). Output
    # channel f * D + d is band f's spatial filter d, as in the depthwise layout; axis=0: each
    # filter's norm over electrodes.
    x = layers.EinsumDense(
        "btcf,cfd->btfd",
        output_shape=(n_time, f1, d),
        kernel_initializer=depthwise_glorot(n_chans, f1, d),
        kernel_constraint=constraints.MaxNorm(SPATIAL_MAX_NORM, axis=0),
        name="eegnet_spatial",
    )(x)
    x = layers.Reshape((n_time, 1, f1 * d), name="eegnet_spatial_maps")(x)
    x = layers.BatchNormalization(name="eegnet_spatial_bn")(x)
    x = layers.Activation("elu", name="eegnet_elu_1")(x)
    x = layers.AveragePooling2D(
        (pool_1, 1), strides=(stride_1, 1), padding="same", name="eegnet_pool_1"
    )(x)
    x = layers.Dropout(dropout, name="eegnet_dropout_1")(x)
    # Block 2: per-map temporal summary, then pointwise mixing of the F1 * D maps.
    x = layers.SeparableConv2D(
        f2, (separable, 1), padding="same", use_bias=False, name="eegnet_separable"
    )(x)
    x = layers.BatchNormalization(name="eegnet_separable_bn")(x)
    x = layers.Activation("elu", name="eegnet_elu_2")(x)
    x = layers.AveragePooling2D((pool_2, 1), padding="same", name="eegnet_pool_2")(x)
    x = layers.Dropout(dropout, name="eegnet_dropout_2")(x)
    return layers.Flatten(name="eegnet_flatten")(x)
