"""ShallowConvNet (Schirrmeister et al. 2017, "Deep learning with convolutional neural networks
for EEG decoding and visualization", Hum. Brain Mapp. 38:5391; braindecode's
``ShallowFBCSPNet``), in Keras core layers.

It is filter-bank CSP written as a network: a temporal convolution (band-pass filters, the same
on every electrode), a spatial convolution across all electrodes (spatial filters mixing all
bands), squaring, mean pooling and a log, so each feature is the log band power of one spatially
filtered signal over a window of ~0.3 s. The paper splits the first layer into these two
convolutions (rather than one (time x electrodes) kernel) because the factorisation regularises
and mirrors the CSP pipeline; the spatial convolution has no bias since batch norm follows.

Layout. The input is ``(time, channels)``, viewed as a ``(time, channels, 1)`` image, so the
paper's kernels keep their orientation: temporal ``(k, 1)``, spatial ``(1, C)``, pool ``(p, 1)``.

Choices:

* Lengths are in seconds and converted at ``sample_rate``: the paper's 25-sample kernel, 75-sample
  pool and 15-sample stride are 0.1 s, 0.3 s and 0.06 s at its 250 Hz.
* Convolutions and pooling are ``"valid"`` as in the paper. With overlapping pool windows that
  loses at most ``stride - 1`` samples (under 60 ms) at the end, never a whole window. On short
  inputs the temporal kernel shrinks to the input length and the pool to what the convolution
  leaves (the stride never exceeds the pool), so every length builds and has >= 1 feature step.
* The square is a ``Multiply`` layer and the clamped log is two ``keras.ops`` calls in the
  functional graph, not custom or Lambda layers, so the model saves, reloads and exports to ONNX
  with plain Keras (the two ops are graph operations, so they carry Keras' default names).
"""

from __future__ import annotations

import keras
from keras import layers

from hmsbrain.models.base import register_model

# braindecode's SafeLog clamp: a window of exactly zero power (a flat channel) would give -inf.
LOG_EPS = 1e-6


def _samples(seconds: float, sample_rate: float) -> int:
    return max(1, round(seconds * sample_rate))


@register_model("shallow", reads="raw")
def shallow_features(
    raw: keras.KerasTensor,
    sample_rate: float,
    *,
    filters: int = 40,
    kernel_seconds: float = 0.1,
    pool_seconds: float = 0.3,
    stride_seconds: float = 0.06,
    dropout: float = 0.5,
) -> keras.KerasTensor:
    """ShallowConvNet over ``raw`` of shape ``(batch, time, channels)`` -> flat log-power features.

    The keyword arguments are the ``model.shallow`` section
    (:class:`hmsbrain.config.ShallowConfig` documents them). The caller adds the classifier (the
    paper's is a dense softmax layer over these features) and sets ``model.bn_momentum``.
    """
    n_time, n_chans = raw.shape[1], raw.shape[2]
    if n_time is None or n_chans is None:
        raise ValueError(
            f"ShallowConvNet needs a static (time, channels) input shape, got {raw.shape}"
        )
    f = filters
    kernel = min(_samples(kernel_seconds, sample_rate), n_time)
    conv_time = n_time - kernel + 1
    pool = min(_samples(pool_seconds, sample_rate), conv_time)
    stride = min(_samples(stride_seconds, sample_rate), pool)

    x = layers.Reshape((n_time, n_chans, 1), name="shallow_image")(raw)
    x = layers.Conv2D(f, (kernel, 1), name="shallow_temporal")(x)
    x = layers.Conv2D(f, (1, n_chans), use_bias=False, name="shallow_spatial")(x)
    x = layers.BatchNormalization(name="shallow_bn")(x)
    x = layers.Multiply(name="shallow_square")([x, x])
    x = layers.AveragePooling2D((pool, 1), strides=(stride, 1), name="shallow_pool")(x)
    x = keras.ops.log(keras.ops.maximum(x, LOG_EPS))
    x = layers.Dropout(dropout, name="shallow_dropout")(x)
    return layers.Flatten(name="shallow_flatten")(x)
