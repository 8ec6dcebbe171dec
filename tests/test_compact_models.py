"""EEGNet and ShallowConvNet: they build for the project's input shapes (one channel, short
windows included), match the papers' parameter counts, keep their constraints (saving, reloading
and ONNX export: tests/test_registry.py, for every model), and learn a small synthetic task."""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np
import pytest
from keras import layers

from hmsbrain.config import EEGNetConfig, ShallowConfig
from hmsbrain.models.eegnet import eegnet_features
from hmsbrain.models.shallow import shallow_features

FeatureFn = Callable[..., keras.KerasTensor]  # fn(raw, sample_rate, **its config section)
MODELS: dict[str, FeatureFn] = {"eegnet": eegnet_features, "shallow": shallow_features}
# (time, channels, sample rate): the brief's shapes, plus one shorter than every pool.
SHAPES = [(256, 64, 128.0), (64, 14, 128.0), (128, 1, 128.0), (512, 64, 256.0), (16, 3, 128.0)]


def build(
    name: str,
    n_time: int,
    n_chans: int,
    sample_rate: float,
    n_classes: int = 4,
    bn_momentum: float = 0.0,
    **kwargs: object,
) -> keras.Model:
    raw = keras.Input((n_time, n_chans), name="raw")
    features = MODELS[name](raw, sample_rate, **kwargs)
    logits = layers.Dense(n_classes, name="logits", dtype="float32")(features)
    probs = layers.Activation("softmax", name="probs", dtype="float32")(logits)
    model = keras.Model(raw, probs, name=name)
    if bn_momentum > 0:  # as build_model applies model.bn_momentum
        for layer in model.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = bn_momentum
    return model


def n_trainable(model: keras.Model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def expected_features(name: str, n_time: int, sample_rate: float) -> int:
    """Feature width from the documented pooling rules, with the default config."""
    if name == "eegnet":
        # "same" pools of 4 then 8 (shrunk to the axis): ceil lengths, no step dropped.
        after_1 = math.ceil(n_time / min(4, n_time))
        return EEGNetConfig().f2 * math.ceil(after_1 / min(8, after_1))
    cfg = ShallowConfig()
    kernel = min(round(cfg.kernel_seconds * sample_rate), n_time)
    conv = n_time - kernel + 1
    pool = min(round(cfg.pool_seconds * sample_rate), conv)
    stride = min(round(cfg.stride_seconds * sample_rate), pool)
    return cfg.filters * ((conv - pool) // stride + 1)


def signals(n: int, n_time: int, n_chans: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, n_time, n_chans)).astype("float32")


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(("n_time", "n_chans", "sample_rate"), SHAPES)
def test_builds_and_outputs_probabilities(name, n_time, n_chans, sample_rate) -> None:
    model = build(name, n_time, n_chans, sample_rate)
    features = model.get_layer("logits").input
    assert features.shape[1] == expected_features(name, n_time, sample_rate)
    probs = np.asarray(model(signals(3, n_time, n_chans), training=False))
    assert probs.shape == (3, 4)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    own = [layer.name for layer in model.layers if layer.name not in ("raw", "logits", "probs")]
    assert own and all(n.startswith(f"{name}_") for n in own)


def test_eegnet_parameter_count_matches_paper() -> None:
    """EEGNet-8,2 on BCI IV 2a shapes (22 channels, 2 s at 128 Hz, 4 classes), Lawhern et al.
    Table 2. Trainable parameters only: batch norm's moving statistics are not learned."""
    C, T, N, F1, D, F2 = 22, 256, 4, 8, 2, 16
    temporal = 64 * F1  # (1, 64) kernel, no bias: 512
    bn_1 = 2 * F1  # gamma, beta: 16
    spatial = C * D * F1  # (C, 1) depthwise kernel, no bias: 352
    bn_2 = 2 * D * F1  # 32
    separable = 16 * D * F1 + D * F1 * F2  # depthwise (1, 16) + pointwise 1x1, no bias: 512
    bn_3 = 2 * F2  # 32
    dense = N * F2 * (T // 32) + N  # 4 * 128 + 4 = 516
    by_hand = temporal + bn_1 + spatial + bn_2 + separable + bn_3 + dense
    assert by_hand == 1972
    assert n_trainable(build("eegnet", T, C, 128.0, n_classes=N)) == by_hand


def test_shallow_parameter_count_matches_paper() -> None:
    """ShallowConvNet on BCI IV 2a (22 channels, 4.5 s at 250 Hz, 4 classes): kernel 25, pool 75,
    stride 15 samples, as in Schirrmeister et al. (braindecode's ShallowFBCSPNet defaults)."""
    C, T, N, F = 22, 1125, 4, 40
    temporal = 25 * F + F  # (25, 1) kernel with bias: 1040
    spatial = C * F * F  # (1, C) kernel over F maps, no bias: 35200
    bn = 2 * F  # 80
    steps = (T - 25 + 1 - 75) // 15 + 1  # 69 pooled steps
    dense = N * F * steps + N  # 11044
    by_hand = temporal + spatial + bn + dense
    assert by_hand == 47364
    assert n_trainable(build("shallow", T, C, 250.0, n_classes=N)) == by_hand


def test_eegnet_spatial_filters_keep_max_norm() -> None:
    """The max-norm 1 constraint bounds each spatial filter's norm over the electrodes (not a
    single weight, which would be the wrong axis for this (1, C) kernel layout)."""
    model = build("eegnet", 64, 6, 128.0, n_classes=2)
    spatial = model.get_layer("eegnet_spatial")
    spatial.set_weights([np.full(spatial.get_weights()[0].shape, 0.9, "float32")])  # norm 2.2
    model.compile(keras.optimizers.SGD(1e-3), "sparse_categorical_crossentropy")
    model.train_on_batch(signals(4, 64, 6), np.array([0, 1, 0, 1]))
    kernel = spatial.get_weights()[0]  # (C, F1, D)
    norms = np.sqrt((kernel**2).sum(axis=0))
    np.testing.assert_allclose(norms, 1.0, rtol=1e-3)  # each weight alone is still < 1


def test_eegnet_spatial_filters_are_the_papers_depthwise_convolution() -> None:
    """The einsum computes what the paper's depthwise (1, C) convolution with depth multiplier
    D computes, output channel f * D + d for band f's filter d, on the same kernel."""
    model = build("eegnet", 64, 6, 128.0, n_classes=2)
    spatial = model.get_layer("eegnet_spatial")
    kernel = np.random.default_rng(0).standard_normal(spatial.get_weights()[0].shape)
    spatial.set_weights([kernel.astype("float32")])
    maps = model.get_layer("eegnet_temporal_bn").output
    probe = keras.Model(model.inputs, [maps, model.get_layer("eegnet_spatial_maps").output])
    bands, got = probe(signals(3, 64, 6), training=False)
    n_chans, _, d = kernel.shape
    reference = keras.layers.DepthwiseConv2D((1, n_chans), depth_multiplier=d, use_bias=False)
    reference.build(bands.shape)
    reference.set_weights([kernel[None].astype("float32")])  # (1, C, F1, D)
    np.testing.assert_allclose(got, reference(bands), rtol=1e-5, atol=1e-5)


def test_eegnet_spatial_filters_start_as_the_depthwise_layers_would() -> None:
    """The einsum's initial spatial filters are the depthwise (1, C) layer's under the same seed:
    Glorot over its fans (F1 * C in, D * C out), not over the einsum's (C in, F1 * D out), which
    at 64 electrodes start 2.8x larger and trained worse."""
    n_chans, f1, d = 64, 8, 2
    keras.utils.set_random_seed(7)
    kernel = build("eegnet", 128, n_chans, 128.0, n_classes=2).get_layer("eegnet_spatial")
    keras.utils.set_random_seed(7)
    temporal = keras.layers.Conv2D(f1, (64, 1), use_bias=False)
    temporal.build((None, 128, n_chans, 1))  # the draw before the spatial one, as in EEGNet
    reference = keras.layers.DepthwiseConv2D((1, n_chans), depth_multiplier=d, use_bias=False)
    reference.build((None, 128, n_chans, f1))
    expected = reference.get_weights()[0][0]  # (C, F1, D)
    np.testing.assert_array_equal(kernel.get_weights()[0], expected)
    assert np.abs(expected).max() <= np.sqrt(6 / (f1 * n_chans + d * n_chans))


def burst_task(n: int, n_time: int, n_chans: int, sample_rate: float, seed: int):
    """Noise; class 1 adds a 1 s Hann-windowed 10 Hz burst (random onset and phase) to the first
    half of the channels, at an amplitude where a single sample is mostly noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.standard_normal((n, n_time, n_chans)).astype("float32")
    width = int(sample_rate)
    t = np.arange(width) / sample_rate
    for i in np.flatnonzero(y):
        onset = rng.integers(0, n_time - width)
        burst = np.sin(2 * np.pi * 10 * t + rng.uniform(0, 2 * np.pi)) * np.hanning(width)
        x[i, onset : onset + width, : n_chans // 2] += burst[:, None].astype("float32")
    return x, y


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_learns_a_10hz_burst(name) -> None:
    keras.utils.set_random_seed(0)
    n_time, n_chans, rate = 200, 4, 100.0
    x, y = burst_task(128, n_time, n_chans, rate, seed=0)
    # A low batch-norm momentum, so that inference mode after 64 steps uses settled statistics.
    model = build(name, n_time, n_chans, rate, n_classes=2, bn_momentum=0.9)
    model.compile(
        keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    model.fit(x, y, batch_size=16, epochs=8, verbose=0)
    # Inference mode (dropout off, moving statistics), not the running training-mode metric.
    _, train_acc = model.evaluate(x, y, verbose=0)
    assert train_acc > 0.9
    x_new, y_new = burst_task(128, n_time, n_chans, rate, seed=1)
    _, held_out_acc = model.evaluate(x_new, y_new, verbose=0)
    assert held_out_acc > 0.8  # it learned the burst, not the 128 noise draws
