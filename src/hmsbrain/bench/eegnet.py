"""EEGNet's spatial filters: the einsum the model computes them with, against the paper's
depthwise ``(1, C)`` convolution, on the same kernel and the same band maps.

Both take the work of a training step: the forward pass and the gradients of the inputs and the
kernel, each compiled with ``tf.function``. They take turns inside each repeat, so a slow spell
of a shared machine hits both, and the speedup is formed per repeat: median and range over the
repeats. Before any timing, the two must give the same maps.
"""

from __future__ import annotations

import time

import numpy as np

from hmsbrain.bench.inference import spread

PARITY_ATOL = 1e-4  # the two layers' maps, after the same sums in another order


def bench_eegnet(
    shape: tuple[int, int, int] = (32, 512, 64),
    repeats: int = 5,
    sample_rate: float = 256.0,
    calls: int = 10,
) -> float:
    """ms per training step of the spatial filters of an EEGNet on ``shape`` (windows, samples,
    electrodes; default: 32 of the trials64 demo's 2 s at 256 Hz), einsum and depthwise, over
    ``repeats`` turns of ``calls`` steps each; prints both and the speedup, returns its median."""
    import keras
    import tensorflow as tf

    from hmsbrain.models.eegnet import eegnet_features

    batch, n_time, n_chans = shape

    raw = keras.Input((n_time, n_chans))
    model = keras.Model(raw, eegnet_features(raw, sample_rate))
    einsum = model.get_layer("eegnet_spatial")
    kernel = einsum.get_weights()[0]  # (C, F1, D), as the model initialised it
    f1, d = kernel.shape[1:]
    depthwise = keras.layers.DepthwiseConv2D((1, n_chans), depth_multiplier=d, use_bias=False)
    depthwise.build((None, n_time, n_chans, f1))
    depthwise.set_weights([kernel[None]])  # (1, C, F1, D): output channel f * D + d, as the model
    maps = tf.constant(
        np.random.default_rng(0).standard_normal((batch, n_time, n_chans, f1)), tf.float32
    )
    ours = tf.reshape(einsum(maps), (batch, n_time, 1, f1 * d))
    gap = float(tf.reduce_max(tf.abs(ours - depthwise(maps))))
    if not gap <= PARITY_ATOL:
        raise SystemExit(f"einsum and depthwise maps differ by {gap:.2e} > {PARITY_ATOL:.0e}")

    def training_step(layer: keras.layers.Layer) -> tf.types.experimental.PolymorphicFunction:
        @tf.function
        def step(x: tf.Tensor) -> list[tf.Tensor]:
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(tf.square(layer(x)))
            return tape.gradient(loss, [x, *layer.trainable_weights])

        return step

    steps = {"einsum (the model)": training_step(einsum), "depthwise": training_step(depthwise)}
    for step in steps.values():
        step(maps)  # traced and warmed up outside the timing
    ms: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(calls):
                step(maps)
            ms[name].append(1e3 * (time.perf_counter() - start) / calls)
    speedups = (np.asarray(ms["depthwise"]) / np.asarray(ms["einsum (the model)"])).tolist()
    print(
        f"EEGNet spatial filters: {batch} windows x {n_time} samples x {n_chans} electrodes, "
        f"F1={f1}, D={d}; maps equal within {gap:.1e}"
    )
    print(f"{repeats} repeats of {calls} steps (forward and gradients), in turns; median [min-max]")
    print(f"{'layer':<28}{'ms/step':>20}")
    for name, values in ms.items():
        print(f"{name:<28}{spread(values, 1):>20}")
    print(f"einsum speedup over depthwise: {spread(speedups, 1)}x")
    return float(np.median(speedups))
