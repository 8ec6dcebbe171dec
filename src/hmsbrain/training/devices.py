"""Where a run computes: mixed precision, and the distribution strategy over several devices.

``train.strategy`` is ``none``, ``mirrored`` (``tf.distribute.MirroredStrategy``: one host, any
number of GPUs) or ``data_parallel`` (``keras.distribution.DataParallel`` on the JAX backend:
one or several hosts). TensorFlow's multi-worker strategy is broken with Keras 3 (keras issue
20585), hence JAX for several hosts.
"""

from __future__ import annotations

import contextlib
import os

import keras

from hmsbrain.config import Config, ConfigError
from hmsbrain.models.registry import all_layers


def has_gpu() -> bool:
    """Whether the Keras backend sees a GPU (TensorFlow, or JAX for data_parallel)."""
    if keras.config.backend() == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    import tensorflow as tf  # only for device discovery

    return bool(tf.config.list_physical_devices("GPU"))


def configure_precision(mode: str) -> str:
    """Set Keras' global dtype policy for ``train.mixed_precision`` and return its name:
    ``mixed_float16`` when on (``auto``: on a GPU), else ``float32``."""
    use = mode == "on" or (mode == "auto" and has_gpu())
    policy = "mixed_float16" if use else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def strategy_scope(cfg: Config) -> contextlib.AbstractContextManager:
    """Where the model is built for ``train.strategy``: a MirroredStrategy scope (one host),
    after setting Keras' DataParallel distribution (JAX, one or several hosts), or nothing.

    Several hosts (data_parallel) find each other through Keras' environment variables
    (KERAS_DISTRIBUTION_JOB_ADDRESSES, _NUM_PROCESSES, _PROCESS_ID), read by
    ``keras.distribution.initialize``; each process then feeds its share of every batch."""
    if cfg.train.strategy == "mirrored":
        if keras.config.backend() != "tensorflow":
            raise ConfigError("train.strategy=mirrored needs the TensorFlow backend")
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(cfg.train.devices or None)
        print(
            f"train.strategy=mirrored: {strategy.num_replicas_in_sync} replicas "
            f"({', '.join(strategy.extended.worker_devices)})"
        )
        return strategy.scope()
    if cfg.train.strategy == "data_parallel":
        _set_data_parallel(cfg)
    return contextlib.nullcontext()


def _set_data_parallel(cfg: Config) -> None:
    if keras.config.backend() != "jax":
        raise ConfigError(
            "train.strategy=data_parallel needs the JAX backend: run with KERAS_BACKEND=jax "
            "(TensorFlow's multi-worker strategy is broken with Keras 3, keras issue 20585)"
        )
    processes = os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1")
    if processes != "1":
        keras.distribution.initialize()
    devices = cfg.train.devices or keras.distribution.list_devices()
    if cfg.train.batch_size % len(devices):
        raise ConfigError(
            f"train.batch_size={cfg.train.batch_size} must be a multiple of the "
            f"{len(devices)} devices of train.strategy=data_parallel (each gets an equal share)"
        )
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    print(
        f"train.strategy=data_parallel: {len(devices)} devices ({', '.join(devices)}), "
        f"{processes} process(es)"
    )


def process_shard(cfg: Config) -> tuple[int, int]:
    """(this process, processes) of a multi-host data_parallel run; (0, 1) otherwise."""
    if cfg.train.strategy != "data_parallel":
        return 0, 1
    import jax

    return jax.process_index(), jax.process_count()


def synchronise_batch_norm(model: keras.Model, cfg: Config) -> None:
    """With MirroredStrategy's replicas, batch statistics over the global batch, not each
    replica's share: the model then trains as on one device with the same batch. JAX's
    DataParallel needs nothing (and refuses the flag): it computes on the global batch as one
    sharded array, so its batch statistics are global already."""
    if cfg.train.strategy == "mirrored":
        for layer in all_layers(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True
